//! NEON SGD step: 4 lanes, two vectors per iteration, the tail through stack buffers. The
//! switches are const generics, so each combination is its own branch-free loop.

use super::{with_switches, Coefficients};
use std::arch::aarch64::*;

/// One vector of the step on 4 floats at `p`, `g`, `b`.
///
/// # Safety
/// NEON; the pointers valid for 4 floats (`b` only read/written when `MOM`).
#[inline(always)]
unsafe fn lane4<const WD: bool, const MOM: bool, const FIRST: bool, const NEST: bool>(
    c: &Coefficients,
    sign: uint32x4_t,
    p: *mut f32,
    g: *const f32,
    b: *mut f32,
) {
    // SAFETY: the caller guarantees 4 floats at each pointer used.
    unsafe {
        let pv = vld1q_f32(p);
        // maximize: flip the sign bit (exactly PyTorch's negation).
        let mut gv = vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(vld1q_f32(g)), sign));
        if WD {
            gv = vfmaq_n_f32(gv, pv, c.weight_decay);
        }
        if MOM {
            let bv = if FIRST {
                gv
            } else {
                let decayed = vmulq_n_f32(vld1q_f32(b), c.momentum);
                vfmaq_n_f32(decayed, gv, c.one_minus_dampening)
            };
            vst1q_f32(b, bv);
            gv = if NEST {
                vfmaq_n_f32(gv, bv, c.momentum)
            } else {
                bv
            };
        }
        vst1q_f32(p, vfmaq_n_f32(pv, gv, c.neg_lr));
    }
}

/// # Safety
/// NEON; `g` and `b` (when `MOM`) hold `n` floats like `p`.
#[inline(always)]
unsafe fn run<const WD: bool, const MOM: bool, const FIRST: bool, const NEST: bool>(
    c: &Coefficients,
    p: *mut f32,
    g: *const f32,
    b: *mut f32,
    n: usize,
) {
    // SAFETY: full vectors cover [i, i + 4) with i + 4 <= n; the tail is copied into 4-float
    // stack buffers, stepped there, and the n - i real floats copied back.
    unsafe {
        let sign = vdupq_n_u32(if c.maximize { 0x8000_0000 } else { 0 });
        let mut i = 0;
        while i + 8 <= n {
            lane4::<WD, MOM, FIRST, NEST>(c, sign, p.add(i), g.add(i), b.wrapping_add(i));
            lane4::<WD, MOM, FIRST, NEST>(
                c,
                sign,
                p.add(i + 4),
                g.add(i + 4),
                b.wrapping_add(i + 4),
            );
            i += 8;
        }
        while i + 4 <= n {
            lane4::<WD, MOM, FIRST, NEST>(c, sign, p.add(i), g.add(i), b.wrapping_add(i));
            i += 4;
        }
        if i < n {
            let rest = n - i;
            let (mut pb, mut gb, mut bb) = ([0.0f32; 4], [0.0f32; 4], [0.0f32; 4]);
            core::ptr::copy_nonoverlapping(p.add(i), pb.as_mut_ptr(), rest);
            core::ptr::copy_nonoverlapping(g.add(i), gb.as_mut_ptr(), rest);
            if MOM {
                core::ptr::copy_nonoverlapping(b.add(i), bb.as_mut_ptr(), rest);
            }
            lane4::<WD, MOM, FIRST, NEST>(c, sign, pb.as_mut_ptr(), gb.as_ptr(), bb.as_mut_ptr());
            core::ptr::copy_nonoverlapping(pb.as_ptr(), p.add(i), rest);
            if MOM {
                core::ptr::copy_nonoverlapping(bb.as_ptr(), b.add(i), rest);
            }
        }
    }
}

/// # Safety
/// The CPU must support NEON; `grad` and `buffer` as long as `param`; a buffer exactly when
/// `c.use_momentum`.
#[target_feature(enable = "neon")]
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
    // SAFETY: NEON enabled here; every pointer covers n floats (the caller's contract), and
    // `b` is only dereferenced when momentum is on, when it is non-null.
    unsafe { with_switches!(c, first, run(c, p, g, b, n)) }
}
