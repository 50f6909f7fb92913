//! The trainer: minibatch SGD on LeNet-5, data-parallel across threads, with the PyTorch MNIST
//! example's output, the best model by test accuracy kept as a copy, and a stop on a NaN loss.
//!
//! ## Threads
//!
//! Each batch is split into contiguous slices, one per thread (`std::thread::scope`, threads
//! started once per run and synchronised per step with barriers, so a step allocates nothing).
//! Every thread runs forward, loss and backward on its slice with its own activations and
//! gradients; its loss is the slice's *sum* and its incoming gradient `1/N` for a batch of `N`,
//! so the threads' gradients add up to the gradient of the whole batch's mean loss. They are
//! added in thread order, then one SGD step updates the shared weights. The same seed and thread
//! count therefore give bit-identical weights; a different thread count only changes the order
//! of the sums over the batch (f32 rounding, see tests/training.rs for the tolerance).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex, RwLock};
use std::time::Instant;

use crate::backend::Targets;
use crate::data::{Dataset, Splits};
use crate::lenet::{LeNet5, Workspace, CLASSES, PARAM_LENS};
use crate::loss::{CrossEntropyLoss, Reduction};
use crate::optim::{Sgd, SgdOptions};
use crate::rng::epoch_permutation;
use crate::{Error, Result};
use simdnet_kernels::Kernels;

/// Everything `simdnet train` takes (see [`TrainConfig::default`] for the defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub threads: usize,
    pub seed: u64,
    /// Where the best model (by test accuracy) is written, atomically, each time it improves.
    pub out: PathBuf,
    /// Start from this checkpoint instead of a fresh initialisation.
    pub init: Option<PathBuf>,
    /// Visit the training set in a seeded new order every epoch (`false`: file order).
    pub shuffle: bool,
    /// Stop after this many optimizer steps (then evaluate once, write `out` if that is a new
    /// best, and `save_last`).
    pub max_steps: Option<u64>,
    /// Write the final weights here.
    pub save_last: Option<PathBuf>,
    /// Write a CSV with a row per epoch here.
    pub metrics: Option<PathBuf>,
    /// Print the loss every this many batches (batch 0 included).
    pub log_interval: usize,
}

impl Default for TrainConfig {
    /// Epochs 10, batch 64, lr 0.01, momentum 0.9, dampening 0, weight decay 0, no Nesterov,
    /// threads = available cores, seed 0, out `lenet5-best.safetensors`, shuffled, log every 100
    /// batches.
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 64,
            lr: 0.01,
            momentum: 0.9,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            seed: 0,
            out: PathBuf::from("lenet5-best.safetensors"),
            init: None,
            shuffle: true,
            max_steps: None,
            save_last: None,
            metrics: None,
            log_interval: 100,
        }
    }
}

impl TrainConfig {
    /// The SGD options of this run.
    pub fn sgd_options(&self) -> SgdOptions {
        SgdOptions {
            lr: self.lr,
            momentum: self.momentum,
            dampening: self.dampening,
            weight_decay: self.weight_decay,
            nesterov: self.nesterov,
            maximize: false,
        }
    }

