"""The Wasm modules, read from the one place that lists them: every package
under filters/wasm/ (the Cargo workspace globs "filters/wasm/*"). Its package
name is what cargo builds (-p), its [lib] name the module (dist/wasm/<name>.wasm).

No relative imports: the justfile runs this file as a script to get the same
list (`python scripts/gwstack/modules.py crates|modules`), and
gwstack.layout derives the harness's FILTERS from it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
WASM_PACKAGES = ROOT / "filters" / "wasm"

# The module that is the four filters in one (filters/gateway): every other
# module is one filter of the chain, and a section of gateway's configuration.
GATEWAY_MODULE = "gateway"


def _table_name(text: str, table: str) -> str:
    """`name = "..."` of a [table] in a Cargo manifest. A regex, not tomllib:
    ./dev runs this with whatever python3 made .venv (3.10 has no tomllib),
    and the manifests under filters/wasm/ are four lines each."""
    m = re.search(rf'^\[{table}\]\s*$(?:\n(?!\[).*)*?\nname\s*=\s*"([^"]+)"', text, re.M)
    if not m:
        raise ValueError(f"no [{table}] name")
    return m.group(1)


def wasm_modules() -> dict[str, str]:
    """Cargo package name -> module name, in directory order."""
    out = {}
    for manifest in sorted(WASM_PACKAGES.glob("*/Cargo.toml")):
        text = manifest.read_text()
        try:
            out[_table_name(text, "package")] = _table_name(text, "lib")
        except ValueError as e:
            raise SystemExit(f"{manifest}: {e}") from None
    return out


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) == 2 else ""
    if what not in ("crates", "modules"):
        print("usage: modules.py crates|modules", file=sys.stderr)
        return 2
    modules = wasm_modules()
    print(" ".join(modules if what == "crates" else modules.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
