//! `A B^T` with few rows or columns as dot products of contiguous rows (the x86 ISAs).
//!
//! With A not transposed and B transposed, `C(i, j)` is the dot product of row `i` of A and
//! row `j` of the stored B, both contiguous. When m or n is small (a convolution's weight
//! gradient, `dY cols^T`) packing `B^T` costs as much as the multiply, so a small block of C
//! is computed as vector dot products over k instead, reduced at the end of each k block,
//! nothing packed. The loops and bounds checks are here; each ISA supplies the register tile
//! ([`DotKernel`]) and its block sizes.

use super::driver::{self, Blocking};
use super::tile::Microkernel;
use super::{Epilogue, GemmArgs, Transpose};

/// At most this many rows (m) or columns (n) take the dot path.
const MAX_M: usize = 24;
const MAX_N: usize = 32;
/// Shorter rows are left to the blocked driver (a dot product needs a few vectors of k).
const MIN_K: usize = 64;

/// The x86 GEMM: dot products where [`use_dot_products`] says so, the blocked driver
/// otherwise.
#[inline(always)]
pub(crate) fn gemm<K, const MR: usize, const NR: usize, const EPI: bool>(
    kernel: K,
    bl: Blocking,
    args: &GemmArgs<'_>,
    c: &mut [f32],
) where
    K: Microkernel<MR, NR> + DotKernel,
{
    if use_dot_products(args) {
        gemm_dot::<K, EPI>(kernel, args, c);
    } else {
        driver::gemm::<K, MR, NR, EPI>(kernel, bl, args, c);
    }
}

/// Whether `sgemm` computes these arguments as dot products.
pub(crate) fn use_dot_products(args: &GemmArgs<'_>) -> bool {
    args.transa == Transpose::No
        && args.transb == Transpose::Yes
        && args.k >= MIN_K
        && (args.m <= MAX_M || args.n <= MAX_N)
}

/// How an ISA blocks one dot-path call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DotBlocks {
    /// Depth of a k block.
    pub kc: usize,
    /// Rows of A per tile (the last tile of a column may have fewer).
    pub rows: usize,
    /// Rows of B (columns of C) per tile.
    pub cols: usize,
    /// Tiles run along a row of C first (row block outer) instead of down a column.
    pub rows_outer: bool,
}

/// One dot tile: `out[r * ldc + q] = alpha * sum_p a[r * lda + p] * b[q * ldb + p] +
/// beta * out[r * ldc + q]` for `r < rows`, `q < cols`, `p < k` (`beta == 0`: `out` not read),
/// then the epilogue `epi`, its bias starting at the tile's first column (`Epilogue::NONE` but
/// on the last k block).
#[derive(Clone, Copy)]
pub(crate) struct DotTile<'a> {
    pub k: usize,
    pub a: &'a [f32],
    pub lda: usize,
    pub rows: usize,
    pub b: &'a [f32],
    pub ldb: usize,
    pub cols: usize,
    pub ldc: usize,
    pub alpha: f32,
    pub beta: f32,
    pub epi: Epilogue<'a>,
}

impl DotTile<'_> {
    /// Panics unless `1 <= rows <= MR`, `1 <= cols <= NR`, `k > 0`, rows `< rows` of A and
    /// rows `< cols` of B hold `k` elements inside their slices and `out` holds the
    /// `rows x cols` corner, and a bias holds `cols` elements. Dot kernels call this before their unchecked SIMD accesses.
    #[inline(always)]
    pub(crate) fn assert_fits<const MR: usize, const NR: usize>(&self, out_len: usize) {
        let (rows, cols, k) = (self.rows, self.cols, self.k);
        assert!((1..=MR).contains(&rows) && (1..=NR).contains(&cols) && k > 0);
        let extent = |count: usize, stride: usize, len: usize| {
            (count - 1).checked_mul(stride)?.checked_add(len)
        };
        assert!(
            extent(rows, self.lda, k).is_some_and(|e| e <= self.a.len())
                && extent(cols, self.ldb, k).is_some_and(|e| e <= self.b.len()),
            "gemm dot tile: operand slice too short"
        );
        assert!(
            extent(rows, self.ldc, cols).is_some_and(|e| e <= out_len),
            "gemm dot tile: output slice too short"
        );
        assert!(
            self.epi.bias.is_none_or(|b| b.len() >= cols),
            "gemm dot tile: bias slice too short"
        );
    }
}

/// A register-tiled block of dot products, compiled once per epilogue as
/// [`Microkernel`](super::tile::Microkernel) is.
pub(crate) trait DotKernel: Copy {
    /// The blocks for an `m x n` C over `k`.
    fn blocks(m: usize, n: usize, k: usize) -> DotBlocks;

    /// Computes `t` into `out` (contract of [`DotTile`]), the epilogue `BIAS` / `RELU`
    /// included; panics before any access if a slice is too short ([`DotTile::assert_fits`])
    /// or if `BIAS` and `t.epi` has no bias.
    fn dot_tile<const BIAS: bool, const RELU: bool>(self, t: DotTile<'_>, out: &mut [f32]);

    /// [`dot_tile`](DotKernel::dot_tile) for the epilogue `t.epi` asks for.
    #[inline(always)]
    fn run_dot_tile(self, t: DotTile<'_>, out: &mut [f32]) {
        match (t.epi.bias.is_some(), t.epi.relu) {
            (false, false) => self.dot_tile::<false, false>(t, out),
            (false, true) => self.dot_tile::<false, true>(t, out),
            (true, false) => self.dot_tile::<true, false>(t, out),
            (true, true) => self.dot_tile::<true, true>(t, out),
        }
    }
}

/// `C = alpha * A * B^T + beta * C` by dot products (`transa == No`, `transb == Yes`,
/// `m, n, k > 0`, lengths checked by the caller).
#[inline(always)]
fn gemm_dot<K: DotKernel, const EPI: bool>(kernel: K, args: &GemmArgs<'_>, c: &mut [f32]) {
    let GemmArgs {
        m,
        n,
        k,
        lda,
        ldb,
        ldc,
        ..
    } = *args;
    let bl = K::blocks(m, n, k);
    let (row_tiles, col_tiles) = (m.div_ceil(bl.rows), n.div_ceil(bl.cols));
    let (outer, inner) = if bl.rows_outer {
        (row_tiles, col_tiles)
    } else {
        (col_tiles, row_tiles)
    };
    for pc in (0..k).step_by(bl.kc) {
        // Later k blocks add to what the first one wrote; the last one applies the epilogue.
        let beta = if pc == 0 { args.beta } else { 1.0 };
        let last_k = pc + bl.kc >= k;
        for o in 0..outer {
            for q in 0..inner {
                let (it, jt) = if bl.rows_outer { (o, q) } else { (q, o) };
                let (i, j) = (it * bl.rows, jt * bl.cols);
                let tile = DotTile {
                    k: bl.kc.min(k - pc),
                    a: &args.a[i * lda + pc..],
                    lda,
                    rows: bl.rows.min(m - i),
                    b: &args.b[j * ldb + pc..],
                    ldb,
                    cols: bl.cols.min(n - j),
                    ldc,
                    alpha: args.alpha,
                    beta,
                    epi: if EPI && last_k {
                        Epilogue {
                            bias: args.epilogue.bias.map(|b| &b[j..]),
                            relu: args.epilogue.relu,
                        }
                    } else {
                        Epilogue::NONE
                    },
                };
                kernel.run_dot_tile(tile, &mut c[i * ldc + j..]);
            }
        }
    }
}
