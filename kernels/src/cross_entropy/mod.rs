//! Fused softmax-cross-entropy, forward and backward in one call, with every option of
//! PyTorch's `CrossEntropyLoss` and its numbers.
//!
//! # Formulas
//!
//! For logits `x` of shape `[N, C]` (row-major), row `n`, `lse = log(sum_c exp(x_c))` and
//! `logp_c = x_c - lse`. With class weights `w` (all 1 when absent) and label smoothing `e`
//! (only applied when `e > 0`, as PyTorch):
//!
//! - class-index targets `t`: `nll = -w_t * logp_t`, `smooth = -sum_c w_c * logp_c`,
//!   `loss_n = (1 - e) * nll + (e / C) * smooth`; a row whose target equals `ignore_index`
//!   has loss 0 and no gradient;
//! - probability targets `p` (`[N, C]`): `p'_c = p_c * (1 - e) + e / C`,
//!   `loss_n = -sum_c w_c * p'_c * logp_c`.
//!
//! The gradient with respect to the logits, with `s = softmax(x)` and the incoming gradient
//! `g` (the reduction's scale folded in):
//! `dx_j = g * (s_j * sum_c a_c - a_j)` where `a` is the row's target distribution times the
//! weights: `a_c = (1 - e) * w_t * [c == t] + (e / C) * w_c` for indices, `a_c = w_c * p'_c`
//! for probabilities.
//!
//! # Reductions (PyTorch's divisor rules)
//!
//! - `Sum`: the sum of the row losses.
//! - `Mean` with class indices: the sum divided by the sum of `w_t` over the rows that are not
//!   ignored — for the smoothing term too. An all-ignored batch (or zero rows) gives `NaN`, and
//!   every gradient is 0 (the ignored rows have none).
//! - `Mean` with probabilities: divided by `N` (not by weights); zero rows give `NaN`.
//! - `None`: the per-row losses go to `row_losses`, and the returned value is their sum (what
//!   PyTorch's `loss.sum()` would give). `GradOutput::PerRow` gives each row its own incoming
//!   gradient.
//!
//! Rows with non-finite logits give what PyTorch gives: a NaN or `+inf` logit, or a row that is
//! all `-inf`, makes that row's loss and gradient NaN; a `-inf` logit elsewhere has
//! probability 0 (loss `+inf` when it is the target, or with smoothing, since
//! `smooth` contains `-logp` of it; gradient finite); `0 * inf` in a weighted or probability
//! term is NaN as in PyTorch. Ignored rows get `0 * softmax`, so NaN where the softmax is.
//!
//! # Pass structure
//!
//! One exponential per element, and each row comes from memory once. The SIMD row kernels
//! (AVX-512, AVX2, NEON) make two passes over a row:
//!
//! 1. The maximum of the row's first 1024 logits (the whole row when it is shorter) is the
//!    first reference `r`. Then, block by block (128 logits on AVX-512, 64 on AVX2, 32 on NEON),
//!    `e_j = exp(x_j - r)` is written to the gradient buffer (over the logits in place), summed
//!    into `S`, and `sum_c a_c (x_c - r)` accumulated for the smoothing and probability terms.
//!    A block past the first 1024 whose maximum is above `r` first moves the reference up to
//!    it: `S` is multiplied by `exp(r_old - r)`, the accumulated sum shifted by
//!    `(r_old - r) * sum a`, and a new *segment* of the row starts. The 15th move takes the
//!    maximum of the whole rest of the row, so a row has at most 16 segments. The head's and
//!    each block's maximum are read again from L1 by the exponentials. When the gradient
//!    buffer is not the logits, its lines are fetched 2 KiB ahead of the stores (x86), so no
//!    store waits for its line.
//! 2. `dx_j = e_j * (g * sum(a) / S * exp(r_k - m)) - g * a_j` over the gradient buffer, which
//!    the row has just left in L1/L2, segment by segment: `m` is the row's maximum, the last
//!    segment's reference, for which the factor `exp(r_k - m)` is exactly 1, so rows up to 1024
//!    long (and most longer ones, after the first segments) are scaled as in a plain
//!    "max, then exp-and-sum". The target's one-hot part is one scalar fix-up.
//!
//! `loss = lse - x[target]` is then `log S - (x_t - m)`. The forward-only variant stops after
//! pass 1 and writes nothing. The scalar table makes the plain three passes (maximum,
//! exp-and-sum, scale): the order of the reference. Elements before a moved reference get one
//! more rounding (the factor), well within the tests' bounds.
//!
//! Why (AVX2, one thread, side by side; the lead's benchmark table has the final numbers): the
//! exponential costs about 8 cycles per 8 lanes, so the exp pass is compute-bound, and at
//! [32, 32000] (4 MB of logits, 4 MB of gradient, more than L2) a separate maximum pass
//! streamed each row from memory with the exponential unit idle, and the gradient's first
//! stores then waited for their lines. Folding the maximum into the exp pass lets memory and
//! arithmetic overlap: on a loaded 2-vCPU machine, old and new interleaved in one process,
//! the separate-buffer call took 0.7-0.85x the time of the three plain passes (e.g. 710 -> 600
//! us run back to back), in place 0.8-0.9x, with [256, 1000] and [64, 10] unchanged within
//! the noise (about 5%). Measured and not taken:
//!
//! - writing the gradient only once, with non-temporal stores (exponentials into a scratch
//!   row, or recomputed): slower here — a 4 MB non-temporal fill took about 540 us against
//!   170 us with ordinary stores, as the machine's large L3 holds the whole working set and
//!   non-temporal stores bypass it;
//! - the online form with a second exponential per element to write the gradient once (no
//!   scale pass): 1.2-1.3x slower than even the old three passes, the exponential being the
//!   bottleneck;
//! - scaling a row's gradient during the next row's first pass: no gain;
//! - (AVX-512) the exponentials into a reused per-thread scratch row and the gradient written
//!   once from it (separate buffer; in place nothing would change), with and without the
//!   gradient's lines fetched ahead in pass 2: slower, side by side in one process over three
//!   rounds — [256, 1000] 87/112/84 us as now against 89/113/98 us with the scratch (without
//!   the fetch: 6-31% slower), [32, 32000] 470/425/431 against 473/466/452 us. A bare
//!   memory model of both patterns (no exponential) does favour the scratch, by about 5% in
//!   most runs (about 400 against 420 us at [32, 32000]), but in the kernel the gradient's first write overlaps
//!   with the exponentials, while from a scratch row the gradient's stores wait alone. Streaming
//!   stores from the scratch row took the same time as ordinary ones (about 405 us in that
//!   model), so no memory traffic is saved;
//! - (AVX-512) the prefetches of pass 1 into L2 only (`_MM_HINT_T1`): no gain, side by side
//!   over three rounds ([256, 1000] 92-94 against 88-90 us, [32, 32000] within the noise).
//!
//! The gradient is thus written twice, the second time from cache. At [32, 32000] with a
//! separate gradient the call moves 12 MB (logits read, gradient fetched for ownership and
//! written back) and takes about the time that memory model takes with no arithmetic at all
//! (410-425 us on this machine): the exponentials are hidden under the memory traffic.
//!
//! # AVX-512
//!
//! The same passes on 16 lanes (blocks of 128 logits, tails through `__mmask16` lane masks,
//! so no scalar tail and no access past a row), the exponential through `vscalefps` (see
//! [`crate::exp`]); pass 1 also fetches the logits one head (4 KiB) ahead, so the next row's
//! head is in cache when its maximum is read (measured side by side: [256, 1000] 7-8% and
//! [32, 32000] in place 12% faster; separate within the noise). The block kernel takes sixteen
//! rows in one zmm vector per column. Side by side with the AVX2 table on this machine
//! (Sapphire Rapids class, 2 vCPUs shared with other jobs, one thread, medians of three
//! rounds interleaved with PyTorch 2.15's `F.cross_entropy(x, y).backward()` on one thread,
//! both in the ranges the rounds gave; measured before the exponential's polynomial was
//! reordered, which made the exp pass 3-8% faster):
//!
//! | shape | AVX-512 separate / in place | AVX2 separate / in place | PyTorch |
//! |---|---|---|---|
//! | [64, 10] | 0.67-0.80 / 0.75-0.86 us | 1.11-1.48 / 1.04-1.36 us | 47-50 us |
//! | [256, 1000] | 83-105 / 90-107 us | 154-191 / 159-168 us | 552-689 us |
//! | [32, 32000] | 476-507 / 336-376 us | 573-690 / 539-581 us | 2086-2167 us |
//!
//! That is 63-71x PyTorch at [64, 10], 5.6-8.3x at [256, 1000], and at [32, 32000] 4.3-4.4x
//! with a separate gradient (the memory-bound case above; PyTorch's own time there has ranged
//! from 2.1 to 4.0 ms between sessions on this machine) and 5.8-6.2x in place.
//! Before the per-call work of short-row batches was cut (block arguments built once per
//! block with the option checks hoisted, the row losses summed in sixteen independent lane
//! sums instead of one chain of dependent f64 additions, the targets checked and counted
//! without a branch per row), `cross_entropy_run` and `plan` took 29% of a [64, 10] call's
//! profile; after, 21%, and the call went from about 0.79 to 0.64 us (AVX2: 1.4 to 1.1 us).
//!
//! Short rows (`C <= 32`) with class-index targets and no smoothing — a classifier's usual
//! batch, e.g. [64, 10] — go sixteen rows at a time through a block kernel that puts one row
//! in each lane: element `j` of the rows is gathered into one vector, so the maximum, the
//! exponentials and the sums need no horizontal operations, and the logarithms and divisions
//! are one vector operation per vector of rows; the gradient is transposed back into rows
//! (AVX-512: sixteen 16-lane columns by one in-register 16x16 transpose, stored with a lane
//! mask of `C` lanes; AVX2 and NEON: two or four sub-blocks of eight or four rows through a
//! small stack tile). Maximum, then exp-and-sum, then scale, with the same results within
//! rounding. The last rows of a batch (fewer than sixteen) go through it too, padded in a
//! stack buffer, so a row's numbers do not depend on how a batch is split.
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

