//! AVX2+FMA SGD step: 8 lanes, two vectors per iteration, the head (up to `p`'s 32-byte
//! boundary) and the tail masked. The switches are
//! const generics, so each combination is its own branch-free loop.

use super::{with_switches, Coefficients};
use crate::exp::avx2::tail_mask;
use std::arch::x86_64::*;

/// 8 floats at `ptr + i`, or the lanes of `mask` (the others 0).
///
/// # Safety
/// AVX; the lanes read inside the buffer.
#[inline(always)]
unsafe fn load(ptr: *const f32, i: usize, mask: Option<__m256i>) -> __m256 {
    // SAFETY: forwarded contract.
    unsafe {
        match mask {
            None => _mm256_loadu_ps(ptr.add(i)),
            Some(m) => _mm256_maskload_ps(ptr.add(i), m),
        }
    }
}

/// Stores 8 floats at `ptr + i`, or the lanes of `mask`.
///
/// # Safety
/// AVX; the lanes written inside the buffer.
#[inline(always)]
unsafe fn store(ptr: *mut f32, i: usize, mask: Option<__m256i>, v: __m256) {
    // SAFETY: forwarded contract.
    unsafe {
        match mask {
            None => _mm256_storeu_ps(ptr.add(i), v),
            Some(m) => _mm256_maskstore_ps(ptr.add(i), m, v),
        }
    }
}

/// One vector of the step at `i` (`mask`: only those lanes are loaded and stored).
///
/// # Safety
/// AVX2 and FMA; `p`, `g` (and `b` when `MOM`) valid for the lanes touched.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn lane8<const WD: bool, const MOM: bool, const FIRST: bool, const NEST: bool>(
    c: &Coefficients,
    sign: __m256,
    p: *mut f32,
    g: *const f32,
    b: *mut f32,
    i: usize,
    mask: Option<__m256i>,
) {
    // SAFETY: the caller guarantees the lanes touched are inside the three slices.
    unsafe {
        let pv = load(p, i, mask);
        // maximize: flip the sign bit (exactly PyTorch's negation).
        let mut gv = _mm256_xor_ps(load(g, i, mask), sign);
        if WD {
            gv = _mm256_fmadd_ps(pv, _mm256_set1_ps(c.weight_decay), gv);
        }
        if MOM {
            let mom = _mm256_set1_ps(c.momentum);
            let bv = if FIRST {
                gv
            } else {
                let decayed = _mm256_mul_ps(load(b, i, mask), mom);
                _mm256_fmadd_ps(gv, _mm256_set1_ps(c.one_minus_dampening), decayed)
            };
            store(b, i, mask, bv);
            gv = if NEST {
                _mm256_fmadd_ps(bv, mom, gv)
            } else {
                bv
            };
        }
        store(
            p,
            i,
            mask,
            _mm256_fmadd_ps(gv, _mm256_set1_ps(c.neg_lr), pv),
        );
    }
}

/// # Safety
/// AVX2 and FMA; `g` and `b` (when `MOM`) hold `n` floats like `p`.
#[inline(always)]
unsafe fn run<const WD: bool, const MOM: bool, const FIRST: bool, const NEST: bool>(
    c: &Coefficients,
    p: *mut f32,
    g: *const f32,
    b: *mut f32,
    n: usize,
) {
    // SAFETY: the head is masked to its `head < 8` lanes (head <= n); full vectors cover
    // [i, i + 8) with i + 8 <= n; the tail is masked to n - i.
    unsafe {
        let sign = _mm256_set1_ps(if c.maximize { -0.0 } else { 0.0 });
        // Peel the lanes before the first 32-byte boundary of `p`, so the main loop's
        // accesses do not straddle cache lines; when `g` and `b` share `p`'s offset (as they
        // do in `simdnet::optim::Sgd`, and for same-sized heap buffers) all five are aligned.
        // Straddling loads and stores cost about a third of the cache-resident rate.
        // `p` is 4-byte aligned (an f32 slice), so this is 0..8 lanes.
        let head = ((32 - p as usize % 32) % 32 / 4).min(n);
        if head > 0 {
            lane8::<WD, MOM, FIRST, NEST>(c, sign, p, g, b, 0, Some(tail_mask(head)));
        }
        let mut i = head;
        while i + 16 <= n {
            lane8::<WD, MOM, FIRST, NEST>(c, sign, p, g, b, i, None);
            lane8::<WD, MOM, FIRST, NEST>(c, sign, p, g, b, i + 8, None);
            i += 16;
        }
        while i + 8 <= n {
            lane8::<WD, MOM, FIRST, NEST>(c, sign, p, g, b, i, None);
            i += 8;
        }
        if i < n {
            lane8::<WD, MOM, FIRST, NEST>(c, sign, p, g, b, i, Some(tail_mask(n - i)));
        }
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `grad` and `buffer` as long as `param`; a buffer exactly
/// when `c.use_momentum`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn step(
    c: &Coefficients,
    param: &mut [f32],
    grad: &[f32],
    buffer: Option<&mut [f32]>,
    first: bool,
) {
    let n = param.len();
    let p = param.as_mut_ptr();
    let g = grad.as_ptr();
    let b = buffer.map_or(core::ptr::null_mut(), |b| b.as_mut_ptr());
    // SAFETY: features enabled here; every pointer covers n floats (the caller's contract),
    // and `b` is only used when momentum is on, when it is non-null.
    unsafe { with_switches!(c, first, run(c, p, g, b, n)) }
}
