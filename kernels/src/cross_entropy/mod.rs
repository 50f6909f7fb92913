//! Fused softmax-cross-entropy, forward and backward in one call, with every option of
//! PyTorch's `CrossEntropyLoss` and its numbers.
//!
//! # Contract
//!
//! Logits `x` are `[N, C]`, row-major; `lse = log(sum_c exp(x_c))`, `logp_c = x_c - lse`. With
//! class weights `w` (all 1 when absent) and label smoothing `e` (applied when `e > 0`):
//! class-index targets `t` give `loss_n = (1 - e) (-w_t logp_t) + (e / C) (-sum_c w_c logp_c)`
//! (a row whose target is `ignore_index` has loss 0 and no gradient); probability targets `p`
//! give `loss_n = -sum_c w_c p'_c logp_c` with `p'_c = p_c (1 - e) + e / C`. The gradient is
//! `dx_j = g (s_j sum_c a_c - a_j)`, `s = softmax(x)`, `g` the incoming gradient with the
//! reduction's scale folded in, `a` the row's target distribution times the weights.
//! Reductions follow PyTorch's divisors: `Sum`; `Mean` over class indices divides by the sum of
//! `w_t` of the rows not ignored (the smoothing term too; all ignored or no rows: NaN, every
//! gradient 0); `Mean` over probabilities divides by `N`; `None` writes `row_losses` and returns
//! their sum. Non-finite logits give PyTorch's results: a NaN or `+inf` logit, or a row all
//! `-inf`, makes that row NaN; a `-inf` logit elsewhere has probability 0. Bad data is a
//! [`CrossEntropyError`] with PyTorch's wording; a length that disagrees with the shape panics.
//!
//! # Method
//!
//! One exponential per element, each row read from memory once. The SIMD row kernel
//! (`vector.rs`, one body over the SIMD vocabulary) makes two passes over a row:
//!
//! 1. The maximum of the row's first 1024 logits is the first reference `r`. Block by block
//!    (eight vectors), `e_j = exp(x_j - r)` is written to the gradient buffer, summed into `S`,
//!    and `sum_c a_c (x_c - r)` accumulated. A block past the head whose maximum is above `r`
//!    moves the reference there (`S` times `exp(r_old - r)`, the accumulated sum shifted) and
//!    starts a new *segment*; the 15th move takes the maximum of the whole rest, so a row has
//!    at most 16 segments (`Segments`).
//! 2. `dx_j = e_j (g sum(a) / S exp(r_k - m)) - g a_j` segment by segment over the buffer the
//!    row just left in cache (`m` the last reference, whose factor is exactly 1), and one
//!    scalar fix-up for the target's one-hot part.
//!
//! `loss = log S - (x_t - m)`. The forward-only call stops after pass 1. Short rows
//! (`C <= 32`, class indices, no smoothing) go sixteen at a time through the block kernel
//! (`block.rs`, also one body over the vocabulary) that puts one row in each lane, so maximum,
//! exponentials and sums need no horizontal operations; the last rows of a batch are padded, so
//! a row's numbers do not depend on how a batch is split. The scalar table makes the plain three passes of the reference. Two passes,
//! not one online pass: the exponential is the bottleneck and the second write hits cache.
//!
//! ```
//! use simdnet_kernels::cross_entropy::{CrossEntropyOptions, GradOutput, Targets};
//! use simdnet_kernels::Kernels;
//!
//! let k = Kernels::get();
//! let logits = [2.0f32, 1.0, 0.1];
//! let mut grad = [0.0f32; 3];
//! let loss = k
//!     .cross_entropy_forward_backward(&logits, 3, Targets::Indices(&[0]),
//!         &CrossEntropyOptions::default(), GradOutput::Scalar(1.0), &mut grad, None)
//!     .unwrap();
//! assert!((loss - 0.417).abs() < 5e-4);
//! // The gradient of a single row under 'mean' is softmax - onehot.
//! let softmax = [grad[0] + 1.0, grad[1], grad[2]];
//! for (s, want) in softmax.iter().zip([0.659, 0.242, 0.099]) {
//!     assert!((s - want).abs() < 5e-4, "{s} vs {want}");
//! }
//! ```

