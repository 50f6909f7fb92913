//! AVX-512 GEMM: an 8x48 microkernel inside the shared blocked driver.
//!
//! The tile is 8 rows x 48 columns = 24 zmm accumulators; each step of k loads three vectors
//! of B and broadcasts eight elements of A, for 24 FMAs. That uses 28 of the 32 zmm registers
//! and covers the 4-cycle FMA latency on two 512-bit FMA ports (8 chains needed), with 11
//! loads per 24 FMAs, well under two loads per cycle. Eight rows suit LeNet-5's shapes:
//! m = 16, 64 and 120 are whole tiles.
//! The microkernels stay per ISA: their register tiles, edge masks and FMA forms differ.
//!
//! Edge tiles use lane masks (`__mmask16`): masked-off lanes are neither read nor written, so
//! a partial tile runs in place with no copies and no scalar loop. A tile with fewer rows runs
//! a loop instantiated for exactly that many rows (6 for conv1), and at most 16 or 32 columns
//! left run one or two vectors instead of three.

use super::dot::{self, DotBlocks, DotKernel, DotTile};
use super::driver::{self, balanced_block, Blocking};
use super::tile::{bias_ptr, finish, Microkernel, Tile};
use super::{avx2, GemmArgs};
use core::arch::x86_64::*;

const MR: usize = 8;
const NR: usize = 48;
/// Floats per zmm register.
const LANES: usize = 16;
/// zmm vectors per row of the tile.
const VECS: usize = NR / LANES;
/// How many slivers ahead to prefetch B read in place (as on AVX2).
const PREFETCH_SLIVERS: usize = 4;
/// Prefetch the C tile when the k loop is at least this long.
const PREFETCH_C_MIN_K: usize = 128;
/// Below that, prefetch the C tile two tiles ahead when C has at least this many floats
/// (1 MiB: half of L2).
const PREFETCH_NEXT_C_MIN_FLOATS: usize = 1 << 18;

/// Block sizes for AVX-512 (see the `gemm` module docs).
pub(crate) const BLOCKING: Blocking = Blocking {
    mr: MR,
    nr: NR,
    kc: 384,
    mc: 224,
    nc: 4080,
};

/// The 8x48 FMA microkernel. Only [`sgemm`] creates one, after the dispatcher has checked
/// that the CPU has AVX-512F, AVX2 and FMA, so holding one proves the instructions exist.
#[derive(Clone, Copy)]
struct Fma8x48 {
    _cpu_checked: (),
    /// Prefetch the C tile two tiles below before the k loop (see [`sgemm`]).
    prefetch_next_c: bool,
}

impl Microkernel<MR, NR> for Fma8x48 {
    type Vector = __m512;

    #[inline(always)]
    fn tile<const BIAS: bool, const RELU: bool>(self, t: Tile<'_>, out: &mut [f32]) {
        t.assert_fits::<MR, NR>(MR, NR, out.len());
        let ops = TileOps::new(&t, NR, out, self.prefetch_next_c, bias_ptr::<BIAS>(&t.epi));
        // SAFETY: `self` exists only on a CPU with AVX-512F (see the type's docs), and
        // `assert_fits` just proved every index of the full tile (and of a bias) is inside its
        // slice.
        unsafe { tile_rows::<MR, VECS, BIAS, RELU>(&ops) }
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
        let ops = TileOps::new(
            &t,
            cols,
            out,
            self.prefetch_next_c,
            bias_ptr::<BIAS>(&t.epi),
        );
        // SAFETY: as for `tile`: AVX-512F is present, and the bounds of the `rows x cols`
        // corner the loops read and write were just checked; each arm runs exactly `rows`
        // rows and `cols.div_ceil(16)` vectors (their lanes past `cols` masked off).
        unsafe {
            match cols.div_ceil(LANES) {
                1 => tile_rows_dyn::<1, BIAS, RELU>(rows, &ops),
                2 => tile_rows_dyn::<2, BIAS, RELU>(rows, &ops),
                _ => tile_rows_dyn::<VECS, BIAS, RELU>(rows, &ops),
            }
        }
    }
}

