//! Single-precision GEMM: `C = alpha * op(A) * op(B) + beta * C`, row-major with leading
//! dimensions, `op` the identity or the transpose.
//!
//! Semantics (as BLAS): `m == 0` or `n == 0` does nothing; `k == 0` gives `C = beta * C`;
//! `beta == 0` never reads `C`, so NaN or garbage there does not leak into the result.
//!
//! # How the SIMD versions work
//!
//! One blocked driver (`driver.rs`, safe code) serves every instruction set; each ISA file only
//! supplies a register-tiled microkernel and its block sizes. The loops follow Goto / BLIS:
//!
//! ```text
//! for jc in n by NC            B panel kc x nc: packed once per (jc, pc), lives in L3
//!   for pc in k by KC          later k blocks accumulate into C (beta = 1)
//!     for ic in m by MC        A block mc x kc: packed once per (jc, pc, ic), lives in L2
//!       for jr in nc by NR     one B sliver (kc x NR, 16 KiB on AVX2) stays in L1 ...
//!         for ir in mc by MR   ... while the A slivers (MR x kc) stream past it
//!           MR x NR microkernel: C tile held in registers for all kc steps
//! ```
//!
//! | ISA | tile MR x NR | accumulators | KC | MC | NC |
//! |---|---|---|---|---|---|
//! | AVX2+FMA | 6 x 16 | 12 ymm (+2 B, 1 broadcast) | 256 | 144 | 4080 |
//! | AVX-512 | 8 x 48 | 24 zmm (+3 B, 1 broadcast) | 384 | 224 | 4080 |
//! | NEON | 8 x 12 | 24 q (+3 B, 2 A, FMA by lane) | 256 | 128 | 4092 |
//!
//! Why these sizes (Zen 3: 32 KiB L1d, 512 KiB L2 per core; larger caches only help): the tile
//! is the largest that fits the register file with enough independent FMA chains to cover
//! latency x throughput (4 cycles x 2 ports = 8 on AVX2). KC = 256 makes a B sliver
//! 256 x 16 x 4 B = 16 KiB plus an A sliver 6 KiB: half of L1, leaving room for C lines. MC = 144
//! makes the packed A block 144 KiB, under a third of L2. NC = 4080 (a multiple of NR) makes
//! the packed B panel 4 MiB, a share of L3. Blocks are balanced (k = 257 runs as 2 x 129, not
//! 256 + 1) so no pass over C is wasted on a sliver of work.
//!
//! AVX-512 (sizes measured on a Sapphire Rapids core: 48 KiB L1d, 2 MiB L2, two 512-bit FMA
//! ports): the 8 x 48 tile has 24 FMA chains, well above the 8 that latency x ports asks for.
//! There the B sliver need not sit in L1: a k step reads 192 B of B per 12 cycles of FMAs,
//! 16 B per cycle, which L2 streams easily, so KC is set by the passes over C instead:
//! KC = 384 (a 72 KiB B sliver and a 12 KiB A sliver, both from L2) reads and writes C once
//! per 384 steps. KC = 128 and 192 ran slightly slower, 256 about 25% slower (not
//! understood; its B sliver is exactly L1's 48 KiB). MC = 224 makes the packed A block
//! 336 KiB, a sixth of L2, leaving room for B slivers and C. NC = 4080 as on AVX2 (a multiple
//! of 48).
//!
//! Packing absorbs the transposes: all four combinations run the same microkernel. On AVX2 a
//! tile with k >= 128 prefetches its C rows before the k loop, so C's lines (from L2/L3 for
//! large C) arrive while it computes.
//!
//! Edge tiles (fewer than MR rows or NR columns left) run the same loop without a scalar GEMM:
//! on AVX2 the microkernel masks the missing columns of B and C (`vmaskmovps`; at most 8
//! columns left runs a 6 x 8 tile) and repeats the last row of A for missing rows (computed,
//! never stored). AVX-512 masks columns with `__mmask16` lane masks (in place, no copies) and
//! runs a loop instantiated for the exact number of rows left and only the vectors the
//! columns need. NEON has no masked loads: its edge tile copies the few rows and columns into
//! zero-padded stack buffers and writes only the valid corner back.
//!
//! Skinny shapes (LeNet-5's) skip packing where it costs more than it saves:
//! - B is read in place (rows of NR floats with stride `ldb`, prefetched a few slivers ahead)
//!   when it is not transposed, m fits one m block, and either m is tiny (at most 4 MR: a few
//!   row panels cannot amortise a copy; conv1 6 x 25 x 50176 reads its 5 MB B once) or `ldb`
//!   is not a multiple of 64 floats (such rows fall into a handful of L1 sets; packing avoids
//!   the conflict misses). When those rows are 4 KiB or more apart, k blocks shrink to 48 so a
//!   sliver's rows (one page each) stay within the L1 data TLB. When they are closer but more
//!   than one row tile uses each sliver, k blocks are at most 128, so the sliver (kc rows of
//!   NR floats, each spread over up to four lines) stays in L1 while the row tiles pass
//!   (fc1 forward, 64 x 400 x 120, AVX-512: 2 x 200 -> 4 x 100, best of 300 ms by CPU time
//!   over five interleaved rounds 89..120 -> 101..137 GFLOP/s; conv2 dW no slower).
//! - B is also read in place, whatever `ldb`, when all of it is at most 8 Ki floats (32 KiB,
//!   within L1, so no set conflicts to avoid): 64 x 64 x 64 packed 4096 floats for a multiply
//!   of 64 FMAs per element (AVX-512, best of ~300 ms of calls by thread CPU time, side by
//!   side: 95 -> 103..116 GFLOP/s; AVX2 ~60 -> ~70).
//! - A is read in place (broadcasts with strides `lda` and 1) when n is small: not transposed,
//!   n <= 512 and `lda` not a multiple of 1024 floats (packing costs ~48/n of the multiply;
//!   the fc layers, one image of conv2), or any A when n is at most two B slivers (conv1's
//!   weight gradient, 6 x 50176 x 25, where packing A would cost as much as the multiply).
//! - Short k blocks (at most 32) walk C row panel by row panel: each `MR`-tall panel of C left
//!   to right across the n block, instead of down each `NR`-wide column. A tile of 16 k steps
//!   is mostly its pass over C, and a column walk jumps `ldc` floats per row, which the
//!   hardware prefetcher does not follow once C outgrows L2; a row panel writes each row of C
//!   front to back. The packed B panel (kc x nc, at most 64 Ki floats) is re-read from L2 per
//!   panel. conv2's column gradient, 150 x 16 x 6400 (C 3.8 MB): ~75 -> ~95 GFLOP/s on AVX-512
//!   (NN and TN alike; PyTorch ~72 in the same minutes), where the look-ahead prefetch of the
//!   tile below (which had taken it from 65 to 78) is now switched off.
//! - Huge k is split into KC blocks, each a long dot product per C element held in registers.
//! - AVX2, `A B^T` with m <= 24 or n <= 32 and k >= 64 (a convolution's weight gradient,
//!   dY cols^T): every C element is a dot product of two contiguous rows, so nothing is packed;
//!   a 3 x 4 block of C is 12 vector accumulators over k (8 steps of k per FMA, masked tail),
//!   reduced horizontally at the end of each 512-long k block. AVX-512 does the same with a
//!   4 x 4 block (16 steps of k per FMA), B's rows in the outer loop so a k block of A's rows
//!   (up to 24 KiB: 256 to 2048 long) stays in L1, and the sums go to C with masked stores.
//!
//! # Measured against PyTorch (AVX-512)
//!
//! One Sapphire Rapids core, shared machine (load ~2 on 2 cores while these ran; rounds under
//! heavier load read up to 2x lower for either library);
//! `GEMM_SUMMARY_ONLY=1 GEMM_SUMMARY_MS=500 cargo bench --bench gemm` (median wall GFLOP/s)
//! interleaved with `pytorch_kernels.py --threads 1` (PyTorch 2.15, MKL, median per call),
//! three rounds after the changes above; the table gives the median of the three rounds of
//! each and the range of the per-round ratio. % of peak against the best 512-bit FMA peak
//! measured on this core, 169 GFLOP/s (the same probe read 119..134 in these minutes).
//!
//! | shape M x K x N | simdnet | PyTorch | ratio (range) | % of 169 |
//! |---|---|---|---|---|
//! | 64 x 64 x 64 | 137 | 101 | 1.36 (1.31..1.44) | 81 |
//! | 128 x 128 x 128 | 144 | - | - | 85 |
//! | 256 x 256 x 256 | 149 | 147 | 1.02 (0.93..1.25) | 88 |
//! | 512 x 512 x 512 | 151 | - | - | 89 |
//! | 1024 x 1024 x 1024 | 140 | 138 | 1.02 (0.98..1.08) | 83 |
//! | conv1 fwd 6 x 25 x 50176 | 58 | 57 | 1.01 (0.86..1.14) | 34 |
//! | conv2 fwd 16 x 150 x 6400 | 106 | 109 | 0.97 (0.95..1.02) | 62 |
//! | fc1 fwd 64 x 400 x 120 | 149 | 152 | 0.98 (0.95..1.06) | 88 |
//! | fc2 fwd 64 x 120 x 84 | 138 | 111 | 1.24 (1.10..1.68) | 82 |
//! | fc3 fwd 64 x 84 x 10 | 57 | 34 | 1.67 (1.61..1.89) | 34 |
//! | conv1 dW 6 x 50176 x 25 | 61 | 58 | 1.06 (1.02..1.14) | 36 |
//! | conv2 dW 16 x 6400 x 150 | 89 | 101 | 0.88 (0.87..0.92) | 53 |
//! | conv2 dCols 150 x 16 x 6400 | 101 | 85 | 1.19 (1.13..1.25) | 60 |
//! | fc1 dX 64 x 120 x 400 | 157 | 159 | 0.99 (0.95..0.99) | 93 |
//! | fc1 dW 120 x 64 x 400 | 154 | 162 | 0.95 (0.91..0.98) | 91 |
//!
//! The 1.5x goal holds only at fc3; 64^3 is 1.36x, fc2 1.24x, conv2 dCols 1.19x. Where both
//! libraries run near the FMA peak (squares, fc1, fc1 dX and dW: 83..93% of 169) 1.5x is out
//! of reach by arithmetic; conv1 forward and weight gradient stream 6 MB per call (B or A
//! read once, from L3) and run at that bandwidth in both libraries. The largest gap left is
//! conv2 dW (16 x 6400 x 150, A and B read in place, 50 k blocks of 128): 0.88x PyTorch,
//! its profile stalls on the loads of B (rows 600 B apart, 3.8 MB from L3 per call); the
//! variants below did not close it.
//!
//! Measured and not taken (side by side, best of ~400 ms by thread CPU time): for conv2 dW
//! (16 x 6400 x 150, A and B read in place) k blocks of 768 or 128 instead of 384 (85..89
//! against 83..93; 128 came later with the shared-sliver rule above) and packing A
//! (79..86); prefetching B read in place 768 or 2048 floats ahead instead of 192 (conv1 and
//! conv2 forward and weight gradient: equal or slower), or the next k block's rows of the
//! sliver (conv2 dW +2%, conv1 dW -5%, fc1 dX -10%); row-panel order up to k blocks of 64
//! (fc1 dW, 120 x 64 x 400, whose C fits L2: no difference beyond the noise, so the rule
//! stays at 32).
//!
//! Packing buffers are thread-local and only grow, so steady-state calls do not allocate.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod driver;
#[cfg(target_arch = "aarch64")]
mod neon;
mod pack;
pub mod scalar;

