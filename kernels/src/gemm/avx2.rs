//! AVX2+FMA GEMM: a 6x16 microkernel inside the shared blocked driver.
//!
//! The tile is 6 rows x 16 columns = 12 ymm accumulators; each step of k loads two vectors of
//! B and broadcasts six elements of A, for 12 FMAs. That uses 15 of the 16 ymm registers and
//! hides the 4-cycle FMA latency behind 12 independent chains (two FMA ports need >= 8).
//! The microkernels stay per ISA: their register tiles, edge masks and FMA forms differ.

use super::dot::{self, DotBlocks, DotKernel, DotTile};
use super::driver::{balanced_block, Blocking};
use super::tile::{self, bias_ptr, finish, Microkernel, Tile};
use super::GemmArgs;
use core::arch::x86_64::*;

const MR: usize = 6;
const NR: usize = 16;
/// How many slivers ahead to prefetch B read in place (about the L3 latency over the time one
/// sliver takes).
const PREFETCH_SLIVERS: usize = 4;
/// Prefetch the C tile when the k loop is at least this long.
const PREFETCH_C_MIN_K: usize = 128;

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
    type Vector = __m256;

    #[inline(always)]
    fn tile<const BIAS: bool, const RELU: bool>(self, t: Tile<'_>, out: &mut [f32]) {
        t.assert_fits::<MR, NR>(MR, NR, out.len());
        let bias = bias_ptr::<BIAS>(&t.epi);
        // SAFETY: `self` exists only on a CPU with AVX2 and FMA (see the type's docs), and
        // `assert_fits` just proved every index `tile_6x16` touches is inside its slice, a
        // bias (read when `BIAS`) included.
        unsafe { tile_6x16::<BIAS, RELU>(&t, out.as_mut_ptr(), bias) }
    }

    #[inline(always)]
    fn tile_edge<const BIAS: bool, const RELU: bool>(
        self,
        t: Tile<'_>,
        rows: usize,
        cols: usize,
        out: &mut [f32],
    ) {
        t.assert_fits::<MR, NR>(rows, cols, out.len());
        let bias = bias_ptr::<BIAS>(&t.epi);
        // SAFETY: as for `tile`: AVX2 and FMA are present, and the bounds of the rows and
        // columns `tile_6x16_masked` reads and writes (and of a bias's `cols` elements) were
        // just checked.
        unsafe { tile_6x16_masked::<BIAS, RELU>(&t, rows, cols, out.as_mut_ptr(), bias) }
    }
}

/// The microkernel body (contract of [`Microkernel::tile`]), C at `c`, the bias at `bias`.
///
/// # Safety
/// The CPU supports AVX2 and FMA; `t.assert_fits::<6, 16>(6, 16, len)` holds for the `len`
/// floats at `c`; when `BIAS`, `bias` points to 16 floats.
#[inline(always)]
unsafe fn tile_6x16<const BIAS: bool, const RELU: bool>(
    t: &Tile<'_>,
    c: *mut f32,
    bias: *const f32,
) {
    let (k, a_rs, a_cs, b_rs, ldc) = (t.k, t.a_rs, t.a_cs, t.b_rs, t.ldc);
    // SAFETY (whole body): the caller guarantees the features and the bounds above; every
    // pointer dereferenced below is one of those indices. Pointers advanced past the last step
    // use `wrapping_add` and are never dereferenced.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let mut ap = t.a.as_ptr();
        let mut bp = t.b.as_ptr();
        // B read in place (rows `b_rs` apart, not a packed sliver): no hardware prefetcher
        // follows hundreds of rows, so fetch the lines the sliver PREFETCH_SLIVERS to the
        // right will need while this one computes. Prefetches never fault.
        // Start fetching this tile's rows of C (read or written at the end): their lines
        // arrive while a long k loop runs instead of stalling the stores (a short loop
        // leaves no time to hide them, so the prefetches would only cost issue slots).
        if k >= PREFETCH_C_MIN_K {
            for i in 0..MR {
                let row = c.wrapping_add(i * ldc);
                _mm_prefetch::<_MM_HINT_T0>(row as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(NR - 1) as *const i8);
            }
        }
        // The two loops differ only in the prefetch, so its test stays out of the inner loop.
        if b_rs != NR {
            for _ in 0..k {
                _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_SLIVERS * NR) as *const i8);
                step_6x16(&mut acc, ap, a_rs, bp);
                ap = ap.wrapping_add(a_cs);
                bp = bp.wrapping_add(b_rs);
            }
        } else {
            for _ in 0..k {
                step_6x16(&mut acc, ap, a_rs, bp);
                ap = ap.wrapping_add(a_cs);
                bp = bp.wrapping_add(b_rs);
            }
        }
        tile::store_tile::<_, MR, 2, BIAS, RELU>(&acc, c, ldc, t.alpha, t.beta, bias);
    }
}