/// The arguments of one tile, as raw pointers (bounds checked by the caller).
struct TileOps {
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    /// Valid columns, `1..=NR`; lanes past it are masked off.
    cols: usize,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    /// The bias of the tile's columns (read only by the `BIAS` instances).
    bias: *const f32,
    prefetch_next_c: bool,
}

impl TileOps {
    #[inline(always)]
    fn new(
        t: &Tile<'_>,
        cols: usize,
        out: &mut [f32],
        prefetch_next_c: bool,
        bias: *const f32,
    ) -> TileOps {
        TileOps {
            k: t.k,
            a: t.a.as_ptr(),
            a_rs: t.a_rs,
            a_cs: t.a_cs,
            b: t.b.as_ptr(),
            b_rs: t.b_rs,
            cols,
            c: out.as_mut_ptr(),
            ldc: t.ldc,
            alpha: t.alpha,
            beta: t.beta,
            bias,
            prefetch_next_c,
        }
    }
}

/// [`tile_rows`] with the row count chosen at run time: one loop per row count.
///
/// # Safety
/// As [`tile_rows`] with `R = rows`.
#[inline(always)]
unsafe fn tile_rows_dyn<const V: usize, const BIAS: bool, const RELU: bool>(
    rows: usize,
    ops: &TileOps,
) {
    // SAFETY: forwarded contract; each arm's `R` equals `rows`.
    unsafe {
        match rows {
            1 => tile_rows::<1, V, BIAS, RELU>(ops),
            2 => tile_rows::<2, V, BIAS, RELU>(ops),
            3 => tile_rows::<3, V, BIAS, RELU>(ops),
            4 => tile_rows::<4, V, BIAS, RELU>(ops),
            5 => tile_rows::<5, V, BIAS, RELU>(ops),
            6 => tile_rows::<6, V, BIAS, RELU>(ops),
            7 => tile_rows::<7, V, BIAS, RELU>(ops),
            _ => tile_rows::<MR, V, BIAS, RELU>(ops),
        }
    }
}

