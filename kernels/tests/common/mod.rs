//! Helpers shared by the kernel test files (each test file includes this with `mod common;`).
#![allow(dead_code)]

use simdnet_kernels::Kernels;

/// Number of proptest cases: `PROPTEST_CASES` when set, else `native` on this machine and an
/// eighth of it (at least 16) on aarch64, where the tests run under qemu and are ~10x slower.
pub fn cases(native: u32) -> u32 {
    if let Some(n) = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if cfg!(target_arch = "aarch64") {
        (native / 8).max(16)
    } else {
        native
    }
}

/// Every kernel table this CPU supports, scalar first.
pub fn all_kernels() -> Vec<Kernels> {
    Kernels::all()
}

/// Every SIMD kernel table this CPU supports (no scalar).
pub fn simd_kernels() -> Vec<Kernels> {
    Kernels::all()
        .into_iter()
        .filter(|k| k.isa() != simdnet_kernels::Isa::Scalar)
        .collect()
}

/// Asserts `|got - want| <= atol + rtol * |want|` element-wise, with NaN matching NaN and
/// infinities matching exactly. Names the first offending index.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g as f64;
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= atol + rtol * w.abs()
        };
        assert!(
            ok,
            "{what}: index {i}: got {g:e}, want {w:e} (|diff| {:e}, bound {:e})",
            (g - w).abs(),
            atol + rtol * w.abs()
        );
    }
}

/// A deterministic vector of `n` values in `[-1, 1)` from `seed` (splitmix64).
pub fn random_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The same values widened to f64.
pub fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}