pub mod scalar;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

use crate::{check_len, kernel_table, Isa, Kernels, Real};
use core::fmt;

/// How the per-row losses are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Per-row losses (written to `row_losses`); the returned value is their sum.
    None,
    /// Weighted mean (see the module docs for PyTorch's divisor rules).
    #[default]
    Mean,
    /// Sum.
    Sum,
}

/// The targets of a batch.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a, T = f32> {
    /// One class index per row (`i64`, as PyTorch's `LongTensor`).
    Indices(&'a [i64]),
    /// A distribution per row, `[N, C]` row-major (PyTorch's floating-point targets).
    Probabilities(&'a [T]),
}

/// The options of PyTorch's `CrossEntropyLoss`.
#[derive(Clone, Copy, Debug)]
pub struct CrossEntropyOptions<'a, T = f32> {
    /// Default [`Reduction::Mean`].
    pub reduction: Reduction,
    /// A weight per class, `[C]`; default none (all 1).
    pub weight: Option<&'a [T]>,
    /// Class-index targets equal to it are ignored; default -100. Must be negative with
    /// probability targets, as in PyTorch.
    pub ignore_index: i64,
    /// In `[0, 1]`; default 0. Above 1 is an error; 0 or below (or NaN) means no smoothing,
    /// as in PyTorch.
    pub label_smoothing: T,
}