/// The mask of the first `n` of 16 lanes (`n` may exceed 16).
#[inline(always)]
fn lane_mask(n: usize) -> __mmask16 {
    if n >= LANES {
        0xFFFF
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// The microkernel body: `R` rows and `V` vectors (16 columns each) of the tile, of which the
/// first `ops.cols` columns are read and written (the rest masked off).
///
/// # Safety
/// The CPU supports AVX-512F; `1 <= R <= 8`, `1 <= V <= 3`, `ops.cols <= 16 * V`;
/// `a[i * a_rs + p * a_cs]` (i < R, p < k), `b[p * b_rs + j]` (p < k, j < cols) and
/// `c[i * ldc + j]` (i < R, j < cols) and, when `BIAS`, `bias[j]` (j < cols) are in bounds.
#[inline(always)]
unsafe fn tile_rows<const R: usize, const V: usize, const BIAS: bool, const RELU: bool>(
    ops: &TileOps,
) {
    let TileOps {
        k,
        a,
        a_rs,
        a_cs,
        b,
        b_rs,
        cols,
        c,
        ldc,
        alpha,
        beta,
        bias,
        prefetch_next_c,
    } = *ops;
    let mut masks = [0 as __mmask16; V];
    for (v, m) in masks.iter_mut().enumerate() {
        *m = lane_mask(cols.saturating_sub(v * LANES));
    }
    // SAFETY (whole body): the caller guarantees the features and the bounds above. B and C
    // are accessed only through the column masks, which suppress faults in masked-off lanes;
    // A only at rows < R. Pointers that may lie past the data (the advance after the last
    // step, prefetch addresses, the second half of a narrow row) use `wrapping_add` and are
    // only used by masked accesses, prefetches (which never fault) or not at all.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        if k >= PREFETCH_C_MIN_K {
            // This tile's rows of C arrive while the long k loop runs.
            for i in 0..R {
                let row = c.wrapping_add(i * ldc);
                for v in 0..V {
                    _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(v * LANES) as *const i8);
                }
                _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(cols - 1) as *const i8);
            }
        }
        if prefetch_next_c {
            // C is large and k too short to hide this tile's C: fetch the C rows of the tile
            // two below (the driver's next tiles run down the same columns), so they come from
            // L3 while this tile and the next compute.
            for i in 0..R {
                let row = c.wrapping_add((i + 2 * R) * ldc);
                for v in 0..V {
                    _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(v * LANES) as *const i8);
                }
                _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(cols - 1) as *const i8);
            }
        }
        let mut ap = a;
        let mut bp = b;
        // B read in place (rows `b_rs` apart): fetch the lines the sliver PREFETCH_SLIVERS to
        // the right will need. A packed sliver is already in L1 and needs none.
        let prefetch = b_rs != NR;
        for _ in 0..k {
            if prefetch {
                // One line per row of B (the next lines of a row follow it).
                _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_SLIVERS * NR) as *const i8);
            }
            // A loop, not `array::from_fn`: a closure would not inherit the target features.
            let mut bv = [_mm512_setzero_ps(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm512_maskz_loadu_ps(masks[v], bp.wrapping_add(v * LANES));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*ap.add(i * a_rs));
                for (x, &bj) in row.iter_mut().zip(&bv) {
                    *x = _mm512_fmadd_ps(ai, bj, *x);
                }
            }
            ap = ap.wrapping_add(a_cs);
            bp = bp.wrapping_add(b_rs);
        }
        // Two loops, so the test of beta stays out of them and the accumulators are stored
        // straight from registers, through the epilogue (`BIAS`: the bias of the tile's
        // columns, read through the same masks).
        let mut vbias = [_mm512_setzero_ps(); V];
        if BIAS {
            for (v, x) in vbias.iter_mut().enumerate() {
                *x = _mm512_maskz_loadu_ps(masks[v], bias.wrapping_add(v * LANES));
            }
        }
        let va = _mm512_set1_ps(alpha);
        if beta == 0.0 {
            for (i, row) in acc.iter().enumerate() {
                for (v, &x) in row.iter().enumerate() {
                    let cv = c.wrapping_add(i * ldc + v * LANES);
                    let y = finish::<__m512, BIAS, RELU>(_mm512_mul_ps(x, va), vbias[v]);
                    _mm512_mask_storeu_ps(cv, masks[v], y);
                }
            }
        } else {
            let vb = _mm512_set1_ps(beta);
            for (i, row) in acc.iter().enumerate() {
                for (v, &x) in row.iter().enumerate() {
                    let cv = c.wrapping_add(i * ldc + v * LANES);
                    let old = _mm512_mul_ps(_mm512_maskz_loadu_ps(masks[v], cv), vb);
                    let y = finish::<__m512, BIAS, RELU>(_mm512_fmadd_ps(x, va, old), vbias[v]);
                    _mm512_mask_storeu_ps(cv, masks[v], y);
                }
            }
        }
    }
}

/// The AVX-512 GEMM entry of the kernel table.
///
/// # Safety
/// The CPU supports AVX-512F, AVX2 and FMA (the dispatcher checked it before building this
/// table).
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn sgemm(args: &GemmArgs<'_>, c: &mut [f32]) {
    dot::gemm::<_, MR, NR, false>(kernel_for(args), BLOCKING, args, c);
}

/// The AVX-512 GEMM with `args.epilogue` (the kernel table's `sgemm_epilogue`).
///
/// # Safety
/// As [`sgemm`].
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn sgemm_epilogue(args: &GemmArgs<'_>, c: &mut [f32]) {
    dot::gemm::<_, MR, NR, true>(kernel_for(args), BLOCKING, args, c);
}

/// The microkernel for `args`: whether it prefetches the C tile two below.
#[inline(always)]
fn kernel_for(args: &GemmArgs<'_>) -> Fma8x48 {
    // A C larger than L2 written after a short k loop waits on C's lines from L3; with m at
    // least four tiles tall the driver's next tiles lie below this one, so the microkernel
    // prefetches them (a C that fits L2 needs no help). Not when the driver walks C by row
    // panels (k blocks of at most 32): its next tiles lie to the right, where the hardware
    // prefetcher already reads ahead.
    let prefetch_next_c = args.k < PREFETCH_C_MIN_K
        && args.m >= 4 * MR
        && args.m.saturating_mul(args.n) >= PREFETCH_NEXT_C_MIN_FLOATS
        && !driver::walks_row_panels(BLOCKING, args);
    // Only `sgemm` and `sgemm_epilogue`, on a CPU the dispatcher checked, build one.
    Fma8x48 {
        _cpu_checked: (),
        prefetch_next_c,
    }
}

