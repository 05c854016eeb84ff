//! Timing helper shared by the host benchmarks (included with `#[path]`:
//! a file in a subfolder of `examples/` is not an example itself).

use std::time::Instant;

/// Run `f` `n` times after `n / 10` warm-up runs; print and return ns/op.
pub fn per_op(label: &str, n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
    println!("{label:<62} {ns:>9.0} ns/op  ({:>10.0} ops/s)", 1e9 / ns);
    ns
}
