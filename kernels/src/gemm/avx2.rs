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
/// How many slivers ahead to prefetch B read in place (about the L3 latency over the time one
/// sliver takes).
const PREFETCH_SLIVERS: usize = 4;

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

    #[inline(always)]
    fn tile_edge(
        self,
        k: usize,
        a: &[f32],
        a_rs: usize,
        a_cs: usize,
        rows: usize,
        b: &[f32],
        b_rs: usize,
        cols: usize,
        out: &mut [f32],
        ldc: usize,
        alpha: f32,
        beta: f32,
    ) {
        assert!((1..=MR).contains(&rows) && (1..=NR).contains(&cols));
        assert_tile_fits_partial(
            k,
            a.len(),
            a_rs,
            a_cs,
            rows,
            b.len(),
            b_rs,
            cols,
            out.len(),
            ldc,
        );
        // SAFETY: as for `tile`: AVX2 and FMA are present, and the bounds of the rows and
        // columns `tile_6x16_masked` reads and writes were just checked.
        unsafe {
            tile_6x16_masked(
                k,
                a.as_ptr(),
                a_rs,
                a_cs,
                rows,
                b.as_ptr(),
                b_rs,
                cols,
                out.as_mut_ptr(),
                ldc,
                alpha,
                beta,
            )
        }
    }
}

/// Panics unless the `rows x cols` corner of a tile's operands and output is in bounds.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn assert_tile_fits_partial(
    k: usize,
    a_len: usize,
    a_rs: usize,
    a_cs: usize,
    rows: usize,
    b_len: usize,
    b_rs: usize,
    cols: usize,
    out_len: usize,
    ldc: usize,
) {
    let extent = |rows: usize, rs: usize, cols: usize, cs: usize| {
        (rows - 1)
            .checked_mul(rs)?
            .checked_add((cols - 1).checked_mul(cs)?)?
            .checked_add(1)
    };
    if k > 0 {
        assert!(
            extent(rows, a_rs, k, a_cs).is_some_and(|n| n <= a_len)
                && extent(k, b_rs, cols, 1).is_some_and(|n| n <= b_len),
            "gemm microkernel: operand slice too short"
        );
    }
    assert!(
        extent(rows, ldc, cols, 1).is_some_and(|n| n <= out_len),
        "gemm microkernel: output slice too short"
    );
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
        // B read in place (rows `b_rs` apart, not a packed sliver): no hardware prefetcher
        // follows hundreds of rows, so fetch the lines the sliver PREFETCH_SLIVERS to the
        // right will need while this one computes. Prefetches never fault.
        let prefetch = b_rs != NR;
        for _ in 0..k {
            if prefetch {
                _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_SLIVERS * NR) as *const i8);
            }
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

/// Lane masks selecting the first `cols` of 16 columns, as two 8-lane halves.
///
/// # Safety
/// The CPU supports AVX2.
#[inline(always)]
unsafe fn column_masks(cols: usize) -> (__m256i, __m256i) {
    // SAFETY: register-only AVX2 arithmetic; the caller guarantees AVX2.
    unsafe {
        let limit = _mm256_set1_epi32(cols as i32);
        let lo = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let hi = _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15);
        (_mm256_cmpgt_epi32(limit, lo), _mm256_cmpgt_epi32(limit, hi))
    }
}

/// The edge-tile body: rows `i >= rows` repeat row `rows - 1` of A (computed, never stored);
/// columns `j >= cols` of B are masked off (read as zero, never stored). Masked-off lanes of
/// `vmaskmovps` access no memory, so nothing outside the `rows x cols` corner is touched.
///
/// # Safety
/// The CPU supports AVX2 and FMA; `1 <= rows <= 6`, `1 <= cols <= 16`;
/// `a[i * a_rs + p * a_cs]` (i < rows, p < k), `b[p * b_rs + j]` (p < k, j < cols) and
/// `c[i * ldc + j]` (i < rows, j < cols) are in bounds.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile_6x16_masked(
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    rows: usize,
    b: *const f32,
    b_rs: usize,
    cols: usize,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    // SAFETY (whole body): the caller guarantees the features and the bounds above. A rows are
    // clamped to `rows - 1`; B and C are accessed only through the column masks. Pointers
    // that may lie past the data (the second half of a row, the advance after the last step)
    // use `wrapping_add` and are only used by masked accesses or not at all.
    unsafe {
        let (m0, m1) = column_masks(cols);
        let row_offsets: [usize; MR] = core::array::from_fn(|i| i.min(rows - 1) * a_rs);
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let mut ap = a;
        let mut bp = b;
        for _ in 0..k {
            let b0 = _mm256_maskload_ps(bp, m0);
            let b1 = _mm256_maskload_ps(bp.wrapping_add(8), m1);
            for (row, &offset) in acc.iter_mut().zip(&row_offsets) {
                let ai = _mm256_broadcast_ss(&*ap.add(offset));
                row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
            }
            ap = ap.wrapping_add(a_cs);
            bp = bp.wrapping_add(b_rs);
        }
        let va = _mm256_set1_ps(alpha);
        let vb = _mm256_set1_ps(beta);
        for (i, row) in acc.iter().enumerate().take(rows) {
            let c0 = c.wrapping_add(i * ldc);
            let c1 = c0.wrapping_add(8);
            let mut r0 = _mm256_mul_ps(row[0], va);
            let mut r1 = _mm256_mul_ps(row[1], va);
            if beta != 0.0 {
                r0 = _mm256_fmadd_ps(_mm256_maskload_ps(c0, m0), vb, r0);
                r1 = _mm256_fmadd_ps(_mm256_maskload_ps(c1, m1), vb, r1);
            }
            _mm256_maskstore_ps(c0, m0, r0);
            _mm256_maskstore_ps(c1, m1, r1);
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
