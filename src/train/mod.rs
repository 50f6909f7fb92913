//! The trainer: minibatch SGD on LeNet-5, data-parallel across threads, with the PyTorch MNIST
//! example's output, the best model by test accuracy kept as a copy, and a stop on a NaN loss.
//!
//! The loop here (epochs, logging, evaluation, outputs) drives [`step::with_team`], which
//! owns the threads, the gradient reduction and the SGD step; [`evaluate`] measures a model
//! on a dataset.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::data::Splits;
use crate::lenet::{LeNet5, PARAM_LENS};
use crate::optim::{Sgd, SgdOptions};
use crate::rng::epoch_permutation;
use crate::{Error, Result};
use simdnet_kernels::Kernels;

mod eval;
pub mod step;

pub use eval::{evaluate, Evaluation};
use step::with_team;

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

fn metadata_of(epoch: usize, eval: &Evaluation, team: &step::Setup) -> Vec<(String, String)> {
    let mut meta = vec![
        ("epoch".into(), epoch.to_string()),
        ("test_accuracy".into(), format!("{:.4}", eval.accuracy())),
        ("version".into(), env!("CARGO_PKG_VERSION").into()),
    ];
    meta.extend(team.metadata());
    meta
}

fn save(
    model: &LeNet5,
    path: &Path,
    epoch: usize,
    eval: &Evaluation,
    team: &step::Setup,
) -> Result<()> {
    let meta = metadata_of(epoch, eval, team);
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
    let sgd = Sgd::<f32>::new(&PARAM_LENS, cfg.sgd_options())?;
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
    let batches = n.div_ceil(batch_size);
    let mut summary = TrainSummary {
        epochs: Vec::new(),
        steps: 0,
        best: None,
        last: LeNet5::new(0),
    };
    let setup = step::Setup::new(cfg.threads, batch_size, kernels);
    let ((), last, _) = with_team(
        model,
        sgd,
        train,
        kernels,
        batch_size,
        cfg.threads,
        |team| -> Result<()> {
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
                    let loss = team.step(indices)?;
                    if !loss.is_finite() {
                        return Err(Error::new(format!(
                            "the loss is {loss} at epoch {epoch}, batch {batch_idx} (after {} steps): training diverged, stopping (try a smaller --lr); {} was left as it was and no final weights were saved",
                            summary.steps,
                            cfg.out.display()
                        )));
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
                let model = team.model();
                let eval = team.evaluate(&data.test)?;
                writeln!(log, "{}", eval.test_line()).map_err(log_error)?;
                if BestModel::offer(&mut summary.best, &model, epoch, &eval) {
                    let best = summary.best.as_ref().expect("just offered");
                    save(&best.model, &cfg.out, epoch, &eval, &setup)?;
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
        },
    )?;
    summary.last = last;
    if let Some(path) = &cfg.save_last {
        let (epoch, eval) = summary
            .epochs
            .last()
            .map(|e| (e.epoch, e.test.clone()))
            .expect("every run evaluates at least once");
        save(&summary.last, path, epoch, &eval, &setup)?;
    }
    Ok(summary)
}