/// Rows of A and of B^T per dot-product tile: 16 accumulators + 4 A vectors + 4 B vectors
/// (3 x 8 would need 24 + 8 + 3 registers once the eight B loads of a step are hoisted).
const DOT_MR: usize = 4;
const DOT_NR: usize = 4;
/// The k block of A (m rows) kept in L1 while the rows of B^T pass, four at a time, each
/// group used by every row block of A: at most 24 KiB (half of L1), k blocks of 256 to 2048.
/// Short rows want one k block each: every block ends in a horizontal reduction and a pass
/// over C.
const DOT_A_FLOATS: usize = 6 * 1024;
const DOT_KC_MIN: usize = 256;
const DOT_KC_MAX: usize = 2048;

impl DotKernel for Fma8x48 {
    /// Row and column blocks split evenly (16 rows as 3 x 3 + 2 + 2 waste less than
    /// 5 x 3 + 1), column block outer.
    #[inline(always)]
    fn blocks(m: usize, n: usize, k: usize) -> DotBlocks {
        DotBlocks {
            kc: balanced_block(k, (DOT_A_FLOATS / m).clamp(DOT_KC_MIN, DOT_KC_MAX), 1),
            rows: balanced_block(m, DOT_MR, 1),
            cols: balanced_block(n, DOT_NR, 1),
            rows_outer: false,
        }
    }

    #[inline(always)]
    fn dot_tile<const BIAS: bool, const RELU: bool>(self, t: DotTile<'_>, out: &mut [f32]) {
        t.assert_fits::<DOT_MR, DOT_NR>(out.len());
        let c = DotOut {
            c: out.as_mut_ptr(),
            ldc: t.ldc,
            alpha: t.alpha,
            beta: t.beta,
            bias: if BIAS {
                t.epi
                    .bias
                    .expect("gemm dot tile: epilogue without a bias")
                    .as_ptr()
            } else {
                core::ptr::null()
            },
        };
        let DotTile {
            k, lda, ldb, cols, ..
        } = t;
        // SAFETY: `self` proves AVX-512F, AVX2 and FMA; the assert proved rows `< rows` of A
        // and rows `< cols` of B hold `k` elements each, and `out` holds the `rows x cols`
        // corner. Each arm's `R` equals `rows`.
        unsafe {
            let (a, b) = (t.a.as_ptr(), t.b.as_ptr());
            match t.rows {
                1 => dot_rows::<1, BIAS, RELU>(k, a, lda, b, ldb, cols, &c),
                2 => dot_rows::<2, BIAS, RELU>(k, a, lda, b, ldb, cols, &c),
                3 => dot_rows::<3, BIAS, RELU>(k, a, lda, b, ldb, cols, &c),
                _ => dot_rows::<DOT_MR, BIAS, RELU>(k, a, lda, b, ldb, cols, &c),
            }
        }
    }
}

/// Where a dot-product tile goes: `c[r * ldc + q] = alpha * sum + beta * c[..]`, then the
/// epilogue (`bias` of the tile's columns, read only by the `BIAS` instances).
struct DotOut {
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    bias: *const f32,
}

