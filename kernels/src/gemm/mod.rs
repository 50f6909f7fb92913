//! Single-precision GEMM: `C = alpha * op(A) * op(B) + beta * C`, `op(A)` of `m x k`, `op(B)`
//! of `k x n`, `op` the identity or the transpose ([`Transpose`]).
//!
//! # Contract
//!
//! Every matrix is row-major with a leading dimension: element `(i, j)` of a matrix `X`
//! stored with leading dimension `ldx` is `x[i * ldx + j]`, and a transposed operand is given
//! as stored. Semantics are BLAS sgemm's: `m == 0` or `n == 0` does nothing; `k == 0` gives
//! `C = beta * C`; `beta == 0` never reads C, so NaN or garbage there does not reach the
//! result. Only the `m x n` window of C is written. Each element is a dot product of length k
//! summed in an order that depends on the ISA and the shape (within the usual
//! `(k + 2) * eps` bound of the f64 reference, not bit-identical across ISAs).
//!
//! `Kernels::sgemm_with` adds an [`Epilogue`]: `C = relu?(alpha op(A) op(B) + beta C + bias[j])`
//! (bias by column, ReLU optional), applied to each element once, in registers, when its final
//! value is stored (the last k block; for `k == 0` to `beta * C`). Its bits equal `sgemm`'s
//! result followed by `Kernels::bias_add` and `Kernels::relu_forward_in_place` on the same
//! table: the same two operations per element, `x + bias[j]` then ReLU's `x < 0 ? +0 : x`
//! (NaN and -0.0 kept), so the unfused kernels stay the reference. Each table has a second
//! entry for it (`sgemm_epilogue`), so plain `sgemm` is compiled as if there were no
//! epilogue; in it, every microkernel and dot tile is compiled once per epilogue (bias, ReLU:
//! constants) and chosen once per tile, so no k loop tests anything new.
//!
//! # Method
//!
//! One blocked driver (`driver.rs`, safe code) serves every SIMD instruction set; each ISA
//! file supplies an `MR x NR` register-tiled microkernel (the C tile held in registers for a
//! whole k block) and its block sizes (`Blocking`). The loops follow Goto / BLIS: n blocks
//! of `nc` columns, k blocks of `kc` (B panel packed once per pair, later k blocks adding to
//! C), m blocks of `mc` rows (A packed once per block), then `NR`-wide slivers of B and
//! `MR`-tall slivers of A. Blocks are balanced (k = 257 runs as 2 x 129). Packing absorbs the
//! transposes, so all four combinations run the same microkernel; edge tiles run it with
//! lane masks (x86) or through zero-padded stack copies (NEON). For skinny shapes the plan
//! reads B or A in place instead of packing it and shortens k blocks, and on x86 `A B^T`
//! with few rows or columns runs as dot products of contiguous rows (`dot.rs`); the rules
//! are in `driver.rs`, their measurements in `benches/README.md`.
//!
//! # Invariants the unsafe code relies on
//!
//! - `Kernels::sgemm` checks every slice against the span its shape and leading dimension
//!   imply (at least `(rows - 1) * ld + cols`, `ld >= cols`, no overflow), and the bias
//!   against `n`, before any SIMD code runs; ISA code receives only checked `GemmArgs`.
//! - A table's entry (`avx2::sgemm`, ...) is called only on a CPU the dispatcher found to
//!   have its features; the microkernel types can only be built inside those entries.
//! - Every microkernel and dot tile starts with `Tile::assert_fits` / `DotTile::assert_fits`:
//!   every index it will read or write lies in its slices, so its unchecked loads and
//!   stores are in bounds. Masked-off lanes are never accessed; pointers advanced past the
//!   data use `wrapping_add` and are not dereferenced.
//! - Packing buffers are thread-local, moved out for the duration of a call and only grow,
//!   so steady-state calls do not allocate and nested calls cannot alias them.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod dot;
mod driver;
#[cfg(target_arch = "aarch64")]
mod neon;
mod pack;
pub mod scalar;
mod tile;

use driver::Blocking;

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

/// What `Kernels::sgemm_with` applies to each element of C as it stores its final value:
/// `+ bias[j]` (`bias` of length n, indexed by column), then ReLU when `relu` is set.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// Added to every element of column `j`: `bias[j]`.
    pub bias: Option<&'a [f32]>,
    /// `x < 0 ? +0 : x` after the bias (the ReLU kernel's semantics: NaN and -0.0 kept).
    pub relu: bool,
}

