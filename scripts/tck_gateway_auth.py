"""pytest plugin for the A2A TCK run through the gateway
(scripts/a2a_conformance.py loads it with `-p tck_gateway_auth`).

The TCK's clients (httpx) know nothing of the gateway's credential or of
its self-signed demo CA. This gives every httpx client the TCK creates the
API key of `GW_TCK_API_KEY` (unless the TCK set that header itself) and
trust in the CA file `GW_TCK_CA`; nothing else of the TCK changes.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import httpx

_KEY = os.environ.get("GW_TCK_API_KEY")
_CA = os.environ.get("GW_TCK_CA")


def _wrap(cls: Any) -> None:
    original = cls.__init__

    def init(self: Any, *args: Any, **kw: Any) -> None:
        headers = httpx.Headers(kw.pop("headers", None) or {})
        if _KEY and "x-agent-api-key" not in headers:
            headers["x-agent-api-key"] = _KEY
        kw["headers"] = headers
        if _CA and kw.get("verify", True) is True:
            kw["verify"] = ssl.create_default_context(cafile=_CA)
        original(self, *args, **kw)

    cls.__init__ = init


_wrap(httpx.Client)
_wrap(httpx.AsyncClient)
