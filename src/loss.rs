//! `CrossEntropyLoss` with PyTorch's arguments, defaults and semantics, on the fused
//! softmax-cross-entropy kernel (one pass for the loss and the gradient).

use crate::backend::{Backend, CrossEntropyError, CrossEntropyOptions, Targets};
use crate::{Error, Result};
use simdnet_kernels::Real;

pub use simdnet_kernels::cross_entropy::Reduction;

/// Parses PyTorch's `reduction` strings: `"none"`, `"mean"`, `"sum"`.
pub fn parse_reduction(s: &str) -> Result<Reduction> {
    match s {
        "none" => Ok(Reduction::None),
        "mean" => Ok(Reduction::Mean),
        "sum" => Ok(Reduction::Sum),
        _ => Err(Error::new(format!(
            "{s} is not a valid value for reduction"
        ))),
    }
}

/// `torch.nn.CrossEntropyLoss(weight=None, ignore_index=-100, reduction='mean',
/// label_smoothing=0.0)` over logits `[N, C]`.
///
/// ```
/// use simdnet::loss::CrossEntropyLoss;
/// use simdnet::kernels::Kernels;
///
/// let criterion = CrossEntropyLoss::default(); // PyTorch's defaults
/// let logits = [2.0_f32, 1.0, 0.1];
/// let mut grad = [0.0_f32; 3];
/// let loss = criterion.forward_backward(Kernels::get(), &logits, 3, &[0], &mut grad).unwrap();
/// assert!((loss - 0.417).abs() < 5e-4);
/// // d loss / d logits = softmax - onehot: [0.659 - 1, 0.242, 0.099]
/// assert!((grad[0] + 0.341).abs() < 5e-4 && (grad[1] - 0.242).abs() < 5e-4);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CrossEntropyLoss<T = f32> {
    weight: Option<Vec<T>>,
    ignore_index: i64,
    reduction: Reduction,
    label_smoothing: f64,
}

impl<T: Real> Default for CrossEntropyLoss<T> {
    /// PyTorch's defaults: no weight, `ignore_index = -100`, `reduction = 'mean'`,
    /// `label_smoothing = 0.0`.
    fn default() -> Self {
        CrossEntropyLoss {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
        }
    }
}

impl<T: Real> CrossEntropyLoss<T> {
    /// The constructor with PyTorch's arguments. A `label_smoothing` above 1 is an error (PyTorch's
    /// message); as in PyTorch, 0, negative values and NaN all mean no smoothing. The weight's
    /// length is checked against the classes at each call.
    pub fn new(
        weight: Option<Vec<T>>,
        ignore_index: i64,
        reduction: Reduction,
        label_smoothing: f64,
    ) -> Result<Self> {
        if label_smoothing > 1.0 {
            return Err(Error::new(
                CrossEntropyError::LabelSmoothing(label_smoothing).to_string(),
            ));
        }
        Ok(CrossEntropyLoss {
            weight,
            ignore_index,
            reduction,
            label_smoothing,
        })
    }

    pub fn reduction(&self) -> Reduction {
        self.reduction
    }

    pub fn ignore_index(&self) -> i64 {
        self.ignore_index
    }

    pub fn label_smoothing(&self) -> f64 {
        self.label_smoothing
    }

    pub fn weight(&self) -> Option<&[T]> {
        self.weight.as_deref()
    }

    fn options(&self, reduction: Reduction) -> CrossEntropyOptions<'_, T> {
        CrossEntropyOptions {
            reduction,
            weight: self.weight.as_deref(),
            ignore_index: self.ignore_index,
            label_smoothing: T::from_f64(self.label_smoothing),
        }
    }

    /// The loss of `logits` `[N, classes]` against class indices `targets` `[N]` (for
    /// `reduction = 'none'` see [`CrossEntropyLoss::forward_rows`]).
    pub fn forward<B: Backend<T>>(
        &self,
        backend: &B,
        logits: &[T],
        classes: usize,
        targets: &[i64],
    ) -> Result<T> {
        check_logits(logits, classes, targets.len())?;
        backend
            .cross_entropy(
                logits,
                classes,
                Targets::Indices(targets),
                &self.options(self.reduction),
                None,
                None,
            )
            .map_err(|e| Error::new(e.to_string()))
    }

    /// The loss and `grad_logits = d loss / d logits` (as `loss.backward()` with an incoming
    /// gradient of 1).
    pub fn forward_backward<B: Backend<T>>(
        &self,
        backend: &B,
        logits: &[T],
        classes: usize,
        targets: &[i64],
        grad_logits: &mut [T],
    ) -> Result<T> {
        self.forward_backward_scaled(
            backend,
            logits,
            classes,
            Targets::Indices(targets),
            T::ONE,
            grad_logits,
        )
    }

    /// As [`CrossEntropyLoss::forward_backward`] for any targets, with the incoming gradient
    /// `grad_output` (the trainer passes `1/N` with `'sum'` per thread so the threads' gradients
    /// add up to the whole batch's mean).
    pub fn forward_backward_scaled<B: Backend<T>>(
        &self,
        backend: &B,
        logits: &[T],
        classes: usize,
        targets: Targets<'_, T>,
        grad_output: T,
        grad_logits: &mut [T],
    ) -> Result<T> {
        let rows = match targets {
            Targets::Indices(t) => t.len(),
            Targets::Probabilities(p) => p.len() / classes.max(1),
        };
        check_logits(logits, classes, rows)?;
        if grad_logits.len() != logits.len() {
            return Err(Error::new(format!(
                "cross_entropy: gradient buffer has {} elements, the logits {}",
                grad_logits.len(),
                logits.len()
            )));
        }
        backend
            .cross_entropy(
                logits,
                classes,
                targets,
                &self.options(self.reduction),
                Some((grad_output, grad_logits)),
                None,
            )
            .map_err(|e| Error::new(e.to_string()))
    }

    /// Per-row losses (as `reduction = 'none'`) into `rows`, whatever this loss's reduction.
    pub fn forward_rows<B: Backend<T>>(
        &self,
        backend: &B,
        logits: &[T],
        classes: usize,
        targets: &[i64],
        rows: &mut [T],
    ) -> Result<()> {
        check_logits(logits, classes, targets.len())?;
        if rows.len() != targets.len() {
            return Err(Error::new(format!(
                "cross_entropy: {} row losses requested for {} targets",
                rows.len(),
                targets.len()
            )));
        }
        backend
            .cross_entropy(
                logits,
                classes,
                Targets::Indices(targets),
                &self.options(Reduction::None),
                None,
                Some(rows),
            )
            .map(|_| ())
            .map_err(|e| Error::new(e.to_string()))
    }
}