    /// PyTorch's hyperparameter checks (its messages), and positive epochs, batch size, thread
    /// count and log interval.
    pub fn validate(&self) -> Result<()> {
        let finite = [
            ("learning rate", self.lr),
            ("momentum value", self.momentum),
            ("dampening value", self.dampening),
            ("weight_decay value", self.weight_decay),
        ];
        for (what, v) in finite {
            if !v.is_finite() {
                return Err(Error::new(format!("Invalid {what}: {v}")));
            }
        }
        self.sgd_options()
            .validate()
            .map_err(|e| Error::new(e.to_string()))?;
        if self.epochs == 0 {
            return Err(Error::new("epochs must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::new("batch size must be at least 1"));
        }
        if self.threads == 0 {
            return Err(Error::new("threads must be at least 1"));
        }
        if self.log_interval == 0 {
            return Err(Error::new("log interval must be at least 1"));
        }
        Ok(())
    }
}

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

/// One epoch's numbers (a row of the metrics CSV).
#[derive(Clone, Debug, PartialEq)]
pub struct EpochStats {
    pub epoch: usize,
    /// Samples trained on in this epoch (fewer than the set when `max_steps` cut it short).
    pub samples: usize,
    /// Mean training loss over those samples.
    pub train_loss: f64,
    pub test: Evaluation,
    pub train_seconds: f64,
    pub samples_per_sec: f64,
}

/// The best model by test accuracy so far: a copy, which later steps on the live model do not
/// change.
#[derive(Clone, Debug)]
pub struct BestModel {
    pub model: LeNet5,
    pub epoch: usize,
    pub eval: Evaluation,
}

impl BestModel {
    /// Keeps a copy of `model` when there is no best yet or it is strictly more accurate than
    /// the best (a tie keeps the earlier model); returns whether it did.
    pub fn offer(
        best: &mut Option<BestModel>,
        model: &LeNet5,
        epoch: usize,
        eval: &Evaluation,
    ) -> bool {
        let better = best.as_ref().is_none_or(|b| eval.correct > b.eval.correct);
        if better {
            *best = Some(BestModel {
                model: model.clone(),
                epoch,
                eval: eval.clone(),
            });
        }
        better
    }
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    pub epochs: Vec<EpochStats>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// The best model by test accuracy (the copy written to `out`).
    pub best: Option<BestModel>,
    /// The weights at the end of the run.
    pub last: LeNet5,
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

/// One thread's share of a training step.
struct Slot {
    ws: Workspace<f32>,
    targets: Vec<i64>,
    /// Rows in this thread's slice of the current batch.
    rows: usize,
    /// Sum of the slice's losses.
    loss_sum: f32,
    error: Option<Error>,
}

/// What the threads share during a run.
struct Shared<'a> {
    model: RwLock<LeNet5>,
    /// The sample indices of the current batch.
    batch: RwLock<Vec<u32>>,
    slots: Vec<Mutex<Slot>>,
    start: Barrier,
    done: Barrier,
    stop: AtomicBool,
    train: &'a Dataset,
    kernels: &'a Kernels,
    criterion: CrossEntropyLoss<f32>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared<'_> {
    /// Thread `t`'s part of a step: forward, loss and backward on its slice of the batch.
    fn work(&self, t: usize) {
        let model = self.model.read().unwrap_or_else(|p| p.into_inner());
        let batch = self.batch.read().unwrap_or_else(|p| p.into_inner());
        let threads = self.slots.len();
        let n = batch.len();
        let (lo, hi) = (t * n / threads, (t + 1) * n / threads);
        let mut slot = lock(&self.slots[t]);
        let slot = &mut *slot;
        slot.rows = hi - lo;
        slot.loss_sum = 0.0;
        if slot.rows == 0 {
            return;
        }
        let result = (|| -> Result<f32> {
            let indices = &batch[lo..hi];
            slot.ws
                .load_images(indices.iter().map(|&i| self.train.image(i as usize)))?;
            slot.targets.clear();
            slot.targets.extend(
                indices
                    .iter()
                    .map(|&i| i64::from(self.train.labels[i as usize])),
            );
            model.forward(self.kernels, &mut slot.ws, slot.rows)?;
            let (logits, grad) = slot.ws.logits_and_grad(slot.rows);
            let scale = 1.0 / n as f32;
            let loss = self.criterion.forward_backward_scaled(
                self.kernels,
                logits,
                CLASSES,
                Targets::Indices(&slot.targets),
                scale,
                grad,
            )?;
            model.backward(self.kernels, &mut slot.ws, slot.rows)?;
            Ok(loss)
        })();
        match result {
            Ok(loss) => slot.loss_sum = loss,
            Err(e) => slot.error = Some(e),
        }
    }

    /// [`Shared::work`], with a panic turned into the thread's error: every thread must reach
    /// the barrier, or the others would wait forever.
    fn work_guarded(&self, t: usize) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.work(t)));
        if let Err(panic) = outcome {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            lock(&self.slots[t]).error = Some(Error::new(format!(
                "internal error in training thread {t}: {what}"
            )));
        }
    }

    /// Runs thread `t` (t > 0) until told to stop.
    fn worker(&self, t: usize) {
        loop {
            self.start.wait();
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            self.work_guarded(t);
            self.done.wait();
        }
    }

    /// One step over `indices` (all threads); returns the batch's mean loss, with the summed
    /// gradient in slot 0's workspace.
    fn step(&self, indices: &[u32]) -> Result<f64> {
        {
            let mut batch = self.batch.write().unwrap_or_else(|p| p.into_inner());
            batch.clear();
            batch.extend_from_slice(indices);
        }
        self.start.wait();
        self.work_guarded(0);
        self.done.wait();
        let mut first = lock(&self.slots[0]);
        let mut loss_sum = 0.0f64;
        let first = &mut *first;
        if let Some(e) = first.error.take() {
            return Err(e);
        }
        loss_sum += f64::from(first.loss_sum);
        // Fixed order: slot 0 accumulates slots 1, 2, ... in turn.
        for slot in &self.slots[1..] {
            let mut slot = lock(slot);
            if let Some(e) = slot.error.take() {
                return Err(e);
            }
            if slot.rows == 0 {
                continue;
            }
            loss_sum += f64::from(slot.loss_sum);
            for (acc, g) in first.ws.grads_mut().iter_mut().zip(slot.ws.grads()) {
                *acc += *g;
            }
        }
        Ok(loss_sum / indices.len() as f64)
    }
}