impl<T: Real> Default for CrossEntropyOptions<'_, T> {
    fn default() -> Self {
        CrossEntropyOptions {
            reduction: Reduction::Mean,
            weight: None,
            ignore_index: -100,
            label_smoothing: T::ZERO,
        }
    }
}

/// The gradient flowing into the loss (1.0 in training).
#[derive(Clone, Copy, Debug)]
pub enum GradOutput<'a, T = f32> {
    /// One value: the gradient of the reduced loss, or of every row's loss under `None`.
    Scalar(T),
    /// One value per row (only with [`Reduction::None`]), `[N]`.
    PerRow(&'a [T]),
}

/// Bad data, in PyTorch's words.
#[derive(Clone, Debug, PartialEq)]
pub enum CrossEntropyError {
    /// A class index outside `[0, C)` that is not `ignore_index`.
    TargetOutOfBounds(i64),
    /// A weight vector whose length is not the number of classes. `probabilities` selects
    /// PyTorch's message for floating-point targets (prefixed `cross_entropy: `).
    WeightLength {
        classes: usize,
        len: usize,
        probabilities: bool,
    },
    /// `label_smoothing > 1`.
    LabelSmoothing(f64),
    /// The logits have `input` rows, the targets `target`.
    BatchSize { input: usize, target: usize },
    /// A non-negative `ignore_index` with probability targets.
    IgnoreIndexWithProbabilities,
}

impl fmt::Display for CrossEntropyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrossEntropyError::TargetOutOfBounds(t) => write!(f, "Target {t} is out of bounds."),
            CrossEntropyError::WeightLength {
                classes,
                len,
                probabilities,
            } => write!(
                f,
                "{}weight tensor should be defined either for all {classes} classes or no classes but got weight tensor of shape: [{len}]",
                if *probabilities { "cross_entropy: " } else { "" }
            ),
            CrossEntropyError::LabelSmoothing(v) => write!(
                f,
                "label_smoothing must be between 0.0 and 1.0. Got: {}",
                format_like_cpp(*v)
            ),
            CrossEntropyError::BatchSize { input, target } => write!(
                f,
                "Expected input batch_size ({input}) to match target batch_size ({target})."
            ),
            CrossEntropyError::IgnoreIndexWithProbabilities => {
                write!(f, "ignore_index is not supported for floating point target")
            }
        }
    }
}