impl Epilogue<'_> {
    /// Nothing: `sgemm_with` with it is `sgemm`.
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        relu: false,
    };

    /// Whether there is something to apply.
    #[inline(always)]
    pub(crate) fn is_some(&self) -> bool {
        self.bias.is_some() || self.relu
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
    /// Checked: a bias holds n elements.
    pub epilogue: Epilogue<'a>,
}

kernel_table! {
    /// Per-ISA GEMM entry points.
    pub(crate) struct Table {
        sgemm: unsafe fn(&GemmArgs<'_>, &mut [f32]),
        // The same with `args.epilogue` applied (a separate function, so plain `sgemm` is
        // compiled as if the epilogue did not exist).
        sgemm_epilogue: unsafe fn(&GemmArgs<'_>, &mut [f32]),
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
    let Epilogue { bias, relu } = args.epilogue;
    scalar::epilogue(args.m, args.n, c, args.ldc, bias, relu);
}

pub(crate) fn table(isa: Isa) -> Table {
    match isa {
        Isa::Scalar => Table {
            sgemm: scalar_sgemm,
            sgemm_epilogue: scalar_sgemm,
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Table {
            sgemm: avx2::sgemm,
            sgemm_epilogue: avx2::sgemm_epilogue,
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Table {
            sgemm: avx512::sgemm,
            sgemm_epilogue: avx512::sgemm_epilogue,
        },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Table {
            sgemm: neon::sgemm,
            sgemm_epilogue: neon::sgemm_epilogue,
        },
        // Unreachable: `Kernels::for_isa` refuses an ISA of another architecture.
        #[allow(unreachable_patterns)]
        _ => Table {
            sgemm: scalar_sgemm,
            sgemm_epilogue: scalar_sgemm,
        },
    }
}

/// The block sizes the SIMD GEMM of `isa` uses (`None` for the scalar reference, which does not
/// block).
pub(crate) fn blocking(isa: Isa) -> Option<Blocking> {
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
pub(crate) fn matrix_span(what: &str, rows: usize, cols: usize, ld: usize) -> usize {
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

/// Test hook, not API: the register tile and block sizes of `isa`'s GEMM (`mr`, `nr`, `kc`,
/// `mc`, `nc`; `None` for the scalar reference), so the tests can aim shapes at every tile
/// edge and block boundary.
#[doc(hidden)]
pub fn blocking_for_tests(isa: Isa) -> Option<Blocking> {
    blocking(isa)
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
            epilogue: Epilogue::NONE,
        };
        self.run_sgemm(["sgemm: A", "sgemm: B", "sgemm: C"], &args, c);
    }

    /// [`sgemm`](Kernels::sgemm) with an [`Epilogue`] applied as each element of C is stored:
    /// `C = relu?(alpha * op(A) * op(B) + beta * C + bias[j])`. Bit-identical to `sgemm`
    /// followed by [`bias_add`](Kernels::bias_add) (on each row of C) and
    /// [`relu_forward_in_place`](Kernels::relu_forward_in_place) on the same table.
    ///
    /// # Panics
    /// As `sgemm`, and if the bias's length is not `n`.
    #[allow(clippy::too_many_arguments)]
    pub fn sgemm_with(
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
        epilogue: &Epilogue<'_>,
    ) {
        if let Some(bias) = epilogue.bias {
            crate::check_len("sgemm_with: bias", n, bias.len());
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
            epilogue: *epilogue,
        };
        self.run_sgemm(
            ["sgemm_with: A", "sgemm_with: B", "sgemm_with: C"],
            &args,
            c,
        );
    }

    /// Checks A, B and C (messages prefixed with `names`) and runs the table's GEMM.
    #[track_caller]
    fn run_sgemm(&self, names: [&str; 3], args: &GemmArgs<'_>, c: &mut [f32]) {
        let GemmArgs { m, n, k, .. } = *args;
        let (ar, ac) = args.transa.stored_dims(m, k);
        let (br, bc) = args.transb.stored_dims(k, n);
        check_matrix(names[0], ar, ac, args.lda, args.a.len());
        check_matrix(names[1], br, bc, args.ldb, args.b.len());
        check_matrix(names[2], m, n, args.ldc, c.len());
        if m == 0 || n == 0 {
            return;
        }
        // SAFETY: `self` was built by `Kernels::for_isa`, which checked the CPU supports the
        // table's ISA; every slice was checked against its shape above, and the bias (by
        // `sgemm_with`) against n.
        unsafe {
            if args.epilogue.is_some() {
                (self.gemm.sgemm_epilogue)(args, c)
            } else {
                (self.gemm.sgemm)(args, c)
            }
        }
    }
}
