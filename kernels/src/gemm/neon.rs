//! NEON GEMM: an 8x12 microkernel inside the shared blocked driver.
//!
//! The tile is 8 rows x 12 columns = 24 q-register accumulators; each step of k loads three
//! vectors of B and two vectors holding the eight elements of A, and issues 24 FMAs by lane
//! (`fmla v.4s, b.4s, a.s[lane]`), so A needs no broadcasts. 24 + 3 + 2 = 29 of the 32
//! registers; 24 independent chains cover the FMA latency on wide cores. Edge tiles take the
//! driver's default (zero-padded copies on the stack).
//! The microkernels stay per ISA: their register tiles, edge handling and FMA forms differ.

use super::driver::{self, Blocking};
use super::tile::{self, bias_ptr, Microkernel, Tile};
use super::GemmArgs;
use core::arch::aarch64::*;

const MR: usize = 8;
const NR: usize = 12;

/// Block sizes for NEON (see the `gemm` module docs).
pub(crate) const BLOCKING: Blocking = Blocking {
    mr: MR,
    nr: NR,
    kc: 256,
    mc: 128,
    nc: 4092,
};

/// The 8x12 FMA microkernel. Only [`sgemm`] creates one, after the dispatcher has checked that
/// the CPU has NEON, so holding one proves the instructions exist.
#[derive(Clone, Copy)]
struct Fma8x12 {
    _cpu_checked: (),
}

impl Microkernel<MR, NR> for Fma8x12 {
    type Vector = float32x4_t;

    #[inline(always)]
    fn tile<const BIAS: bool, const RELU: bool>(self, t: Tile<'_>, out: &mut [f32]) {
        t.assert_fits::<MR, NR>(MR, NR, out.len());
        let bias = bias_ptr::<BIAS>(&t.epi);
        // SAFETY: `self` exists only on a CPU with NEON (see the type's docs), and
        // `assert_fits` just proved every index `tile_8x12` touches is inside its slice.
        // `assert_fits` also proved a bias (read when `BIAS`) holds NR elements.
        unsafe { tile_8x12::<BIAS, RELU>(&t, out.as_mut_ptr(), bias) }
    }
}

/// One k step with the 8 elements of A in two vectors (rows 0-3 and 4-7): FMA by lane.
///
/// # Safety
/// The CPU supports NEON.
#[inline(always)]
unsafe fn step_by_lane(
    acc: &mut [[float32x4_t; 3]; MR],
    a_lo: float32x4_t,
    a_hi: float32x4_t,
    b: [float32x4_t; 3],
) {
    // SAFETY: register-only arithmetic; the caller guarantees NEON.
    unsafe {
        for j in 0..3 {
            acc[0][j] = vfmaq_laneq_f32::<0>(acc[0][j], b[j], a_lo);
            acc[1][j] = vfmaq_laneq_f32::<1>(acc[1][j], b[j], a_lo);
            acc[2][j] = vfmaq_laneq_f32::<2>(acc[2][j], b[j], a_lo);
            acc[3][j] = vfmaq_laneq_f32::<3>(acc[3][j], b[j], a_lo);
            acc[4][j] = vfmaq_laneq_f32::<0>(acc[4][j], b[j], a_hi);
            acc[5][j] = vfmaq_laneq_f32::<1>(acc[5][j], b[j], a_hi);
            acc[6][j] = vfmaq_laneq_f32::<2>(acc[6][j], b[j], a_hi);
            acc[7][j] = vfmaq_laneq_f32::<3>(acc[7][j], b[j], a_hi);
        }
    }
}

/// The microkernel body (contract of [`Microkernel::tile`]), C at `c`.
///
/// # Safety
/// The CPU supports NEON; `t.assert_fits::<8, 12>(8, 12, len)` holds for the `len` floats at
/// `c`; when `BIAS`, `bias` points to 12 floats.
#[inline(always)]
unsafe fn tile_8x12<const BIAS: bool, const RELU: bool>(
    t: &Tile<'_>,
    c: *mut f32,
    bias: *const f32,
) {
    let (k, a_rs, a_cs, b_rs) = (t.k, t.a_rs, t.a_cs, t.b_rs);
    // SAFETY (whole body): the caller guarantees NEON and the bounds above; every pointer
    // dereferenced below is one of those indices. Pointers advanced past the last step use
    // `wrapping_add` and are never dereferenced.
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); 3]; MR];
        let mut ap = t.a.as_ptr();
        let mut bp = t.b.as_ptr();
        if a_rs == 1 {
            // The 8 rows of a k step are contiguous (packed A, or A transposed in place).
            for _ in 0..k {
                let bv = [vld1q_f32(bp), vld1q_f32(bp.add(4)), vld1q_f32(bp.add(8))];
                step_by_lane(&mut acc, vld1q_f32(ap), vld1q_f32(ap.add(4)), bv);
                ap = ap.wrapping_add(a_cs);
                bp = bp.wrapping_add(b_rs);
            }
        } else {
            // Rows of A are `a_rs` apart: broadcast each element.
            for _ in 0..k {
                let bv = [vld1q_f32(bp), vld1q_f32(bp.add(4)), vld1q_f32(bp.add(8))];
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai = vld1q_dup_f32(ap.add(i * a_rs));
                    for j in 0..3 {
                        row[j] = vfmaq_f32(row[j], bv[j], ai);
                    }
                }
                ap = ap.wrapping_add(a_cs);
                bp = bp.wrapping_add(b_rs);
            }
        }
        tile::store_tile::<_, MR, 3, BIAS, RELU>(&acc, c, t.ldc, t.alpha, t.beta, bias);
    }
}

/// The NEON GEMM entry of the kernel table.
///
/// # Safety
/// The CPU supports NEON (the dispatcher checked it before building this table).
#[target_feature(enable = "neon")]
pub(crate) unsafe fn sgemm(args: &GemmArgs<'_>, c: &mut [f32]) {
    driver::gemm::<_, MR, NR, false>(Fma8x12 { _cpu_checked: () }, BLOCKING, args, c);
}

/// The NEON GEMM with `args.epilogue` (the kernel table's `sgemm_epilogue`).
///
/// # Safety
/// As [`sgemm`].
#[target_feature(enable = "neon")]
pub(crate) unsafe fn sgemm_epilogue(args: &GemmArgs<'_>, c: &mut [f32]) {
    driver::gemm::<_, MR, NR, true>(Fma8x12 { _cpu_checked: () }, BLOCKING, args, c);
}
