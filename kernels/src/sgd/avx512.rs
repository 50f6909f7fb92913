//! AVX-512 SGD step: 16 lanes, two vectors per iteration, the head (up to `p`'s 64-byte
//! boundary, so the main loop never splits a cache line) and the tail masked with `__mmask16`.
//! The same operations and roundings as the AVX2 and scalar steps; the switches are const
//! generics, so each combination is its own branch-free loop.

use super::{with_switches, Coefficients};
use std::arch::x86_64::*;

/// The low `n` lanes of a 16-lane mask (`n <= 16`).
#[inline(always)]
fn lanes(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// One vector of the step at `i`; only the lanes of `m` are read and written.
///
/// # Safety
/// AVX-512F; `p`, `g` (and `b` when `MOM`) valid for the lanes of `m` at `i`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn lane16<const WD: bool, const MOM: bool, const FIRST: bool, const NEST: bool>(
    c: &Coefficients,
    sign: __m512i,
    p: *mut f32,
    g: *const f32,
    b: *mut f32,
    i: usize,
    m: __mmask16,
) {
    // SAFETY: the caller guarantees the lanes of `m` are inside the three buffers; masked
    // loads and stores touch no other lane (masked-off lanes do not fault).
    unsafe {
        let pv = _mm512_maskz_loadu_ps(m, p.add(i));
        // maximize: flip the sign bit (exactly PyTorch's negation). The integer XOR is
        // AVX-512F; `_mm512_xor_ps` would need AVX-512DQ and is not inlined without it.
        let gi = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, g.add(i)));
        let mut gv = _mm512_castsi512_ps(_mm512_xor_si512(gi, sign));
        if WD {
            gv = _mm512_fmadd_ps(pv, _mm512_set1_ps(c.weight_decay), gv);
        }
        if MOM {
            let mom = _mm512_set1_ps(c.momentum);
            let bv = if FIRST {
                gv
            } else {
                let decayed = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, b.add(i)), mom);
                _mm512_fmadd_ps(gv, _mm512_set1_ps(c.one_minus_dampening), decayed)
            };
            _mm512_mask_storeu_ps(b.add(i), m, bv);
            gv = if NEST {
                _mm512_fmadd_ps(bv, mom, gv)
            } else {
                bv
            };
        }
        let stepped = _mm512_fmadd_ps(gv, _mm512_set1_ps(c.neg_lr), pv);
        _mm512_mask_storeu_ps(p.add(i), m, stepped);
    }
}

/// # Safety
/// AVX-512F; `g` and `b` (when `MOM`) hold `n` floats like `p`.
#[inline(always)]
unsafe fn run<const WD: bool, const MOM: bool, const FIRST: bool, const NEST: bool>(
    c: &Coefficients,
    p: *mut f32,
    g: *const f32,
    b: *mut f32,
    n: usize,
) {
    const ALL: __mmask16 = 0xffff;
    // SAFETY: the head covers [0, head) with head <= n; full vectors cover [i, i + 16) with
    // i + 16 <= n; the tail covers [i, n).
    unsafe {
        let sign = _mm512_set1_epi32(if c.maximize { i32::MIN } else { 0 });
        // `p` is 4-byte aligned (an f32 slice): 0..16 lanes to its next 64-byte boundary.
        // When `g` and `b` share `p`'s offset, as in `simdnet::optim::Sgd`, all are aligned.
        let head = ((64 - p as usize % 64) % 64 / 4).min(n);
        if head > 0 {
            lane16::<WD, MOM, FIRST, NEST>(c, sign, p, g, b, 0, lanes(head));
        }
        let mut i = head;
        while i + 32 <= n {
            lane16::<WD, MOM, FIRST, NEST>(c, sign, p, g, b, i, ALL);
            lane16::<WD, MOM, FIRST, NEST>(c, sign, p, g, b, i + 16, ALL);
            i += 32;
        }
        while i + 16 <= n {
            lane16::<WD, MOM, FIRST, NEST>(c, sign, p, g, b, i, ALL);
            i += 16;
        }
        if i < n {
            lane16::<WD, MOM, FIRST, NEST>(c, sign, p, g, b, i, lanes(n - i));
        }
    }
}

/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; `grad` and `buffer` as long as `param`; a
/// buffer exactly when `c.use_momentum`.
#[target_feature(enable = "avx512f,avx2,fma")]
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
