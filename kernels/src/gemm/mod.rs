//! Single-precision GEMM: `C = alpha * op(A) * op(B) + beta * C`, row-major with leading
//! dimensions, `op` the identity or the transpose.
//!
//! Semantics (as BLAS): `m == 0` or `n == 0` does nothing; `k == 0` gives `C = beta * C`;
//! `beta == 0` never reads `C`, so NaN or garbage there does not leak into the result.
//!
//! # Method
//!
//! One blocked driver (`driver.rs`, safe code) serves every instruction set; each ISA file
//! supplies a register-tiled microkernel and its block sizes. The microkernels stay per ISA:
//! their register tiles, edge handling and FMA forms differ. The loops follow Goto / BLIS:
//!
//! ```text
//! for jc in n by NC            B panel kc x nc: packed once per (jc, pc), lives in L3
//!   for pc in k by KC          later k blocks accumulate into C (beta = 1)
//!     for ic in m by MC        A block mc x kc: packed once per (jc, pc, ic), lives in L2
//!       for jr in nc by NR     one B sliver (kc x NR) stays in L1 or L2 ...
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
//! Why these sizes: the tile is the largest that fits the register file with enough
//! independent FMA chains to cover latency x throughput; KC keeps a B sliver plus an A sliver
//! within half of L1 on AVX2 (on AVX-512 L2 streams the sliver, so KC is set by the passes over
//! C); MC keeps the packed A block a small share of L2; NC is a multiple of NR. Blocks are
//! balanced (k = 257 runs as 2 x 129), so no pass over C is spent on a sliver of work.
//!
//! Packing absorbs the transposes: all four combinations run the same microkernel. Edge tiles
//! run the same loop without a scalar GEMM (AVX2: `vmaskmovps` on the missing columns, the last
//! row of A repeated for missing rows and never stored; AVX-512: lane masks and a loop for the
//! exact rows left; NEON: zero-padded stack buffers, only the valid corner written back).
//!
//! Skinny shapes (LeNet-5's) skip packing where it costs more than it saves (the driver's
//! plan): B is read in place when it is not transposed, m fits one block and either m is tiny
//! or `ldb` would put its rows in a few L1 sets, or when all of B fits L1; k blocks shrink so
//! such slivers stay in L1 and within the data TLB; A is read in place when n is small; short
//! k blocks walk C row panel by row panel so the hardware prefetcher follows the writes; and on
//! x86 `A B^T` with few rows or columns (a convolution's weight gradient) runs as blocks of dot
//! products of contiguous rows, nothing packed. The measurements behind each rule are in
//! `benches/README.md`.
//!
//! # Invariants
//!
//! The entry point checks every slice against the span its shape and leading dimension imply
//! before any SIMD code runs; the driver then hands a microkernel only tiles inside the
//! operands (edge tiles masked or copied) and packed buffers of the sizes its block plan
//! computed. Packing buffers are thread-local and only grow, so steady-state calls do not
//! allocate.

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