fn metadata_of(epoch: usize, eval: &Evaluation) -> [(String, String); 3] {
    [
        ("epoch".into(), epoch.to_string()),
        ("test_accuracy".into(), format!("{:.4}", eval.accuracy())),
        ("version".into(), env!("CARGO_PKG_VERSION").into()),
    ]
}

fn save(model: &LeNet5, path: &Path, epoch: usize, eval: &Evaluation) -> Result<()> {
    let meta = metadata_of(epoch, eval);
    let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    model.save(path, &meta)
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::in_file(path, e)
}

fn log_error(e: std::io::Error) -> Error {
    Error::new(format!("cannot write the training log: {e}"))
}

/// Trains LeNet-5 on `data` as `cfg` says, printing the PyTorch example's lines to `log`.
///
/// Errors: an invalid configuration, a missing training set, an unreadable `init`, an
/// unwritable output, and a loss that turns NaN or infinite (the run stops before applying that
/// step; `out` keeps the best model so far and `save_last` is not written).
pub fn train(
    cfg: &TrainConfig,
    data: &Splits,
    kernels: &Kernels,
    log: &mut dyn Write,
) -> Result<TrainSummary> {
    cfg.validate()?;
    let train = data.train.as_ref().ok_or_else(|| {
        Error::new("training needs the training set, and the data source has none")
    })?;
    if train.is_empty() {
        return Err(Error::new("the training set is empty"));
    }
    let model = match &cfg.init {
        Some(path) => LeNet5::load(path)?,
        None => LeNet5::new(cfg.seed),
    };
    let mut sgd = Sgd::<f32>::new(&PARAM_LENS, cfg.sgd_options())?;
    let criterion = CrossEntropyLoss::new(None, -100, Reduction::Sum, 0.0)?;
    let mut metrics = match &cfg.metrics {
        Some(path) => {
            let mut f = File::create(path).map_err(io_error(path))?;
            writeln!(
                f,
                "epoch,train_loss,test_loss,test_accuracy,train_seconds,samples_per_sec"
            )
            .map_err(io_error(path))?;
            Some((f, path))
        }
        None => None,
    };

    let n = train.len();
    let batch_size = cfg.batch_size.min(n);
    let threads = cfg.threads.clamp(1, batch_size);
    let capacity = batch_size.div_ceil(threads);
    let slots = (0..threads)
        .map(|_| {
            Ok(Mutex::new(Slot {
                ws: model.workspace(kernels, capacity)?,
                targets: Vec::with_capacity(capacity),
                rows: 0,
                loss_sum: 0.0,
                error: None,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    let shared = Shared {
        model: RwLock::new(model),
        batch: RwLock::new(Vec::with_capacity(batch_size)),
        slots,
        start: Barrier::new(threads),
        done: Barrier::new(threads),
        stop: AtomicBool::new(false),
        train,
        kernels,
        criterion,
    };

    let batches = n.div_ceil(batch_size);
    let mut summary = TrainSummary {
        epochs: Vec::new(),
        steps: 0,
        best: None,
        last: LeNet5::new(0),
    };
    let result = std::thread::scope(|scope| {
        for t in 1..threads {
            let shared = &shared;
            scope.spawn(move || shared.worker(t));
        }
        let result = (|| -> Result<()> {
            let mut order: Vec<u32> = (0..n as u32).collect();
            'epochs: for epoch in 1..=cfg.epochs {
                if cfg.shuffle {
                    order = epoch_permutation(n, cfg.seed, epoch as u64);
                }
                let started = Instant::now();
                let (mut seen, mut loss_total) = (0usize, 0.0f64);
                let mut stop_now = cfg.max_steps.is_some_and(|m| summary.steps >= m);
                for (batch_idx, indices) in order.chunks(batch_size).enumerate() {
                    if stop_now {
                        break;
                    }
                    let loss = shared.step(indices)?;
                    if !loss.is_finite() {
                        return Err(Error::new(format!(
                            "the loss is {loss} at epoch {epoch}, batch {batch_idx} (after {} steps): training diverged, stopping (try a smaller --lr); {} was left as it was and no final weights were saved",
                            summary.steps,
                            cfg.out.display()
                        )));
                    }
                    {
                        let mut model = shared.model.write().unwrap_or_else(|p| p.into_inner());
                        let grads = lock(&shared.slots[0]);
                        sgd.step(kernels, model.params_mut(), grads.ws.grads())?;
                    }
                    summary.steps += 1;
                    seen += indices.len();
                    loss_total += loss * indices.len() as f64;
                    if batch_idx % cfg.log_interval == 0 {
                        writeln!(
                            log,
                            "Train Epoch: {epoch} [{}/{n} ({:.0}%)]\tLoss: {loss:.6}",
                            batch_idx * indices.len(),
                            100.0 * batch_idx as f64 / batches as f64
                        )
                        .map_err(log_error)?;
                    }
                    stop_now = cfg.max_steps.is_some_and(|m| summary.steps >= m);
                }
                let seconds = started.elapsed().as_secs_f64();
                let rate = if seconds > 0.0 {
                    seen as f64 / seconds
                } else {
                    0.0
                };
                writeln!(
                    log,
                    "Epoch {epoch}: {seen} samples in {seconds:.2} s ({rate:.0} samples/s)"
                )
                .map_err(log_error)?;
                let model = shared.model.read().unwrap_or_else(|p| p.into_inner());
                let eval = evaluate(&model, &data.test, kernels, threads);
                writeln!(log, "{}", eval.test_line()).map_err(log_error)?;
                if BestModel::offer(&mut summary.best, &model, epoch, &eval) {
                    let best = summary.best.as_ref().expect("just offered");
                    save(&best.model, &cfg.out, epoch, &eval)?;
                    writeln!(
                        log,
                        "New best test accuracy {:.2}% (epoch {epoch}): saved {}",
                        100.0 * eval.accuracy(),
                        cfg.out.display()
                    )
                    .map_err(log_error)?;
                }
                let train_loss = if seen > 0 {
                    loss_total / seen as f64
                } else {
                    f64::NAN
                };
                if let Some((f, path)) = &mut metrics {
                    writeln!(
                        f,
                        "{epoch},{train_loss:.6},{:.6},{:.6},{seconds:.3},{rate:.1}",
                        eval.loss,
                        eval.accuracy()
                    )
                    .and_then(|()| f.flush())
                    .map_err(io_error(path))?;
                }
                summary.epochs.push(EpochStats {
                    epoch,
                    samples: seen,
                    train_loss,
                    test: eval,
                    train_seconds: seconds,
                    samples_per_sec: rate,
                });
                if stop_now || epoch >= cfg.epochs {
                    break 'epochs;
                }
            }
            Ok(())
        })();
        // Release the workers whatever happened.
        shared.stop.store(true, Ordering::Release);
        shared.start.wait();
        result
    });
    result?;
    summary.last = shared.model.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = &cfg.save_last {
        let (epoch, eval) = summary
            .epochs
            .last()
            .map(|e| (e.epoch, e.test.clone()))
            .expect("every run evaluates at least once");
        save(&summary.last, path, epoch, &eval)?;
    }
    Ok(summary)
}