/// One k step of the 6x16 tile. A function, not a closure: a closure would be compiled
/// without this ISA's target features and its intrinsics would not inline.
///
/// # Safety
/// The CPU supports AVX2 and FMA; `ap[i * a_rs]` (i < 6) and `bp[0..16]` are in bounds.
#[inline(always)]
unsafe fn step_6x16(acc: &mut [[__m256; 2]; MR], ap: *const f32, a_rs: usize, bp: *const f32) {
    // SAFETY: the caller guarantees the features and the bounds.
    unsafe {
        let b0 = _mm256_loadu_ps(bp);
        let b1 = _mm256_loadu_ps(bp.add(8));
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = _mm256_broadcast_ss(&*ap.add(i * a_rs));
            row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
            row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
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
/// The CPU supports AVX2 and FMA; `t.assert_fits::<6, 16>(rows, cols, len)` holds for the
/// `len` floats at `c`; when `BIAS`, `bias` points to `cols` floats.
#[inline(always)]
unsafe fn tile_6x16_masked<const BIAS: bool, const RELU: bool>(
    t: &Tile<'_>,
    rows: usize,
    cols: usize,
    c: *mut f32,
    bias: *const f32,
) {
    let (k, a_rs, a_cs, b_rs, ldc) = (t.k, t.a_rs, t.a_cs, t.b_rs, t.ldc);
    // SAFETY (whole body): the caller guarantees the features and the bounds above. A rows are
    // clamped to `rows - 1`; B and C are accessed only through the column masks. Pointers
    // that may lie past the data (the second half of a row, the advance after the last step)
    // use `wrapping_add` and are only used by masked accesses or not at all.
    unsafe {
        let (m0, m1) = column_masks(cols);
        let row_offsets: [usize; MR] = core::array::from_fn(|i| i.min(rows - 1) * a_rs);
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let mut ap = t.a.as_ptr();
        let mut bp = t.b.as_ptr();
        if cols > 8 {
            // Left half whole, right half masked: one mask register, so the 12 accumulators,
            // 2 B vectors, the broadcast and the mask fit the 16 ymm registers.
            for _ in 0..k {
                let b0 = _mm256_loadu_ps(bp);
                let b1 = _mm256_maskload_ps(bp.wrapping_add(8), m1);
                for (row, &offset) in acc.iter_mut().zip(&row_offsets) {
                    let ai = _mm256_broadcast_ss(&*ap.add(offset));
                    row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
                }
                ap = ap.wrapping_add(a_cs);
                bp = bp.wrapping_add(b_rs);
            }
        } else {
            // At most 8 columns: a 6 x 8 tile, half the work.
            for _ in 0..k {
                let b0 = _mm256_maskload_ps(bp, m0);
                for (row, &offset) in acc.iter_mut().zip(&row_offsets) {
                    let ai = _mm256_broadcast_ss(&*ap.add(offset));
                    row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                }
                ap = ap.wrapping_add(a_cs);
                bp = bp.wrapping_add(b_rs);
            }
        }
        let store = EdgeStore {
            c,
            ldc,
            rows,
            masks: (m0, m1),
            alpha: t.alpha,
            beta: t.beta,
            bias,
        };
        store_edge::<BIAS, RELU>(&acc, &store);
    }
}

/// Where an edge tile goes: its `rows x cols` corner (`masks` select the first `cols` of 16
/// columns) at `c`, and the bias of its columns (read only when there is one).
struct EdgeStore {
    c: *mut f32,
    ldc: usize,
    rows: usize,
    masks: (__m256i, __m256i),
    alpha: f32,
    beta: f32,
    bias: *const f32,
}

/// The edge tile's write-back for one epilogue: `alpha * acc + beta * old` (C read only when
/// `beta != 0`), then the epilogue, through the column masks.
///
/// # Safety
/// The CPU supports AVX2 and FMA; `c[i * ldc + j]` (i < rows, j < cols) and, when `BIAS`,
/// `bias[j]` (j < cols) are in bounds.
#[inline(always)]
unsafe fn store_edge<const BIAS: bool, const RELU: bool>(acc: &[[__m256; 2]; MR], s: &EdgeStore) {
    let (m0, m1) = s.masks;
    // SAFETY: the caller guarantees the features and the bounds; every access is masked to
    // the first `cols` columns (masked-off lanes access no memory), and addresses that may lie
    // past the data use `wrapping_add`.
    unsafe {
        let va = _mm256_set1_ps(s.alpha);
        let vb = _mm256_set1_ps(s.beta);
        let (mut b0, mut b1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        if BIAS {
            b0 = _mm256_maskload_ps(s.bias, m0);
            b1 = _mm256_maskload_ps(s.bias.wrapping_add(8), m1);
        }
        for (i, row) in acc.iter().enumerate().take(s.rows) {
            let c0 = s.c.wrapping_add(i * s.ldc);
            let c1 = c0.wrapping_add(8);
            let mut r0 = _mm256_mul_ps(row[0], va);
            let mut r1 = _mm256_mul_ps(row[1], va);
            if s.beta != 0.0 {
                r0 = _mm256_fmadd_ps(_mm256_maskload_ps(c0, m0), vb, r0);
                r1 = _mm256_fmadd_ps(_mm256_maskload_ps(c1, m1), vb, r1);
            }
            _mm256_maskstore_ps(c0, m0, finish::<__m256, BIAS, RELU>(r0, b0));
            _mm256_maskstore_ps(c1, m1, finish::<__m256, BIAS, RELU>(r1, b1));
        }
    }
}

/// The AVX2 GEMM entry of the kernel table.
///
/// # Safety
/// The CPU supports AVX2 and FMA (the dispatcher checked it before building this table).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn sgemm(args: &GemmArgs<'_>, c: &mut [f32]) {
    dot::gemm::<_, MR, NR, false>(Fma6x16 { _cpu_checked: () }, BLOCKING, args, c);
}

/// The AVX2 GEMM with `args.epilogue` (the kernel table's `sgemm_epilogue`).
///
/// # Safety
/// As [`sgemm`].
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn sgemm_epilogue(args: &GemmArgs<'_>, c: &mut [f32]) {
    dot::gemm::<_, MR, NR, true>(Fma6x16 { _cpu_checked: () }, BLOCKING, args, c);
}

/// Rows of A and of B^T per dot-product tile: 12 accumulators + 3 A vectors + 1 B vector.
const DOT_MR: usize = 3;
const DOT_NR: usize = 4;
/// k per pass: 3 rows of A (6 KiB) stay in L1 while the rows of B (n x 2 KiB) stream from L2.
const DOT_KC: usize = 512;

impl DotKernel for Fma6x16 {
    #[inline(always)]
    fn blocks(_m: usize, _n: usize, k: usize) -> DotBlocks {
        DotBlocks {
            kc: balanced_block(k, DOT_KC, 1),
            rows: DOT_MR,
            cols: DOT_NR,
            rows_outer: true,
        }
    }

    #[inline(always)]
    fn dot_tile<const BIAS: bool, const RELU: bool>(self, t: DotTile<'_>, out: &mut [f32]) {
        t.assert_fits::<DOT_MR, DOT_NR>(out.len());
        let bias: &[f32] = if BIAS {
            t.epi.bias.expect("gemm dot tile: epilogue without a bias")
        } else {
            &[]
        };
        let mut sums = [[0.0f32; DOT_NR]; DOT_MR];
        // SAFETY: `self` proves AVX2 and FMA; the assert proved rows `< rows` of A and rows
        // `< cols` of B hold `k` elements each.
        unsafe { dot_3x4(&t, &mut sums) };
        for (r, sum) in sums.iter().enumerate().take(t.rows) {
            for (q, (x, &v)) in out[r * t.ldc..][..t.cols].iter_mut().zip(sum).enumerate() {
                let y = if t.beta == 0.0 {
                    t.alpha * v
                } else {
                    t.alpha * v + t.beta * *x
                };
                *x = tile::finish_scalar::<BIAS, RELU>(y, bias, q);
            }
        }
    }
}

/// The dot-product tile body: rows `>= rows` of A and `>= cols` of B repeat the last valid
/// one (computed, then ignored by the caller); the last `k % 8` steps use masked loads.
///
/// # Safety
/// The CPU supports AVX2 and FMA; `t.assert_fits::<3, 4>(..)` holds for A and B.
#[inline(always)]
unsafe fn dot_3x4(t: &DotTile<'_>, sums: &mut [[f32; DOT_NR]; DOT_MR]) {
    let DotTile {
        k,
        lda,
        rows,
        ldb,
        cols,
        ..
    } = *t;
    // SAFETY (whole body): the caller guarantees the features and bounds; whole-vector loads
    // cover p < 8 * (k / 8) <= k, the tail is masked to p < k.
    unsafe {
        let (a, b) = (t.a.as_ptr(), t.b.as_ptr());
        let ar: [*const f32; DOT_MR] = core::array::from_fn(|r| a.add(r.min(rows - 1) * lda));
        let br: [*const f32; DOT_NR] = core::array::from_fn(|q| b.add(q.min(cols - 1) * ldb));
        let mut acc = [[_mm256_setzero_ps(); DOT_NR]; DOT_MR];
        let whole = k / 8;
        for s in 0..whole {
            let off = 8 * s;
            let av: [__m256; DOT_MR] = core::array::from_fn(|r| _mm256_loadu_ps(ar[r].add(off)));
            for (q, bq) in br.iter().enumerate() {
                let bv = _mm256_loadu_ps(bq.add(off));
                for (row, &x) in acc.iter_mut().zip(&av) {
                    row[q] = _mm256_fmadd_ps(x, bv, row[q]);
                }
            }
        }
        let rest = k % 8;
        if rest != 0 {
            let off = 8 * whole;
            let mask = _mm256_cmpgt_epi32(
                _mm256_set1_epi32(rest as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            );
            let av: [__m256; DOT_MR] =
                core::array::from_fn(|r| _mm256_maskload_ps(ar[r].add(off), mask));
            for (q, bq) in br.iter().enumerate() {
                let bv = _mm256_maskload_ps(bq.add(off), mask);
                for (row, &x) in acc.iter_mut().zip(&av) {
                    row[q] = _mm256_fmadd_ps(x, bv, row[q]);
                }
            }
        }
        for (row, out) in acc.iter().zip(sums.iter_mut()) {
            _mm_storeu_ps(out.as_mut_ptr(), sum_each(*row));
        }
    }
}

/// Lane `q` of the result is the sum of the 8 lanes of `v[q]` (a tree of `hadd`s).
///
/// # Safety
/// The CPU supports AVX (both x86 GEMMs have it).
#[inline(always)]
pub(super) unsafe fn sum_each(v: [__m256; 4]) -> __m128 {
    // SAFETY: register-only arithmetic; the caller guarantees AVX.
    unsafe {
        let t0 = _mm256_hadd_ps(v[0], v[1]);
        let t1 = _mm256_hadd_ps(v[2], v[3]);
        let t2 = _mm256_hadd_ps(t0, t1);
        _mm_add_ps(_mm256_castps256_ps128(t2), _mm256_extractf128_ps::<1>(t2))
    }
}
