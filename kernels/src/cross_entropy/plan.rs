//! Validation of a call (lengths panic, data is an error, in PyTorch's order of checks) and the
//! batch-wide quantities every row needs.

use super::*;
use crate::{check_len, Real};

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