mod block;
mod options;
mod plan;
mod rows;
pub mod scalar;
mod vector;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

pub use options::{CrossEntropyError, CrossEntropyOptions, GradOutput, Reduction, Targets};
pub(crate) use plan::{plan, Plan};

use crate::kernel_table;

/// What pass 2 multiplies the row's target distribution `a_c` by, per ISA: the coefficient
/// vector `c` with `dx_j = s_j * sum(a) - beta * c_j` and the returned `sum c_j (x_j - m)`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Coef<'a> {
    /// No per-class term: nothing subtracted, nothing accumulated.
    None,
    /// `c_j = 1`.
    Ones,
    /// `c_j = w_j`.
    Weights(&'a [f32]),
    /// `c_j = w_j * (p_j * keep + add)` (`w_j = 1` without weights).
    Probs {
        p: &'a [f32],
        w: Option<&'a [f32]>,
        keep: f32,
        add: f32,
    },
}

/// A row's constants for the kernels: `dx_j = exp(x_j - m) / S * alpha - beta * c_j`, then
/// `fix = (t, amount)` subtracted at index `t`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowArgs<'a> {
    pub alpha: f32,
    pub beta: f32,
    pub coef: Coef<'a>,
    pub fix: Option<(usize, f32)>,
}

/// What a row kernel measured: the reference point `m` (the maximum, or 0 when there is none
/// above `-inf`), `S = sum exp(x - m)` (NaN when there is no such maximum), and
/// `sum c_j (x_j - m)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowStats {
    pub m: f32,
    pub sum: f32,
    pub acc: f32,
}

/// The most references a SIMD row kernel's first pass uses in one row (see the module docs):
/// when the last one is taken, it is the maximum of the whole rest of the row, so it cannot
/// change again.
pub(crate) const MAX_SEGMENTS: usize = 16;

/// The references of a SIMD row kernel's first pass: elements `start[k]` up to the next
/// segment's start (the last: to the row's end) hold `exp(x_j - reference[k])`. The first
/// segment's reference is `-inf`, "no maximum yet": its elements are `exp(-inf) = 0` (or NaN),
/// computed against 0.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segments {
    start: [usize; MAX_SEGMENTS],
    reference: [f32; MAX_SEGMENTS],
    len: usize,
}

impl Segments {
    pub(crate) fn new() -> Self {
        Segments {
            start: [0; MAX_SEGMENTS],
            reference: [f32::NEG_INFINITY; MAX_SEGMENTS],
            len: 1,
        }
    }

    /// Whether the next [`Segments::push`] takes the last place.
    pub(crate) fn last_place(&self) -> bool {
        self.len + 1 == MAX_SEGMENTS
    }

    /// A new reference from element `start` on (an empty last segment is replaced).
    pub(crate) fn push(&mut self, start: usize, reference: f32) {
        if self.start[self.len - 1] == start {
            self.len -= 1;
        }
        self.start[self.len] = start;
        self.reference[self.len] = reference;
        self.len += 1;
    }

    /// `(start, end, reference)` of each segment of a row of `n` elements.
    pub(crate) fn iter(&self, n: usize) -> impl Iterator<Item = (usize, usize, f32)> + '_ {
        (0..self.len).map(move |k| {
            let end = if k + 1 < self.len {
                self.start[k + 1]
            } else {
                n
            };
            (self.start[k], end, self.reference[k])
        })
    }
}

/// Rows handled together by the block kernel (one row per lane).
pub(crate) const BLOCK_ROWS: usize = 16;
/// Rows at most this long, with class-index targets and no smoothing, go through the block
/// kernel: sixteen rows side by side, one per lane (one zmm vector; two ymm or four NEON
/// vectors), so short rows need no horizontal operations and their logarithms and divisions
/// are done a vector at a time.
pub(crate) const BLOCK_MAX_CLASSES: usize = 32;

