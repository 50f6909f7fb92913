//! Evaluation: mean cross-entropy, accuracy and confusion matrix of a model on a dataset.
//!
//! The set is cut into contiguous ranges, one per thread; each thread runs the forward pass
//! over its range in batches of [`EVAL_CHUNK`] images with its own workspace, and the
//! per-range sums are added in range order, so the result does not depend on the thread count
//! beyond the f64 rounding of the loss sum (the counts are exact).

use crate::data::Dataset;
use crate::lenet::{LeNet5, CLASSES};
use crate::loss::CrossEntropyLoss;
use simdnet_kernels::Kernels;

/// A model's loss and accuracy on a dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy over the samples.
    pub loss: f64,
    pub correct: usize,
    pub total: usize,
    /// `confusion[true][predicted]`.
    pub confusion: [[u64; 10]; 10],
}

impl Evaluation {
    /// `correct / total` (0 for an empty set).
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }

    /// `Test set: Average loss: 0.4123, Accuracy: 8571/10000 (85.71%)`.
    pub fn test_line(&self) -> String {
        format!(
            "Test set: Average loss: {:.4}, Accuracy: {}/{} ({:.2}%)",
            self.loss,
            self.correct,
            self.total,
            100.0 * self.accuracy()
        )
    }
}

/// Evaluation batches per thread.
const EVAL_CHUNK: usize = 500;

/// Mean loss, accuracy and confusion matrix of `model` on `test`, split across `threads`.
pub fn evaluate(model: &LeNet5, test: &Dataset, kernels: &Kernels, threads: usize) -> Evaluation {
    let n = test.len();
    let threads = threads.clamp(1, n.max(1));
    let per_thread = n.div_ceil(threads);
    let parts: Vec<(f64, usize, [[u64; 10]; 10])> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (lo, hi) = ((t * per_thread).min(n), ((t + 1) * per_thread).min(n));
                scope.spawn(move || evaluate_range(model, test, kernels, lo..hi))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut eval = Evaluation {
        loss: 0.0,
        correct: 0,
        total: n,
        confusion: [[0; 10]; 10],
    };
    for (loss, correct, confusion) in parts {
        eval.loss += loss;
        eval.correct += correct;
        for (row, part) in eval.confusion.iter_mut().zip(confusion) {
            for (c, p) in row.iter_mut().zip(part) {
                *c += p;
            }
        }
    }
    eval.loss /= n.max(1) as f64;
    eval
}

/// The index of the largest logit (the first on ties; NaN counts as the largest, as
/// `torch.argmax`).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate().skip(1) {
        if row[best].is_nan() {
            break;
        }
        if v > row[best] || v.is_nan() {
            best = i;
        }
    }
    best
}

/// (sum of losses, correct, confusion) over `range` of `test`.
fn evaluate_range(
    model: &LeNet5,
    test: &Dataset,
    kernels: &Kernels,
    range: std::ops::Range<usize>,
) -> (f64, usize, [[u64; 10]; 10]) {
    let mut loss_sum = 0.0;
    let mut correct = 0;
    let mut confusion = [[0u64; 10]; 10];
    let capacity = EVAL_CHUNK.min(range.len()).max(1);
    let mut ws = model
        .workspace(kernels, capacity)
        .expect("LeNet-5's own shapes are valid");
    let criterion = CrossEntropyLoss::<f32>::default();
    let mut targets = vec![0i64; capacity];
    let mut rows = vec![0f32; capacity];
    let mut start = range.start;
    while start < range.end {
        let end = (start + capacity).min(range.end);
        let m = end - start;
        ws.load_images((start..end).map(|i| test.image(i)))
            .expect("28x28 images, at most the capacity");
        model
            .forward(kernels, &mut ws, m)
            .expect("batch within capacity");
        for (t, i) in targets.iter_mut().zip(start..end) {
            *t = i64::from(test.labels[i]);
        }
        let logits = ws.logits(m);
        match criterion.forward_rows(kernels, logits, CLASSES, &targets[..m], &mut rows[..m]) {
            Ok(()) => loss_sum += rows[..m].iter().map(|&l| f64::from(l)).sum::<f64>(),
            Err(_) => loss_sum = f64::NAN, // labels >= 10 are rejected when the data load
        }
        for (row, &label) in logits.chunks_exact(CLASSES).zip(&targets[..m]) {
            let predicted = argmax(row);
            let label = label as usize;
            if predicted == label {
                correct += 1;
            }
            if label < 10 {
                confusion[label][predicted] += 1;
            }
        }
        start = end;
    }
    (loss_sum, correct, confusion)
}
