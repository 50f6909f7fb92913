//! AVX2+FMA GEMM: a 6x16 microkernel inside the shared blocked driver.
//!
//! The tile is 6 rows x 16 columns = 12 ymm accumulators; each step of k loads two vectors of
//! B and broadcasts six elements of A, for 12 FMAs. That uses 15 of the 16 ymm registers and
//! hides the 4-cycle FMA latency behind 12 independent chains (two FMA ports need >= 8).

use super::driver::{self, assert_tile_fits, Blocking, Microkernel};
use super::GemmArgs;
use core::arch::x86_64::*;

const MR: usize = 6;
const NR: usize = 16;

/// Block sizes for AVX2 (see the `gemm` module docs).
pub(crate) const BLOCKING: Blocking = Blocking {
    mr: MR,
    nr: NR,
    kc: 256,
    mc: 144,
    nc: 4080,
};

/// The 6x16 FMA microkernel. Only [`sgemm`] creates one, after the dispatcher has checked that
/// the CPU has AVX2 and FMA, so holding one proves the instructions exist.
#[derive(Clone, Copy)]
struct Fma6x16 {
    _cpu_checked: (),
}

impl Microkernel<MR, NR> for Fma6x16 {
    #[inline(always)]
    fn tile(
        self,
        k: usize,
        a: &[f32],
        a_rs: usize,
        a_cs: usize,
        b: &[f32],
        b_rs: usize,
        out: &mut [f32],
        ldc: usize,
        alpha: f32,
        beta: f32,
    ) {
        assert_tile_fits::<MR, NR>(k, a.len(), a_rs, a_cs, b.len(), b_rs, out.len(), ldc);
        // SAFETY: `self` exists only on a CPU with AVX2 and FMA (see the type's docs), and
        // `assert_tile_fits` just proved every index `tile_6x16` touches is inside its slice.
        unsafe {
            tile_6x16(
                k,
                a.as_ptr(),
                a_rs,
                a_cs,
                b.as_ptr(),
                b_rs,
                out.as_mut_ptr(),
                ldc,
                alpha,
                beta,
            )
        }
    }
}

/// The microkernel body (contract of [`Microkernel::tile`]).
///
/// # Safety
/// The CPU supports AVX2 and FMA; `a[i * a_rs + p * a_cs]` (i < 6, p < k), `b[p * b_rs + j]`
/// (p < k, j < 16) and `c[i * ldc + j]` (i < 6, j < 16) are in bounds.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile_6x16(
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    // SAFETY (whole body): the caller guarantees the features and the bounds above; every
    // pointer dereferenced below is one of those indices. Pointers advanced past the last step
    // use `wrapping_add` and are never dereferenced.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let mut ap = a;
        let mut bp = b;
        for _ in 0..k {
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*ap.add(i * a_rs));
                row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
            }
            ap = ap.wrapping_add(a_cs);
            bp = bp.wrapping_add(b_rs);
        }
        let va = _mm256_set1_ps(alpha);
        if beta == 0.0 {
            for (i, row) in acc.iter().enumerate() {
                let ci = c.add(i * ldc);
                _mm256_storeu_ps(ci, _mm256_mul_ps(row[0], va));
                _mm256_storeu_ps(ci.add(8), _mm256_mul_ps(row[1], va));
            }
        } else {
            let vb = _mm256_set1_ps(beta);
            for (i, row) in acc.iter().enumerate() {
                let ci = c.add(i * ldc);
                let c0 = _mm256_mul_ps(_mm256_loadu_ps(ci), vb);
                let c1 = _mm256_mul_ps(_mm256_loadu_ps(ci.add(8)), vb);
                _mm256_storeu_ps(ci, _mm256_fmadd_ps(row[0], va, c0));
                _mm256_storeu_ps(ci.add(8), _mm256_fmadd_ps(row[1], va, c1));
            }
        }
    }
}

/// The AVX2 GEMM entry of the kernel table.
///
/// # Safety
/// The CPU supports AVX2 and FMA (the dispatcher checked it before building this table).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn sgemm(args: &GemmArgs<'_>, c: &mut [f32]) {
    driver::gemm(Fma6x16 { _cpu_checked: () }, BLOCKING, args, c);
}