/// A block's targets for the block kernel. Row `r`'s gradient is
/// `exp(x_j - m) / S * alpha[r] - alpha[r] * [j == target[r]]`, its loss
/// `weight[r] * (log S - (x_t - m))`, or exactly 0 when `keep[r]` is 0 (an ignored row, whose
/// `target` is then 0 and `alpha` 0).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockArgs {
    pub target: [i32; BLOCK_ROWS],
    pub alpha: [f32; BLOCK_ROWS],
    pub weight: [f32; BLOCK_ROWS],
    /// -1 (all bits) for a row with a loss, 0 for an ignored row.
    pub keep: [i32; BLOCK_ROWS],
}

kernel_table! {
    /// Per-ISA row kernels of the fused softmax-cross-entropy.
    pub(crate) struct Table {
        // The passes over a row, the gradient into a buffer (or, forward only, nowhere).
        row: unsafe fn(&[f32], Option<&mut [f32]>, &RowArgs<'_>) -> RowStats,
        // The same, the gradient over the logits.
        row_in_place: unsafe fn(&mut [f32], &RowArgs<'_>) -> RowStats,
        // `BLOCK_ROWS` rows of `classes <= BLOCK_MAX_CLASSES` logits side by side (class indices, no
        // smoothing); returns the rows' losses.
        block: unsafe fn(&[f32], usize, Option<&mut [f32]>, &BlockArgs) -> [f32; BLOCK_ROWS],
        // The same, the gradient over the logits.
        block_in_place: unsafe fn(&mut [f32], usize, &BlockArgs) -> [f32; BLOCK_ROWS],
    }
}

/// Safety: `out` and the coefficient slices as long as `x`.
unsafe fn scalar_row(x: &[f32], out: Option<&mut [f32]>, args: &RowArgs<'_>) -> RowStats {
    match out {
        Some(out) => {
            let n = x.len();
            let cells = core::cell::Cell::from_mut(out).as_slice_of_cells();
            scalar::row(
                n,
                |j| x[j],
                Some((
                    |j: usize| cells[j].get(),
                    |j: usize, v: f32| cells[j].set(v),
                )),
                args,
            )
        }
        None => scalar::row::<fn(usize) -> f32, fn(usize, f32)>(x.len(), |j| x[j], None, args),
    }
}

/// Safety: the coefficient slices as long as `x`.
unsafe fn scalar_row_in_place(x: &mut [f32], args: &RowArgs<'_>) -> RowStats {
    let n = x.len();
    let cells = core::cell::Cell::from_mut(x).as_slice_of_cells();
    scalar::row(
        n,
        |j| cells[j].get(),
        Some((
            |j: usize| cells[j].get(),
            |j: usize, v: f32| cells[j].set(v),
        )),
        args,
    )
}

/// Safety: `x` (and `out`) hold `BLOCK_ROWS * classes` floats; targets inside the rows.
unsafe fn scalar_block(
    x: &[f32],
    classes: usize,
    out: Option<&mut [f32]>,
    args: &BlockArgs,
) -> [f32; BLOCK_ROWS] {
    match out {
        Some(out) => {
            let cells = core::cell::Cell::from_mut(out).as_slice_of_cells();
            scalar::block(
                classes,
                |i| x[i],
                Some(|i: usize, v: f32| cells[i].set(v)),
                args,
            )
        }
        None => scalar::block::<fn(usize, f32)>(classes, |i| x[i], None, args),
    }
}

/// Safety: `x` holds `BLOCK_ROWS * classes` floats; targets inside the rows.
unsafe fn scalar_block_in_place(
    x: &mut [f32],
    classes: usize,
    args: &BlockArgs,
) -> [f32; BLOCK_ROWS] {
    let cells = core::cell::Cell::from_mut(x).as_slice_of_cells();
    scalar::block(
        classes,
        |i| cells[i].get(),
        Some(|i: usize, v: f32| cells[i].set(v)),
        args,
    )
}

crate::simd::isa_table! {
    Table {
        row: scalar_row,
        row_in_place: scalar_row_in_place,
        block: scalar_block,
        block_in_place: scalar_block_in_place
    },
    avx2: avx2, avx512: avx512, neon: neon
}
