//! Vectorised `exp` and `ln` of f32 slices.
//!
//! # Accuracy contract
//!
//! - `exp`: for `x` in `[-87.33654, 88.72283]` the result is within 2 ulp of `exp(x)` computed
//!   in f64 (the tests measure at most 1 ulp on every ISA). `x < -87.33654` (below
//!   `ln(FLT_MIN)`) gives `0`, `-inf` included: no denormal is ever produced, so nothing
//!   downstream slows down on denormal arithmetic. `x > 88.72283` (above `ln(FLT_MAX)`) gives
//!   `+inf`. NaN stays NaN.
//! - `ln`: within 2 ulp of the f64 logarithm for every positive finite input (denormals
//!   included); `ln(0) = -inf`, `ln(x < 0) = NaN`, `ln(inf) = inf`, NaN stays NaN.
//!
//! # Method
//!
//! `exp`: `x = n ln2 + r` with `n = round(x / ln2)` (adding `1.5 * 2^23` rounds the product)
//! and `|r| <= ln2/2`, `ln2` split in a short high part (so `n ln2_hi` is exact) and a low part
//! (Cody-Waite); `exp(r) = 1 + r (1 + r q(r))` with a degree-4 `q` fitted to
//! `(exp(r) - 1 - r) / r^2`, one chain of fused multiply-adds; then `p * 2^n`, which is normal
//! for every `n` the clamp to the range allows. How `2^n` is applied is the vocabulary's
//! (`F32x::scale_pow2_or_zero`): AVX2 and NEON add `n` to the exponent field, AVX-512 uses
//! `vscalefps` in its zero-masking form, which also makes the clamp unnecessary in softmax's
//! `exp(x - max)` ([`vector::exp_nonpositive`](self)).
//!
//! `ln`: the classic `logf` reduction, `x = 2^k (1 + f)` with `1 + f` in
//! `[sqrt(2)/2, sqrt(2))`, `s = f / (2 + f)`, `ln(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2))` with
//! a degree-4 `R`, plus `k ln2` in two parts; denormal inputs are scaled by `2^23` first.
//!
//! Both algorithms are written once (`vector.rs`, generic over `F32x` (`simd/`)) with the
//! constants of [`consts`](self); the ISA files only instantiate them. Tails go through the
//! vocabulary's first-`n` loads and stores, so no lane outside the slices is touched.
//!
//! The scalar table entries are the references: `std`'s `exp` / `ln` with the same edge rules
//! ([`scalar::exp`], [`scalar::ln`]).

pub mod scalar;
pub(crate) mod vector;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

use crate::{check_len, kernel_table, Kernels};

/// Below this `exp` gives 0: the f32 closest to `ln(FLT_MIN)` from above, so every input at or
/// above it has a normal result.
pub const EXP_MIN_INPUT: f32 = -87.336_54;
/// Above this `exp` gives `+inf`: the largest f32 whose exponential rounds to a finite f32.
pub const EXP_MAX_INPUT: f32 = 88.722_83;

/// Polynomial and reduction constants shared by the ISA files (so they cannot drift apart).
pub(crate) mod consts {
    pub const LOG2_E: f32 = std::f32::consts::LOG2_E;
    /// `ln 2` split: the high part has 8 significant bits, so `n * LN2_HI` is exact for the
    /// `|n| <= 128` that occur.
    pub const LN2_HI: f32 = 0.693_359_4;
    pub const LN2_LO: f32 = -2.121_944_4e-4;
    /// `q(r) = C2 + C3 r + C4 r^2 + C5 r^3 + C6 r^4`, fitted to `(exp(r) - 1 - r) / r^2` on
    /// `|r| <= 1.02 * ln2/2` (relative error of the polynomial below 0.1 ulp).
    pub const C2: f32 = 0.499_999_88;
    pub const C3: f32 = 0.166_665_06;
    pub const C4: f32 = 0.041_669_764;
    pub const C5: f32 = 0.008_370_347;
    pub const C6: f32 = 0.001_374_621_9;

    /// Adding it rounds `|v| < 2^22` to an integer in the low mantissa bits (`1.5 * 2^23`).
    pub const SHIFTER: f32 = 12_582_912.0;

    /// `ln` constants (the classic `logf` ones): `ln 2` split for `k * ln2`, and `R(z)`.
    pub const LN2_HI_LOG: f32 = 0.693_138_1;
    pub const LN2_LO_LOG: f32 = 9.058_001e-6;
    pub const LG1: f32 = 0.666_666_6;
    pub const LG2: f32 = 0.400_009_72;
    pub const LG3: f32 = 0.284_987_87;
    pub const LG4: f32 = 0.242_790_79;
}

kernel_table! {
    /// Per-ISA entry points of `exp` and `ln`.
    pub(crate) struct Table {
        exp: unsafe fn(&[f32], &mut [f32]),
        ln: unsafe fn(&[f32], &mut [f32]),
    }
}

/// Safety: the scalar reference is safe for any input.
unsafe fn scalar_exp(x: &[f32], y: &mut [f32]) {
    scalar::exp(x, y);
}

/// Safety: the scalar reference is safe for any input.
unsafe fn scalar_ln(x: &[f32], y: &mut [f32]) {
    scalar::ln(x, y);
}

crate::simd::isa_table! {
    Table { exp: scalar_exp, ln: scalar_ln },
    avx2: avx2, avx512: avx512, neon: neon
}

impl Kernels {
    /// `y[i] = exp(x[i])` under the accuracy contract of the [module docs](crate::exp).
    ///
    /// # Panics
    /// If `y.len() != x.len()`.
    pub fn exp(&self, x: &[f32], y: &mut [f32]) {
        check_len("exp: y", x.len(), y.len());
        // SAFETY: `self` was built by `Kernels::for_isa`, which checked the CPU has the table's
        // ISA; the lengths agree.
        unsafe { (self.exp.exp)(x, y) }
    }

    /// `y[i] = ln(x[i])` under the accuracy contract of the [module docs](crate::exp).
    ///
    /// # Panics
    /// If `y.len() != x.len()`.
    pub fn ln(&self, x: &[f32], y: &mut [f32]) {
        check_len("ln: y", x.len(), y.len());
        // SAFETY: as in `exp`.
        unsafe { (self.exp.ln)(x, y) }
    }
}