/// Logits must be `[rows, classes]`: PyTorch's batch-size message otherwise.
fn check_logits<T>(logits: &[T], classes: usize, rows: usize) -> Result<()> {
    if classes == 0 || !logits.len().is_multiple_of(classes) {
        return Err(Error::new(format!(
            "cross_entropy: {} logits do not form rows of {classes} classes",
            logits.len()
        )));
    }
    if logits.len() / classes != rows {
        return Err(Error::new(format!(
            "Expected input batch_size ({}) to match target batch_size ({rows}).",
            logits.len() / classes
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Reference;
    use simdnet_kernels::Kernels;

    #[test]
    fn pytorchs_defaults_and_messages() {
        let c = CrossEntropyLoss::<f32>::default();
        assert_eq!(
            (
                c.reduction(),
                c.ignore_index(),
                c.label_smoothing(),
                c.weight()
            ),
            (Reduction::Mean, -100, 0.0, None)
        );
        let e = CrossEntropyLoss::<f32>::new(None, -100, Reduction::Mean, 1.5).unwrap_err();
        assert_eq!(
            e.to_string(),
            "label_smoothing must be between 0.0 and 1.0. Got: 1.5"
        );
        // PyTorch accepts a negative smoothing (it means none) and rejects only values above 1.
        assert!(CrossEntropyLoss::<f32>::new(None, -100, Reduction::Mean, -0.1).is_ok());
        assert_eq!(parse_reduction("sum").unwrap(), Reduction::Sum);
        assert_eq!(
            parse_reduction("avg").unwrap_err().to_string(),
            "avg is not a valid value for reduction"
        );
        let k = Kernels::get();
        let logits = [0.0f32; 6];
        assert_eq!(
            c.forward(k, &logits, 3, &[0, 3]).unwrap_err().to_string(),
            "Target 3 is out of bounds."
        );
        assert_eq!(
            c.forward(k, &logits, 3, &[0]).unwrap_err().to_string(),
            "Expected input batch_size (2) to match target batch_size (1)."
        );
        assert!(c.forward(k, &logits[..5], 3, &[0, 1]).is_err());
    }

    /// Every option reaches the kernel: weights, ignore_index, smoothing and reduction change
    /// the loss as PyTorch's formulas say (checked in f64 on the reference).
    #[test]
    fn options_reach_the_kernel() {
        let logits = [1.0f64, 2.0, 0.5, -1.0, 0.0, 3.0];
        let lse = |r: &[f64]| r.iter().map(|v| v.exp()).sum::<f64>().ln();
        let nll = [lse(&logits[..3]) - 2.0, lse(&logits[3..]) - (-1.0)];
        let plain = CrossEntropyLoss::<f64>::default();
        let mean = plain.forward(&Reference, &logits, 3, &[1, 0]).unwrap();
        assert!((mean - (nll[0] + nll[1]) / 2.0).abs() < 1e-12);
        let sum = CrossEntropyLoss::new(None, -100, Reduction::Sum, 0.0).unwrap();
        assert!(
            (sum.forward(&Reference, &logits, 3, &[1, 0]).unwrap() - (nll[0] + nll[1])).abs()
                < 1e-12
        );
        let weighted =
            CrossEntropyLoss::new(Some(vec![1.0, 3.0, 1.0]), -100, Reduction::Mean, 0.0).unwrap();
        let w = weighted.forward(&Reference, &logits, 3, &[1, 0]).unwrap();
        assert!((w - (3.0 * nll[0] + nll[1]) / 4.0).abs() < 1e-12);
        let ignoring = CrossEntropyLoss::new(None, 0, Reduction::Mean, 0.0).unwrap();
        assert!(
            (ignoring.forward(&Reference, &logits, 3, &[1, 0]).unwrap() - nll[0]).abs() < 1e-12
        );
        let mut rows = [0.0; 2];
        plain
            .forward_rows(&Reference, &logits, 3, &[1, 0], &mut rows)
            .unwrap();
        assert!((rows[0] - nll[0]).abs() < 1e-12 && (rows[1] - nll[1]).abs() < 1e-12);
        // Label smoothing: (1 - e) * nll + (e / C) * sum over classes of -log p.
        let smooth = CrossEntropyLoss::new(None, -100, Reduction::Mean, 0.1).unwrap();
        let neg_logp_sum = |r: &[f64]| r.iter().map(|v| lse(r) - v).sum::<f64>();
        let expected = 0.9 * (nll[0] + nll[1]) / 2.0
            + 0.1 / 3.0 * (neg_logp_sum(&logits[..3]) + neg_logp_sum(&logits[3..])) / 2.0;
        assert!(
            (smooth.forward(&Reference, &logits, 3, &[1, 0]).unwrap() - expected).abs() < 1e-12
        );
    }
}
