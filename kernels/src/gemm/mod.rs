//! Single-precision GEMM: `C = alpha * op(A) * op(B) + beta * C`, row-major with leading
//! dimensions, `op` the identity or the transpose.
//!
//! Semantics (as BLAS): `m == 0` or `n == 0` does nothing; `k == 0` gives `C = beta * C`;
//! `beta == 0` never reads `C`, so NaN or garbage there does not leak into the result.

pub mod scalar;

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
        // Filled in by the SIMD implementations; until then the scalar reference.
        Isa::Avx2 | Isa::Neon => Table {
            sgemm: scalar_sgemm,
        },
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
    let padded = if span == 0 { 0 } else { rows * ld.max(cols) };
    if len < span || len > padded.max(span) {
        if span == padded {
            panic!("{what}: expected length {span}, got {len} ({rows}x{cols}, leading dimension {ld})");
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