pub use driver::Blocking;

use crate::{kernel_table, Isa, Kernels};

/// Whether an operand is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transpose {
    /// `op(X) = X`.
    No,
    /// `op(X) = X^T`.
    Yes,
}

impl Transpose {
    /// `(rows, cols)` of the stored matrix whose `op` is `rows_op x cols_op`.
    #[inline]
    pub fn stored_dims(self, rows_op: usize, cols_op: usize) -> (usize, usize) {
        match self {
            Transpose::No => (rows_op, cols_op),
            Transpose::Yes => (cols_op, rows_op),
        }
    }
}

/// A GEMM call's arguments, after the length checks (so ISA code can trust them).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GemmArgs<'a> {
    pub transa: Transpose,
    pub transb: Transpose,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub a: &'a [f32],
    pub lda: usize,
    pub b: &'a [f32],
    pub ldb: usize,
    pub beta: f32,
    pub ldc: usize,
}

kernel_table! {
    /// Per-ISA GEMM entry points.
    pub(crate) struct Table {
        sgemm: unsafe fn(&GemmArgs<'_>, &mut [f32]),
    }
}

/// Safety: the scalar reference is safe for any checked arguments.
unsafe fn scalar_sgemm(args: &GemmArgs<'_>, c: &mut [f32]) {
    scalar::gemm(
        args.transa,
        args.transb,
        args.m,
        args.n,
        args.k,
        args.alpha,
        args.a,
        args.lda,
        args.b,
        args.ldb,
        args.beta,
        c,
        args.ldc,
    );
}

pub(crate) fn table(isa: Isa) -> Table {
    match isa {
        Isa::Scalar => Table {
            sgemm: scalar_sgemm,
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Table { sgemm: avx2::sgemm },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Table {
            sgemm: avx512::sgemm,
        },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Table { sgemm: neon::sgemm },
        // Unreachable: `Kernels::for_isa` refuses an ISA of another architecture.
        #[allow(unreachable_patterns)]
        _ => Table {
            sgemm: scalar_sgemm,
        },
    }
}

/// The block sizes the SIMD GEMM of `isa` uses (`None` for the scalar reference, which does not
/// block). Tests use it to aim shapes at the block boundaries.
#[doc(hidden)]
pub fn blocking(isa: Isa) -> Option<Blocking> {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some(avx2::BLOCKING),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some(avx512::BLOCKING),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Some(neon::BLOCKING),
        _ => None,
    }
}

/// The number of elements a row-major `rows x cols` matrix with leading dimension `ld` spans:
/// `(rows - 1) * ld + cols`, or 0 when it is empty.
///
/// # Panics
/// If `ld < cols` (with `rows > 1`), or on overflow.
#[track_caller]
pub fn matrix_span(what: &str, rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 || cols == 0 {
        return 0;
    }
    assert!(
        ld >= cols,
        "{what}: leading dimension {ld} is smaller than the row length {cols}"
    );
    (rows - 1)
        .checked_mul(ld)
        .and_then(|v| v.checked_add(cols))
        .unwrap_or_else(|| panic!("{what}: {rows}x{cols} with leading dimension {ld} overflows"))
}

/// Checks a matrix slice: it must hold at least `(rows - 1) * ld + cols` elements (the span) and
/// at most `rows * ld` (the span padded to whole rows).
#[track_caller]
pub(crate) fn check_matrix(what: &str, rows: usize, cols: usize, ld: usize, len: usize) {
    let span = matrix_span(what, rows, cols, ld);
    // The span padded to whole rows; where that overflows, no slice is too long.
    let padded = if span == 0 {
        0
    } else {
        rows.saturating_mul(ld.max(cols))
    };
    if len < span || len > padded.max(span) {
        if span == padded {
            panic!(
                "{what}: expected length {span}, got {len} ({rows}x{cols}, leading dimension {ld})"
            );
        }
        panic!(
            "{what}: expected length between {span} and {padded}, got {len} ({rows}x{cols}, leading dimension {ld})"
        );
    }
}

impl Kernels {
    /// `C = alpha * op(A) * op(B) + beta * C` where `op(A)` is `m x k`, `op(B)` is `k x n` and
    /// `C` is `m x n`, all row-major: element `(i, j)` of a matrix `X` with leading dimension
    /// `ldx` is `x[i * ldx + j]`.
    ///
    /// # Panics
    /// If a slice's length disagrees with its shape: each must hold at least
    /// `(rows - 1) * ld + cols` elements and at most `rows * ld` (rows and cols of the matrix
    /// as stored), or if a leading dimension is smaller than its row length.
    #[allow(clippy::too_many_arguments)]
    pub fn sgemm(
        &self,
        transa: Transpose,
        transb: Transpose,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        beta: f32,
        c: &mut [f32],
        ldc: usize,
    ) {
        let (ar, ac) = transa.stored_dims(m, k);
        let (br, bc) = transb.stored_dims(k, n);
        check_matrix("sgemm: A", ar, ac, lda, a.len());
        check_matrix("sgemm: B", br, bc, ldb, b.len());
        check_matrix("sgemm: C", m, n, ldc, c.len());
        if m == 0 || n == 0 {
            return;
        }
        let args = GemmArgs {
            transa,
            transb,
            m,
            n,
            k,
            alpha,
            a,
            lda,
            b,
            ldb,
            beta,
            ldc,
        };
        // SAFETY: `self` was built by `Kernels::for_isa`, which checked the CPU supports the
        // table's ISA, and every slice was checked against its shape above.
        unsafe { (self.gemm.sgemm)(&args, c) }
    }
}
