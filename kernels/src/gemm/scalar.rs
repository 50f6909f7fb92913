//! The GEMM reference: a plain triple loop, generic over `f32` and `f64`.

use super::Transpose;
use crate::Real;

/// `C = alpha * op(A) * op(B) + beta * C`, row-major with leading dimensions (see
/// [`Kernels::sgemm`](crate::Kernels::sgemm)). Accumulates each dot product in `T` in order of
/// `p = 0..k`. `beta == 0` does not read `C`.
///
/// # Panics
/// On an out-of-bounds index (this reference trusts its caller for the shapes).
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Real>(
    transa: Transpose,
    transb: Transpose,
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    lda: usize,
    b: &[T],
    ldb: usize,
    beta: T,
    c: &mut [T],
    ldc: usize,
) {
    let a_at = |i: usize, p: usize| match transa {
        Transpose::No => a[i * lda + p],
        Transpose::Yes => a[p * lda + i],
    };
    let b_at = |p: usize, j: usize| match transb {
        Transpose::No => b[p * ldb + j],
        Transpose::Yes => b[j * ldb + p],
    };
    for i in 0..m {
        for j in 0..n {
            let mut acc = T::ZERO;
            for p in 0..k {
                acc += a_at(i, p) * b_at(p, j);
            }
            let out = &mut c[i * ldc + j];
            *out = if beta == T::ZERO {
                alpha * acc
            } else {
                alpha * acc + beta * *out
            };
        }
    }
}

/// The epilogue of [`Kernels::sgemm_with`](crate::Kernels::sgemm_with) on a computed C:
/// `C(i, j) = relu?(C(i, j) + bias[j])` over the `m x n` window, ReLU being
/// [`relu::scalar::relu`](crate::relu::scalar::relu) (NaN and -0.0 kept).
///
/// # Panics
/// On an out-of-bounds index (a bias shorter than n, a C shorter than its shape).
pub fn epilogue<T: Real>(
    m: usize,
    n: usize,
    c: &mut [T],
    ldc: usize,
    bias: Option<&[T]>,
    relu: bool,
) {
    if m == 0 || n == 0 || (bias.is_none() && !relu) {
        return;
    }
    for row in c.chunks_mut(ldc).take(m) {
        let row = &mut row[..n];
        if let Some(bias) = bias {
            for (x, &b) in row.iter_mut().zip(&bias[..n]) {
                *x += b;
            }
        }
        if relu {
            for x in row {
                *x = crate::relu::scalar::relu(*x);
            }
        }
    }
}