/// The dot-product tile body for `R` rows of A: rows `>= cols` of B repeat the last valid one
/// (computed, never stored); the last `k % 16` steps use masked loads. Writes the `R x cols`
/// corner of `out` (reads it only when `beta != 0`).
///
/// # Safety
/// The CPU supports AVX-512F, AVX2 and FMA; `a[r * lda + p]` (r < R, p < k),
/// `b[q * ldb + p]` (q < cols, p < k), `out.c[r * out.ldc + q]` (r < R, q < cols) and, when
/// `BIAS`, `out.bias[q]` (q < cols) are in bounds; `1 <= R <= 4`, `1 <= cols <= 4`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn dot_rows<const R: usize, const BIAS: bool, const RELU: bool>(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    cols: usize,
    out: &DotOut,
) {
    // SAFETY (whole body): the caller guarantees the features and bounds; whole-vector steps
    // cover p < 16 * (k / 16) <= k, the tail step is masked to p < k (masked-off lanes are not
    // read).
    unsafe {
        let mut br = [b; DOT_NR];
        for (q, p) in br.iter_mut().enumerate() {
            *p = b.add(q.min(cols - 1) * ldb);
        }
        let mut acc = [[_mm512_setzero_ps(); DOT_NR]; R];
        let whole = k / LANES;
        for s in 0..whole {
            dot_step(&mut acc, a, lda, &br, LANES * s, 0xFFFF);
        }
        let rest = k % LANES;
        if rest != 0 {
            dot_step(&mut acc, a, lda, &br, LANES * whole, lane_mask(rest));
        }
        // Horizontal sums, four accumulators at once: halve each to 8 lanes, then lane q of
        // `sum_each` is the sum of row[q]; it goes to C through a mask of the first `cols`
        // lanes (masked-off lanes are not accessed).
        let col_mask = _mm_cmpgt_epi32(_mm_set1_epi32(cols as i32), _mm_setr_epi32(0, 1, 2, 3));
        let va = _mm_set1_ps(out.alpha);
        let vb = _mm_set1_ps(out.beta);
        let vbias = if BIAS {
            _mm_maskload_ps(out.bias, col_mask)
        } else {
            _mm_setzero_ps()
        };
        for (r, row) in acc.iter().enumerate() {
            let mut h = [_mm256_setzero_ps(); DOT_NR];
            for (x, &v) in h.iter_mut().zip(row) {
                *x = _mm256_add_ps(
                    _mm512_castps512_ps256(v),
                    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))),
                );
            }
            let total = avx2::sum_each(h);
            let c = out.c.add(r * out.ldc);
            let mut result = _mm_mul_ps(total, va);
            if out.beta != 0.0 {
                result = _mm_fmadd_ps(_mm_maskload_ps(c, col_mask), vb, result);
            }
            if BIAS || RELU {
                result = finish_dot_row::<BIAS, RELU>(result, vbias);
            }
            _mm_maskstore_ps(c, col_mask, result);
        }
    }
}

/// The epilogue on one row of a dot-product tile (4 lanes): the vector epilogue on the row
/// widened to a zmm register (upper lanes zero), so every store shares one definition.
///
/// # Safety
/// The CPU supports AVX-512F.
#[inline(always)]
unsafe fn finish_dot_row<const BIAS: bool, const RELU: bool>(y: __m128, bias: __m128) -> __m128 {
    // SAFETY: register-only arithmetic; the caller guarantees AVX-512F.
    unsafe {
        let (y, bias) = (_mm512_zextps128_ps512(y), _mm512_zextps128_ps512(bias));
        let y = finish::<__m512, BIAS, RELU>(y, bias);
        _mm512_castps512_ps128(y)
    }
}

/// One 16-wide step of k (lanes outside `mask` read as zero) of the dot-product tile.
///
/// # Safety
/// The CPU supports AVX-512F; `a[r * lda + off + l]` (r < R) and `br[q][off + l]` are in
/// bounds for every lane `l` set in `mask`.
#[inline(always)]
unsafe fn dot_step<const R: usize>(
    acc: &mut [[__m512; DOT_NR]; R],
    a: *const f32,
    lda: usize,
    br: &[*const f32; DOT_NR],
    off: usize,
    mask: __mmask16,
) {
    // SAFETY: the caller guarantees the feature and the bounds of the unmasked lanes;
    // masked-off lanes are not read (and their addresses, formed with `wrapping_add`, are
    // never dereferenced).
    unsafe {
        let mut bv = [_mm512_setzero_ps(); DOT_NR];
        for (x, bq) in bv.iter_mut().zip(br) {
            *x = _mm512_maskz_loadu_ps(mask, bq.wrapping_add(off));
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let av = _mm512_maskz_loadu_ps(mask, a.wrapping_add(r * lda + off));
            for (x, &bq) in row.iter_mut().zip(&bv) {
                *x = _mm512_fmadd_ps(av, bq, *x);
            }
        }
    }
}
