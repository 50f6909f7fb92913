//! Evaluation: mean cross-entropy, accuracy and confusion matrix of a model on a dataset.
//!
//! The set is cut into batches of [`EVAL_BATCH`] images, small enough that a batch's
//! activations stay in a core's L2 cache; thread `t` of `T` takes batches `t, t + T, …` with
//! its own workspace and a [`Tally`]. Each batch's loss sum is kept apart (f64) and the sums are
//! added in batch order at the end, and the counts are exact, so the result has the same bits
//! for any thread count. A tally grows its list of sums once, so in steady state (the training
//! team evaluates with the same tallies every epoch) nothing is allocated per batch.

use std::ops::Deref;

use crate::data::Dataset;
use crate::lenet::{LeNet5, Workspace, CLASSES};
use crate::loss::CrossEntropyLoss;
use crate::Result;
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

/// Images per evaluation batch (the training micro-batch: its workspace serves both).
pub const EVAL_BATCH: usize = super::step::MICRO_BATCH;

/// One thread's running results over the batches it evaluated.
#[derive(Debug)]
pub(crate) struct Tally {
    /// The loss sum of each batch this thread took, in the order it took them.
    sums: Vec<f64>,
    correct: usize,
    confusion: [[u64; 10]; 10],
    targets: Vec<i64>,
    rows: Vec<f32>,
    criterion: CrossEntropyLoss<f32>,
}

impl Tally {
    pub(crate) fn new() -> Tally {
        Tally {
            sums: Vec::new(),
            correct: 0,
            confusion: [[0; 10]; 10],
            targets: Vec::with_capacity(EVAL_BATCH),
            rows: Vec::with_capacity(EVAL_BATCH),
            criterion: CrossEntropyLoss::default(),
        }
    }

    /// Evaluates batches `t, t + threads, …` of `test` into a cleared tally.
    pub(crate) fn run(
        &mut self,
        model: &LeNet5,
        ws: &mut Workspace<f32>,
        test: &Dataset,
        kernels: &Kernels,
        (t, threads): (usize, usize),
    ) -> Result<()> {
        self.sums.clear();
        self.correct = 0;
        self.confusion = [[0; 10]; 10];
        let n = test.len();
        let batches = n.div_ceil(EVAL_BATCH);
        // Grows once to the largest set this tally has seen.
        self.sums.reserve(batches.div_ceil(threads.max(1)));
        for k in (t..batches).step_by(threads) {
            let range = k * EVAL_BATCH..((k + 1) * EVAL_BATCH).min(n);
            let sum = self.batch(model, ws, test, kernels, range)?;
            self.sums.push(sum);
        }
        Ok(())
    }

    /// Forward pass over `range` of `test`; counts the correct predictions and returns the
    /// sum of the losses.
    fn batch(
        &mut self,
        model: &LeNet5,
        ws: &mut Workspace<f32>,
        test: &Dataset,
        kernels: &Kernels,
        range: std::ops::Range<usize>,
    ) -> Result<f64> {
        let m = range.len();
        ws.load_images(range.clone().map(|i| test.image(i)))?;
        model.forward(kernels, ws, m)?;
        self.targets.clear();
        self.targets
            .extend(range.map(|i| i64::from(test.labels[i])));
        self.rows.clear();
        self.rows.resize(m, 0.0);
        let logits = ws.logits(m);
        let sum = match self.criterion.forward_rows(
            kernels,
            logits,
            CLASSES,
            &self.targets,
            &mut self.rows,
        ) {
            Ok(()) => self.rows.iter().map(|&l| f64::from(l)).sum::<f64>(),
            Err(_) => f64::NAN, // labels >= 10 are rejected when the data load
        };
        for (row, &label) in logits.chunks_exact(CLASSES).zip(&self.targets) {
            let predicted = argmax(row);
            let label = label as usize;
            if predicted == label {
                self.correct += 1;
            }
            if label < 10 {
                self.confusion[label][predicted] += 1;
            }
        }
        Ok(sum)
    }
}

/// The evaluation of `n` samples from the tallies of `threads` threads (thread `t` took
/// batches `t, t + threads, …`; `tally(t)` gives its tally): batch sums added in batch order.
/// A batch missing from its tally (its thread failed) makes the loss NaN.
pub(crate) fn combine<G: Deref<Target = Tally>>(
    threads: usize,
    n: usize,
    tally: impl Fn(usize) -> G,
) -> Evaluation {
    let mut eval = Evaluation {
        loss: 0.0,
        correct: 0,
        total: n,
        confusion: [[0; 10]; 10],
    };
    for t in 0..threads {
        let tally = tally(t);
        eval.correct += tally.correct;
        for (row, part) in eval.confusion.iter_mut().zip(&tally.confusion) {
            for (c, p) in row.iter_mut().zip(part) {
                *c += p;
            }
        }
    }
    for k in 0..n.div_ceil(EVAL_BATCH) {
        let sums = &tally(k % threads).sums;
        eval.loss += sums.get(k / threads).copied().unwrap_or(f64::NAN);
    }
    eval.loss /= n.max(1) as f64;
    eval
}

/// Mean loss, accuracy and confusion matrix of `model` on `test`, on `threads` threads.
pub fn evaluate(model: &LeNet5, test: &Dataset, kernels: &Kernels, threads: usize) -> Evaluation {
    let n = test.len();
    let threads = threads.clamp(1, n.div_ceil(EVAL_BATCH).max(1));
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut tally = Tally::new();
                    let mut ws = model
                        .workspace(kernels, EVAL_BATCH)
                        .expect("LeNet-5's own shapes are valid");
                    if tally
                        .run(model, &mut ws, test, kernels, (t, threads))
                        .is_err()
                    {
                        // Only a malformed image can fail; the loss says so.
                        tally.sums.clear();
                    }
                    tally
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    combine(threads, n, |t| &tallies[t])
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

/// The predicted class of every image of `test`, in order (for pictures of the mistakes).
///
/// # Errors
/// A malformed image (one whose size is not LeNet-5's input).
pub fn predictions(model: &LeNet5, test: &Dataset, kernels: &Kernels) -> Result<Vec<u8>> {
    let mut ws = model.workspace(kernels, EVAL_BATCH)?;
    let mut out = Vec::with_capacity(test.len());
    for start in (0..test.len()).step_by(EVAL_BATCH) {
        let range = start..(start + EVAL_BATCH).min(test.len());
        let m = range.len();
        ws.load_images(range.map(|i| test.image(i)))?;
        model.forward(kernels, &mut ws, m)?;
        out.extend(
            ws.logits(m)
                .chunks_exact(CLASSES)
                .map(|row| argmax(row) as u8),
        );
    }
    Ok(out)
}
