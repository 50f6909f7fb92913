//! The options of `CrossEntropyLoss`, the targets and incoming gradient of a call, and the
//! errors with PyTorch's wording.

use crate::Real;
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