impl std::error::Error for CrossEntropyError {}

/// A double as C++'s `ostream << double` prints it (6 significant digits, `%g`), as PyTorch's
/// messages do: `2` for 2.0, `1.5`, `1e+10`.
pub(crate) fn format_like_cpp(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if v == 0.0 {
        return "0".into();
    }
    let sci = format!("{v:.5e}");
    let (mantissa, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent digits");
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-5..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(mantissa), exp.abs())
    } else {
        strip(&format!("{v:.*}", (5 - exp) as usize))
    }
}

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

pub(crate) fn table(isa: Isa) -> Table {
    match isa {
        Isa::Scalar => Table {
            row: scalar_row,
            row_in_place: scalar_row_in_place,
            block: scalar_block,
            block_in_place: scalar_block_in_place,
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Table {
            row: avx2::row,
            row_in_place: avx2::row_in_place,
            block: avx2::block,
            block_in_place: avx2::block_in_place,
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Table {
            row: avx512::row,
            row_in_place: avx512::row_in_place,
            block: avx512::block,
            block_in_place: avx512::block_in_place,
        },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Table {
            row: neon::row,
            row_in_place: neon::row_in_place,
            block: neon::block,
            block_in_place: neon::block_in_place,
        },
        #[allow(unreachable_patterns)]
        _ => unreachable!("{isa} is not available on this architecture"),
    }
}

/// The checked shape of a call and what the whole batch needs before any row is done.
pub(crate) struct Plan {
    pub rows: usize,
    /// Label smoothing when it applies (`> 0`), else 0.
    pub smoothing: f64,
    /// Sum of the class weights (C without weights): the smoothing term's total weight.
    pub weight_sum: f64,
    /// 'mean' divisor: sum of `w_t` over non-ignored rows, or N for probabilities.
    pub divisor: f64,
}

/// Checks lengths (panics) and data (errors, in PyTorch's order of checks) for a call.
#[track_caller]
pub(crate) fn plan<T: Real>(
    logits_len: usize,
    classes: usize,
    targets: &Targets<'_, T>,
    options: &CrossEntropyOptions<'_, T>,
    grad_output: Option<&GradOutput<'_, T>>,
    row_losses_len: Option<usize>,
) -> Result<Plan, CrossEntropyError> {
    assert!(classes > 0, "cross_entropy: classes must be at least 1");
    assert!(
        logits_len.is_multiple_of(classes),
        "cross_entropy: logits: length {logits_len} is not a multiple of classes {classes}"
    );
    let rows = logits_len / classes;
    if let Some(len) = row_losses_len {
        check_len("cross_entropy: row_losses", rows, len);
    }
    match grad_output {
        Some(GradOutput::PerRow(g)) => {
            assert!(
                options.reduction == Reduction::None,
                "cross_entropy: grad_output: PerRow needs Reduction::None, got {:?}",
                options.reduction
            );
            check_len("cross_entropy: grad_output", rows, g.len());
        }
        Some(GradOutput::Scalar(_)) | None => {}
    }
    let ls = options.label_smoothing.to_f64();
    let smoothing = if ls > 0.0 { ls } else { 0.0 };
    let label_smoothing_error = || CrossEntropyError::LabelSmoothing(ls);
    let check_weight = |probabilities: bool| match options.weight {
        Some(w) if w.len() != classes => Err(CrossEntropyError::WeightLength {
            classes,
            len: w.len(),
            probabilities,
        }),
        _ => Ok(()),
    };
    let weight_sum = match options.weight {
        Some(w) if w.len() == classes => w.iter().map(|v| v.to_f64()).sum(),
        _ => classes as f64,
    };
    match *targets {
        Targets::Probabilities(p) if p.len() == logits_len => {
            // PyTorch's floating-point-target path: ignore_index, then weight, then smoothing.
            if options.ignore_index >= 0 {
                return Err(CrossEntropyError::IgnoreIndexWithProbabilities);
            }
            check_weight(true)?;
            if ls > 1.0 {
                return Err(label_smoothing_error());
            }
            Ok(Plan {
                rows,
                smoothing,
                weight_sum,
                divisor: rows as f64,
            })
        }
        Targets::Probabilities(p) => {
            // Shapes differ: PyTorch takes the class-index path, which checks smoothing, then
            // the batch size.
            assert!(
                p.len() % classes == 0,
                "cross_entropy: targets: length {} is not a multiple of classes {classes}",
                p.len()
            );
            if ls > 1.0 {
                return Err(label_smoothing_error());
            }
            Err(CrossEntropyError::BatchSize {
                input: rows,
                target: p.len() / classes,
            })
        }
        Targets::Indices(t) => {
            if ls > 1.0 {
                return Err(label_smoothing_error());
            }
            if t.len() != rows {
                return Err(CrossEntropyError::BatchSize {
                    input: rows,
                    target: t.len(),
                });
            }
            check_weight(false)?;
            // A class index is in bounds when it is below C as an unsigned number (negative
            // ones wrap above). One pass that counts and checks without a branch per row; the
            // first offender is looked for only when there is one.
            let ignore = options.ignore_index;
            let (mut kept, mut bad) = (0usize, false);
            for &ti in t {
                let counted = ti != ignore;
                kept += counted as usize;
                bad |= counted & (ti as u64 >= classes as u64);
            }
            if bad {
                let ti = t
                    .iter()
                    .find(|&&ti| ti != ignore && ti as u64 >= classes as u64)
                    .expect("an out-of-bounds target was seen");
                return Err(CrossEntropyError::TargetOutOfBounds(*ti));
            }
            let divisor = match options.weight {
                None => kept as f64,
                Some(w) => t
                    .iter()
                    .filter(|&&ti| ti != ignore)
                    .fold(0.0f64, |sum, &ti| sum + w[ti as usize].to_f64()),
            };
            Ok(Plan {
                rows,
                smoothing,
                weight_sum,
                divisor,
            })
        }
    }
}

/// Where pass 2 writes: nowhere, into a separate buffer, or over the logits.
enum Logits<'a> {
    ForwardOnly(&'a [f32]),
    Separate(&'a [f32], &'a mut [f32]),
    InPlace(&'a mut [f32]),
}

impl Kernels {
    /// The loss only (evaluation): no gradient is written, the logits are read once (twice
    /// with label smoothing or probability targets). Per-row losses go to `row_losses` when
    /// given (any reduction). Returns the reduced loss (under [`Reduction::None`], the sum of
    /// the row losses).
    ///
    /// # Errors
    /// PyTorch's errors, in PyTorch's order: `Target 10 is out of bounds.`, a weight of the
    /// wrong length, `label_smoothing` above 1, a batch-size mismatch between logits and
    /// targets, a non-negative `ignore_index` with probability targets. Nothing is written
    /// when an error is returned.
    ///
    /// # Panics
    /// If `classes == 0`, if `logits.len()` (or a probability target's length) is not a
    /// multiple of `classes`, or if `row_losses` does not hold one value per row.
    pub fn cross_entropy_forward(
        &self,
        logits: &[f32],
        classes: usize,
        targets: Targets<'_>,
        options: &CrossEntropyOptions<'_>,
        row_losses: Option<&mut [f32]>,
    ) -> Result<f32, CrossEntropyError> {
        let plan = plan(
            logits.len(),
            classes,
            &targets,
            options,
            None,
            row_losses.as_ref().map(|r| r.len()),
        )?;
        self.cross_entropy_run(
            &plan,
            Logits::ForwardOnly(logits),
            classes,
            targets,
            options,
            GradOutput::Scalar(1.0),
            row_losses,
        )
    }

    /// Loss and gradient with respect to the logits in one call; the gradient (scaled by
    /// `grad_output`) overwrites `grad_logits`. Returns the reduced loss (under
    /// [`Reduction::None`], the sum of the row losses, which go to `row_losses`).
    ///
    /// # Errors
    /// As [`Kernels::cross_entropy_forward`]; nothing is written when an error is returned.
    ///
    /// # Panics
    /// As [`Kernels::cross_entropy_forward`], and if `grad_logits.len() != logits.len()`, or
    /// `GradOutput::PerRow` is given with a reduction other than `None` or with a length other
    /// than the number of rows.
    #[allow(clippy::too_many_arguments)]
    pub fn cross_entropy_forward_backward(
        &self,
        logits: &[f32],
        classes: usize,
        targets: Targets<'_>,
        options: &CrossEntropyOptions<'_>,
        grad_output: GradOutput<'_>,
        grad_logits: &mut [f32],
        row_losses: Option<&mut [f32]>,
    ) -> Result<f32, CrossEntropyError> {
        check_len(
            "cross_entropy: grad_logits",
            logits.len(),
            grad_logits.len(),
        );
        let plan = plan(
            logits.len(),
            classes,
            &targets,
            options,
            Some(&grad_output),
            row_losses.as_ref().map(|r| r.len()),
        )?;
        self.cross_entropy_run(
            &plan,
            Logits::Separate(logits, grad_logits),
            classes,
            targets,
            options,
            grad_output,
            row_losses,
        )
    }

    /// As [`Kernels::cross_entropy_forward_backward`], the gradient written over the logits.
    ///
    /// # Errors
    /// As [`Kernels::cross_entropy_forward`]; the logits are untouched when an error is
    /// returned.
    ///
    /// # Panics
    /// As [`Kernels::cross_entropy_forward_backward`].
    pub fn cross_entropy_forward_backward_in_place(
        &self,
        logits: &mut [f32],
        classes: usize,
        targets: Targets<'_>,
        options: &CrossEntropyOptions<'_>,
        grad_output: GradOutput<'_>,
        row_losses: Option<&mut [f32]>,
    ) -> Result<f32, CrossEntropyError> {
        let plan = plan(
            logits.len(),
            classes,
            &targets,
            options,
            Some(&grad_output),
            row_losses.as_ref().map(|r| r.len()),
        )?;
        self.cross_entropy_run(
            &plan,
            Logits::InPlace(logits),
            classes,
            targets,
            options,
            grad_output,
            row_losses,
        )
    }

    /// The row loop shared by the three entry points (everything already checked).
    #[allow(clippy::too_many_arguments)]
    fn cross_entropy_run(
        &self,
        plan: &Plan,
        mut logits: Logits<'_>,
        classes: usize,
        targets: Targets<'_>,
        options: &CrossEntropyOptions<'_>,
        grad_output: GradOutput<'_>,
        mut row_losses: Option<&mut [f32]>,
    ) -> Result<f32, CrossEntropyError> {
        let c = classes;
        let e = plan.smoothing;
        let keep = 1.0 - e;
        let e_over_c = e / c as f64;
        // The reduction's scale of the incoming gradient.
        let batch_scale = match (options.reduction, grad_output) {
            (Reduction::Mean, GradOutput::Scalar(g)) => g as f64 / plan.divisor,
            (_, GradOutput::Scalar(g)) => g as f64,
            (_, GradOutput::PerRow(_)) => 0.0,
        };
        let kernels = &self.cross_entropy;
        let (mut sum_nll, mut sum_smooth) = (0.0f64, 0.0f64);
        // Short rows with class indices and no smoothing: a block at a time, one per lane.
        let mut first_row = 0;
        if let Targets::Indices(t) = targets {
            if e == 0.0 && c <= BLOCK_MAX_CLASSES {
                sum_nll = self.cross_entropy_blocks(
                    &mut logits,
                    c,
                    t,
                    options,
                    grad_output,
                    batch_scale,
                    row_losses.as_deref_mut(),
                );
                first_row = plan.rows;
            }
        }
        for n in first_row..plan.rows {
            let range = n * c..(n + 1) * c;
            let scale = match grad_output {
                GradOutput::PerRow(g) => g[n] as f64,
                GradOutput::Scalar(_) => batch_scale,
            };
            let x: &[f32] = match &logits {
                Logits::ForwardOnly(x) | Logits::Separate(x, _) => &x[range.clone()],
                Logits::InPlace(x) => &x[range.clone()],
            };
            // What the row's target asks for, before the softmax is known: the gradient is
            // `exp(x_j - m) / S * alpha - beta * c_j`, minus `fix` at the target index.
            let row = RowTarget::new(targets, n, x, &range, options, plan, scale);
            let args = RowArgs {
                alpha: row.alpha as f32,
                beta: row.beta as f32,
                coef: row.coef,
                fix: row.fix,
            };
            // SAFETY: `self` was built by `Kernels::for_isa` (the CPU has the ISA); every slice
            // has the row's length (checked by `plan` and the entry points).
            let RowStats { m, sum: s, acc } = unsafe {
                match &mut logits {
                    Logits::ForwardOnly(x) => (kernels.row)(&x[range.clone()], None, &args),
                    Logits::Separate(x, g) => {
                        (kernels.row)(&x[range.clone()], Some(&mut g[range.clone()]), &args)
                    }
                    Logits::InPlace(x) => (kernels.row_in_place)(&mut x[range.clone()], &args),
                }
            };
            // The row's loss terms from log S, m and acc = sum c_j (x_j - m).
            let log_s = s.ln();
            let (nll, smooth) = match row.kind {
                RowKind::Ignored => (0.0f64, 0.0f64),
                RowKind::Index { w_t, x_t } => {
                    let nll = (w_t * (log_s - (x_t - m))) as f64;
                    let smooth = if e > 0.0 {
                        (log_s * plan.weight_sum as f32 - acc) as f64
                    } else {
                        0.0
                    };
                    (nll, smooth)
                }
                RowKind::Probabilities { total } => ((log_s * total - acc) as f64, 0.0),
            };
            let row_loss = match row.kind {
                RowKind::Index { .. } if e > 0.0 => keep * nll + e_over_c * smooth,
                _ => nll,
            };
            if let Some(r) = row_losses.as_deref_mut() {
                r[n] = row_loss as f32;
            }
            sum_nll += nll;
            sum_smooth += smooth;
        }
        let total = match targets {
            Targets::Indices(_) if e > 0.0 => match options.reduction {
                Reduction::Mean => {
                    keep * (sum_nll / plan.divisor) + (sum_smooth / plan.divisor) * e_over_c
                }
                _ => keep * sum_nll + sum_smooth * e_over_c,
            },
            _ => match options.reduction {
                Reduction::Mean => sum_nll / plan.divisor,
                _ => sum_nll,
            },
        };
        Ok(total as f32)
    }
}

impl Kernels {
    /// Every row through the block kernel (class indices, no smoothing, `C <=
    /// BLOCK_MAX_CLASSES`): the last few rows padded to a whole block in a stack buffer, so a
    /// row's numbers never depend on how the batch was split (lanes do not mix rows). Returns
    /// the sum of the row losses.
    #[allow(clippy::too_many_arguments)]
    fn cross_entropy_blocks(
        &self,
        logits: &mut Logits<'_>,
        c: usize,
        t: &[i64],
        options: &CrossEntropyOptions<'_>,
        grad_output: GradOutput<'_>,
        batch_scale: f64,
        mut row_losses: Option<&mut [f32]>,
    ) -> f64 {
        let kernels = &self.cross_entropy;
        let rows_total = t.len();
        // The sums of the row losses lane by lane: sixteen independent additions per block,
        // not one chain through the batch.
        let mut lane_sums = [0.0f64; BLOCK_ROWS];
        let mut first_row = 0;
        while first_row < rows_total {
            let rows = first_row..(first_row + BLOCK_ROWS).min(rows_total);
            let args = block_args(
                &t[rows.clone()],
                rows.start,
                options,
                grad_output,
                batch_scale,
            );
            let span = rows.start * c..rows.end * c;
            let losses = if rows.len() == BLOCK_ROWS {
                // SAFETY: `self` was built by `Kernels::for_isa` (the CPU has the ISA); the
                // slices hold the block's rows; targets were checked by `plan`.
                unsafe {
                    match logits {
                        Logits::ForwardOnly(x) => (kernels.block)(&x[span], c, None, &args),
                        Logits::Separate(x, g) => {
                            (kernels.block)(&x[span.clone()], c, Some(&mut g[span]), &args)
                        }
                        Logits::InPlace(x) => (kernels.block_in_place)(&mut x[span], c, &args),
                    }
                }
            } else {
                // The padding rows are zeros with no loss and no gradient kept.
                let mut padded = [0.0f32; BLOCK_ROWS * BLOCK_MAX_CLASSES];
                let padded = &mut padded[..BLOCK_ROWS * c];
                let used = span.len();
                let x: &[f32] = match logits {
                    Logits::ForwardOnly(x) | Logits::Separate(x, _) => x,
                    Logits::InPlace(x) => x,
                };
                padded[..used].copy_from_slice(&x[span.clone()]);
                // SAFETY: as above; `padded` holds a block's rows.
                let losses = unsafe {
                    match logits {
                        Logits::ForwardOnly(_) => (kernels.block)(padded, c, None, &args),
                        Logits::Separate(..) | Logits::InPlace(_) => {
                            (kernels.block_in_place)(padded, c, &args)
                        }
                    }
                };
                match logits {
                    Logits::ForwardOnly(_) => {}
                    Logits::Separate(_, g) => g[span].copy_from_slice(&padded[..used]),
                    Logits::InPlace(x) => x[span].copy_from_slice(&padded[..used]),
                }
                losses
            };
            if let Some(r) = row_losses.as_deref_mut() {
                r[rows.clone()].copy_from_slice(&losses[..rows.len()]);
            }
            // (Padding rows have a loss of exactly 0.)
            for (sum, &loss) in lane_sums.iter_mut().zip(&losses) {
                *sum += loss as f64;
            }
            first_row = rows.end;
        }
        lane_sums.iter().sum()
    }
}

/// A block's arguments for rows `first..first + t.len()` (at most `BLOCK_ROWS`; the lanes past
/// them are padding: no loss, no gradient). The options are looked at once per block, not per
/// row: without weights or per-row gradients every kept lane has the same `alpha`.
fn block_args(
    t: &[i64],
    first: usize,
    options: &CrossEntropyOptions<'_>,
    grad_output: GradOutput<'_>,
    batch_scale: f64,
) -> BlockArgs {
    let mut args = BlockArgs {
        target: [0; BLOCK_ROWS],
        alpha: [0.0; BLOCK_ROWS],
        weight: [0.0; BLOCK_ROWS],
        keep: [0; BLOCK_ROWS],
    };
    let ignore = options.ignore_index;
    match (options.weight, grad_output) {
        (None, GradOutput::Scalar(_)) => {
            let alpha = batch_scale as f32;
            for (lane, &ti) in t.iter().enumerate() {
                let kept = ti != ignore;
                args.target[lane] = if kept { ti as i32 } else { 0 };
                args.alpha[lane] = if kept { alpha } else { 0.0 };
                args.weight[lane] = 1.0;
                args.keep[lane] = -(kept as i32);
            }
        }
        (weight, _) => {
            for (lane, &ti) in t.iter().enumerate() {
                if ti == ignore {
                    continue;
                }
                let scale = match grad_output {
                    GradOutput::PerRow(g) => g[first + lane] as f64,
                    GradOutput::Scalar(_) => batch_scale,
                };
                let w_t = weight.map_or(1.0, |w| w[ti as usize]);
                args.target[lane] = ti as i32;
                args.alpha[lane] = (scale * w_t as f64) as f32;
                args.weight[lane] = w_t;
                args.keep[lane] = -1;
            }
        }
    }
    args
}

/// What a row's loss needs besides `log S`, `m` and the accumulated `sum c_j (x_j - m)`.
#[derive(Clone, Copy, Debug)]
enum RowKind {
    /// `ignore_index`: no loss, `0 * softmax` as the gradient.
    Ignored,
    /// `nll = w_t * (log S - (x_t - m))`.
    Index { w_t: f32, x_t: f32 },
    /// `loss = log S * total - sum c_j (x_j - m)`, `total = sum_j w_j p'_j`.
    Probabilities { total: f32 },
}

/// A row's target turned into the gradient's terms: `dx_j = exp(x_j - m) / S * alpha -
/// beta * c_j`, then `fix = (t, amount)` subtracted at the target index.
struct RowTarget<'a> {
    coef: Coef<'a>,
    alpha: f64,
    beta: f64,
    fix: Option<(usize, f32)>,
    kind: RowKind,
}

impl<'a> RowTarget<'a> {
    fn new(
        targets: Targets<'a>,
        n: usize,
        x: &[f32],
        range: &core::ops::Range<usize>,
        options: &CrossEntropyOptions<'a>,
        plan: &Plan,
        scale: f64,
    ) -> Self {
        let e = plan.smoothing;
        let keep = 1.0 - e;
        let e_over_c = e / x.len() as f64;
        let weight = options.weight;
        match targets {
            Targets::Indices(t) if t[n] == options.ignore_index => RowTarget {
                coef: Coef::None,
                alpha: 0.0,
                beta: 0.0,
                fix: None,
                kind: RowKind::Ignored,
            },
            Targets::Indices(t) => {
                let t = t[n] as usize;
                let w_t = weight.map_or(1.0, |w| w[t] as f64);
                let coef = match (e > 0.0, weight) {
                    (false, _) => Coef::None,
                    (true, None) => Coef::Ones,
                    (true, Some(w)) => Coef::Weights(w),
                };
                RowTarget {
                    coef,
                    alpha: scale * (keep * w_t + e_over_c * plan.weight_sum),
                    beta: scale * e_over_c,
                    fix: Some((t, (scale * keep * w_t) as f32)),
                    kind: RowKind::Index {
                        w_t: w_t as f32,
                        x_t: x[t],
                    },
                }
            }
            Targets::Probabilities(p) => {
                let p = &p[range.clone()];
                let (keep32, add32) = (keep as f32, e_over_c as f32);
                let total: f64 = match weight {
                    None => p.iter().map(|&v| v.mul_add(keep32, add32) as f64).sum(),
                    Some(w) => p
                        .iter()
                        .zip(w)
                        .map(|(&v, &w)| (w * v.mul_add(keep32, add32)) as f64)
                        .sum(),
                };
                RowTarget {
                    coef: Coef::Probs {
                        p,
                        w: weight,
                        keep: keep32,
                        add: add32,
                    },
                    alpha: scale * total,
                    beta: scale,
                    fix: None,
                    kind: RowKind::Probabilities {
                        total: total as f32,
                    },
                }
            }
        }
    }
}
