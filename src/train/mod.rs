//! The trainer: minibatch SGD on LeNet-5, data-parallel across threads, with the PyTorch MNIST
//! example's output, the best model by test accuracy kept as a copy, and a stop on a NaN loss.
//!
//! The loop here (epochs, logging, evaluation, outputs) drives [`step::with_team`], which
//! owns the threads, the gradient reduction and the SGD step; [`evaluate`] measures a model
//! on a dataset.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::data::Splits;
use crate::lenet::{LeNet5, PARAM_LENS};
use crate::optim::{Sgd, SgdOptions};
use crate::rng::epoch_permutation;
use crate::signals::{self, Stop};
use crate::{Error, Result};
use simdnet_kernels::Kernels;

mod eval;
mod files;
mod report;
pub mod state;
pub mod step;

use files::Log;
use report::{Curve, Progress};
use state::{BestSoFar, Position, RunState};

pub use eval::{evaluate, predictions, Evaluation};

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
    /// Write the run's state here (atomically) after every epoch and when stopped by a signal.
    pub state: Option<PathBuf>,
    /// Continue the run saved in this state file (and keep writing it, unless `state` names
    /// another file).
    pub resume: Option<PathBuf>,
    /// Start the best-so-far empty even when `out` holds a checkpoint.
    pub overwrite: bool,
    /// Draw the training curves into this SVG file after every epoch (atomically).
    pub plot: Option<PathBuf>,
    /// Print only the epoch and test lines (no batch lines, no progress line).
    pub quiet: bool,
    /// Redraw a progress line on standard error during each epoch (for a terminal).
    pub progress: bool,
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
            state: None,
            resume: None,
            overwrite: false,
            plot: None,
            quiet: false,
            progress: false,
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
    /// Seconds the evaluation of the test set took (the forward passes, data loading excluded).
    pub test_seconds: f64,
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
    /// Set when a signal or a closed pipe stopped the run early.
    pub stopped: Option<Stopped>,
}

/// Where a stop request ended a run, and what it wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct Stopped {
    pub reason: Stop,
    /// The epoch in progress and the next batch of it (of `batches`).
    pub epoch: usize,
    pub batch: usize,
    pub batches: usize,
    /// Optimizer steps taken.
    pub steps: u64,
    /// The state file written, if the run has one.
    pub state: Option<PathBuf>,
}

/// The format version of the metadata simdnet writes into checkpoints.
pub const CHECKPOINT_FORMAT_VERSION: &str = crate::lenet::FORMAT_VERSION;

/// A checkpoint's metadata: the format version, how it was made (seed and hyperparameters)
/// and the epoch (with the test accuracy when the model was evaluated).
fn metadata_of(
    cfg: &TrainConfig,
    epoch: usize,
    eval: Option<&Evaluation>,
    team: &step::Setup,
) -> Vec<(String, String)> {
    let mut meta: Vec<(String, String)> = vec![
        (
            "simdnet_format_version".into(),
            CHECKPOINT_FORMAT_VERSION.into(),
        ),
        ("version".into(), env!("CARGO_PKG_VERSION").into()),
        ("epoch".into(), epoch.to_string()),
    ];
    if let Some(eval) = eval {
        meta.push(("test_accuracy".into(), format!("{:.4}", eval.accuracy())));
    }
    meta.extend([
        ("seed".into(), cfg.seed.to_string()),
        ("batch_size".into(), cfg.batch_size.to_string()),
        ("lr".into(), cfg.lr.to_string()),
        ("momentum".into(), cfg.momentum.to_string()),
        ("dampening".into(), cfg.dampening.to_string()),
        ("weight_decay".into(), cfg.weight_decay.to_string()),
        ("nesterov".into(), cfg.nesterov.to_string()),
    ]);
    meta.extend(team.metadata());
    meta
}

fn save(
    cfg: &TrainConfig,
    model: &LeNet5,
    path: &Path,
    epoch: usize,
    eval: Option<&Evaluation>,
    team: &step::Setup,
) -> Result<()> {
    let meta = metadata_of(cfg, epoch, eval, team);
    let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    model.save(path, &meta)
}

/// The state file a run writes: `state`, else the file it resumed from.
fn state_path(cfg: &TrainConfig) -> Option<&Path> {
    cfg.state.as_deref().or(cfg.resume.as_deref())
}

/// Trains LeNet-5 on `data` as `cfg` says, printing the PyTorch example's lines to `log`.
///
/// Before anything is trained: the pre-flight checks of every output against every input
/// ([`crate::outputs::preflight`]), the state to resume (checked against `cfg` and the data),
/// and an existing `out`, evaluated on this test set as the best so far (refused if it is not a
/// LeNet-5 checkpoint). Each epoch ends with an evaluation, the divergence check (weights and
/// test loss finite), a new `out` if strictly more accurate than the best so far, the metrics
/// CSV and the state file, all written atomically. A stop request ([`crate::signals`]) ends
/// the run at the next step boundary: the state file and `save_last` are written and
/// [`TrainSummary::stopped`] says where.
///
/// Errors: refusals ([`Error::is_refusal`]) from the checks above; an unreadable `init` or
/// state; an unwritable output; a loss, weights or test loss that turn NaN or infinite (the
/// message names the step; nothing diverged is saved).
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
    files::preflight(cfg, data)?;
    let mut log = Log::new(log, cfg.progress && !cfg.quiet);
    let mut curve = Curve::default();
    let fingerprint = state::fingerprint(data);
    let mut sgd = Sgd::<f32>::new(&PARAM_LENS, cfg.sgd_options())?;
    let (model, mut position, history, mut best_so_far) = match &cfg.resume {
        Some(path) => {
            let s = RunState::load(path)?;
            s.check_continues(cfg, &fingerprint, path)?;
            sgd.restore(s.momentum, s.optimizer_steps)
                .map_err(|e| Error::in_file(path, e))?;
            log.line(format_args!(
                "Resuming {}: epoch {}, batch {}, after {} steps",
                path.display(),
                s.position.epoch,
                s.position.batch,
                s.position.steps
            ))?;
            (s.model, s.position, s.history, s.best)
        }
        None => {
            let model = match &cfg.init {
                Some(path) => LeNet5::load(path)?,
                None => LeNet5::new(cfg.seed),
            };
            let start = Position {
                epoch: 1,
                batch: 0,
                steps: 0,
                seen: 0,
                loss_total: 0.0,
                seconds: 0.0,
            };
            (model, start, Vec::new(), None)
        }
    };
    let existing = files::existing_out(cfg, &data.test, kernels, &mut log)?;
    if let Some(b) = &existing {
        if best_so_far.is_none_or(|s| b.eval.correct > s.correct) {
            best_so_far = Some(BestSoFar {
                correct: b.eval.correct,
                total: b.eval.total,
                epoch: b.epoch,
            });
        }
    }

    let n = train.len();
    let batch_size = cfg.batch_size.min(n);
    let batches = n.div_ceil(batch_size);
    let mut summary = TrainSummary {
        epochs: history.clone(),
        steps: position.steps,
        best: existing,
        last: LeNet5::new(0),
        stopped: None,
    };
    let mut history = history;
    let state_file = state_path(cfg);
    let write_state = |team: &step::Team<'_, '_>,
                       position: &Position,
                       best: Option<BestSoFar>,
                       history: &[EpochStats]|
     -> Result<()> {
        let Some(path) = state_file else {
            return Ok(());
        };
        let sgd = team.optimizer();
        RunState {
            model: team.model(),
            momentum: sgd.momentum_buffers().to_vec(),
            optimizer_steps: sgd.steps(),
            position: position.clone(),
            best,
            history: history.to_vec(),
            config: cfg.clone(),
            fingerprint: fingerprint.clone(),
        }
        .save(path)
    };
    let setup = step::Setup::new(cfg.threads, batch_size, kernels);
    let (stopped, last, _) = step::with_team(
        model,
        sgd,
        train,
        kernels,
        batch_size,
        cfg.threads,
        |team| -> Result<Option<Stopped>> {
            while position.epoch <= cfg.epochs {
                let epoch = position.epoch;
                let order: Vec<u32> = if cfg.shuffle {
                    epoch_permutation(n, cfg.seed, epoch as u64)
                } else {
                    (0..n as u32).collect()
                };
                let started = Instant::now();
                while position.batch < batches {
                    if let Some(reason) = signals::requested() {
                        position.seconds += started.elapsed().as_secs_f64();
                        files::check_finite(&team.model(), None, position.steps, epoch)?;
                        write_state(team, &position, best_so_far, &history)?;
                        return Ok(Some(Stopped {
                            reason,
                            epoch,
                            batch: position.batch,
                            batches,
                            steps: position.steps,
                            state: state_file.map(Path::to_path_buf),
                        }));
                    }
                    if cfg.max_steps.is_some_and(|m| position.steps >= m) {
                        break;
                    }
                    let b = position.batch;
                    let indices = &order[b * batch_size..((b + 1) * batch_size).min(n)];
                    let loss = team.step(indices)?;
                    if !loss.is_finite() {
                        return Err(Error::new(format!(
                            "training diverged: the loss is {loss} at step {} (epoch {epoch}, \
                             batch {b}); stopping before applying it (try a smaller --lr); {} \
                             was left as it was and no final weights were saved",
                            position.steps + 1,
                            cfg.out.display()
                        )));
                    }
                    position.steps += 1;
                    position.batch += 1;
                    position.seen += indices.len();
                    position.loss_total += loss * indices.len() as f64;
                    if b % cfg.log_interval == 0 {
                        curve.train_point(epoch, b, batches, loss);
                        if !cfg.quiet {
                            log.line(format_args!(
                                "Train Epoch: {epoch} [{}/{n} ({:.0}%)]\tLoss: {loss:.6}",
                                b * indices.len(),
                                100.0 * b as f64 / batches as f64
                            ))?;
                        }
                    }
                    let elapsed = position.seconds + started.elapsed().as_secs_f64();
                    log.progress(&Progress {
                        epoch,
                        epochs: cfg.epochs,
                        done: position.seen,
                        total: n,
                        seconds: elapsed,
                        loss: position.loss_total / position.seen.max(1) as f64,
                    });
                }
                position.seconds += started.elapsed().as_secs_f64();
                let (seen, seconds) = (position.seen, position.seconds);
                let rate = if seconds > 0.0 {
                    seen as f64 / seconds
                } else {
                    0.0
                };
                let model = team.model();
                let evaluated = Instant::now();
                let eval = team.evaluate(&data.test)?;
                let test_seconds = evaluated.elapsed().as_secs_f64();
                log.line(format_args!(
                    "Epoch {epoch}: {seen} samples in {seconds:.2} s ({rate:.0} samples/s), \
                     test set evaluated in {test_seconds:.3} s"
                ))?;
                log.line(format_args!("{}", eval.test_line()))?;
                files::check_finite(&model, Some(&eval), position.steps, epoch)?;
                if best_so_far.is_none_or(|b| eval.correct > b.correct) {
                    save(cfg, &model, &cfg.out, epoch, Some(&eval), &setup)?;
                    log.line(format_args!(
                        "New best test accuracy {:.2}% (epoch {epoch}): saved {}",
                        100.0 * eval.accuracy(),
                        cfg.out.display()
                    ))?;
                    best_so_far = Some(BestSoFar {
                        correct: eval.correct,
                        total: eval.total,
                        epoch,
                    });
                    summary.best = Some(BestModel {
                        model,
                        epoch,
                        eval: eval.clone(),
                    });
                }
                let stats = EpochStats {
                    epoch,
                    samples: seen,
                    train_loss: if seen > 0 {
                        position.loss_total / seen as f64
                    } else {
                        f64::NAN
                    },
                    test: eval,
                    train_seconds: seconds,
                    samples_per_sec: rate,
                    test_seconds,
                };
                let finished = position.batch >= batches;
                summary.epochs.push(stats.clone());
                if let Some(path) = &cfg.metrics {
                    files::write_metrics(path, &summary.epochs)?;
                }
                if let Some(path) = &cfg.plot {
                    curve.write(path, &summary.epochs)?;
                }
                if finished {
                    history.push(stats);
                    position = Position {
                        epoch: epoch + 1,
                        batch: 0,
                        seen: 0,
                        loss_total: 0.0,
                        seconds: 0.0,
                        ..position
                    };
                }
                write_state(team, &position, best_so_far, &history)?;
                if !finished || cfg.max_steps.is_some_and(|m| position.steps >= m) {
                    break;
                }
                if let Some(reason) = signals::requested() {
                    return Ok(Some(Stopped {
                        reason,
                        epoch: position.epoch,
                        batch: 0,
                        batches,
                        steps: position.steps,
                        state: state_file.map(Path::to_path_buf),
                    }));
                }
            }
            Ok(None)
        },
    )?;
    summary.steps = position.steps;
    summary.last = last;
    summary.stopped = stopped;
    if let Some(path) = &cfg.save_last {
        let eval = summary.epochs.last().map(|e| &e.test);
        let epoch = summary.epochs.last().map_or(position.epoch, |e| e.epoch);
        files::check_finite(&summary.last, None, position.steps, epoch)?;
        let eval = if summary.stopped.is_some() {
            None
        } else {
            eval
        };
        save(cfg, &summary.last, path, epoch, eval, &setup)?;
    }
    Ok(summary)
}
