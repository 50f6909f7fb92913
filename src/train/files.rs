//! The trainer's guards around its files: the pre-flight list of inputs and outputs, an
//! existing `--out` taken as the best so far, the divergence check before every save, the
//! metrics CSV (rewritten atomically each epoch), and the training log, whose closed pipe
//! becomes a stop request instead of an error.

use super::{state_path, BestModel, EpochStats, TrainConfig};
use crate::data::{self, Dataset, Splits};
use crate::lenet::LeNet5;
use crate::outputs::{self, Named};
use crate::signals::{self, Stop};
use crate::{Error, Result};
use simdnet_kernels::Kernels;
use std::io::Write;
use std::path::{Path, PathBuf};

/// [`outputs::preflight`] over the run's outputs (`--out`, `--save-last`, `--metrics`, the state
/// file) and inputs (`--init`, `--resume`, the data files); the state file may be the file
/// resumed from.
pub(super) fn preflight(cfg: &TrainConfig, data: &Splits) -> Result<()> {
    let mut outs = vec![Named {
        flag: "--out",
        path: &cfg.out,
    }];
    if let Some(p) = &cfg.save_last {
        outs.push(Named {
            flag: "--save-last",
            path: p,
        });
    }
    if let Some(p) = &cfg.metrics {
        outs.push(Named {
            flag: "--metrics",
            path: p,
        });
    }
    if let Some(p) = state_path(cfg) {
        outs.push(Named {
            flag: "--state",
            path: p,
        });
    }
    if let Some(p) = &cfg.plot {
        outs.push(Named {
            flag: "--plot",
            path: p,
        });
    }
    let data_files: Vec<PathBuf> = data::input_files(&data.source, data.train.is_some());
    let mut ins: Vec<Named> = data_files
        .iter()
        .map(|p| Named {
            flag: "--data",
            path: p,
        })
        .collect();
    if let Some(p) = &cfg.init {
        ins.push(Named {
            flag: "--init",
            path: p,
        });
    }
    if let Some(p) = &cfg.resume {
        ins.push(Named {
            flag: "--resume",
            path: p,
        });
    }
    outputs::preflight(&outs, &ins, &[("--state", "--resume")])
}

/// An existing `--out`: a LeNet-5 checkpoint is evaluated on `test` and returned as the best
/// so far (epoch 0), unless `--overwrite`; anything else is refused.
pub(super) fn existing_out(
    cfg: &TrainConfig,
    test: &Dataset,
    kernels: &Kernels,
    log: &mut Log,
) -> Result<Option<BestModel>> {
    if std::fs::metadata(&cfg.out).is_err() {
        return Ok(None);
    }
    let model = LeNet5::load(&cfg.out).map_err(|e| {
        Error::refusal(format!(
            "--out {} exists and is not a LeNet-5 checkpoint this simdnet can read ({e}): \
             refusing to replace it; choose another --out or move the file",
            cfg.out.display()
        ))
    })?;
    if cfg.overwrite {
        log.line(format_args!(
            "--out {} holds a LeNet-5 checkpoint; --overwrite: the first evaluated model of this \
             run replaces it",
            cfg.out.display()
        ))?;
        return Ok(None);
    }
    let eval = super::evaluate(&model, test, kernels, cfg.threads);
    log.line(format_args!(
        "--out {} already holds a LeNet-5 checkpoint: {}/{} ({:.2}%) on this run's test set; it \
         is the best so far and only a more accurate model replaces it (--overwrite to start \
         afresh)",
        cfg.out.display(),
        eval.correct,
        eval.total,
        100.0 * eval.accuracy()
    ))?;
    Ok(Some(BestModel {
        model,
        epoch: 0,
        eval,
    }))
}

/// The divergence check before a save: every weight finite, and the test loss when there is
/// one. The error names the step and the epoch.
pub(super) fn check_finite(
    model: &LeNet5,
    eval: Option<&super::Evaluation>,
    step: u64,
    epoch: usize,
) -> Result<()> {
    let diverged = |what: String| {
        Error::new(format!(
            "training diverged: after step {step} (epoch {epoch}) {what}; nothing from this \
             point was saved (try a smaller --lr)"
        ))
    };
    if let Some((i, v)) = model
        .params()
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite())
    {
        return Err(diverged(format!("weight {i} is {v}")));
    }
    if let Some(e) = eval {
        if !e.loss.is_finite() {
            return Err(diverged(format!("the test loss is {}", e.loss)));
        }
    }
    Ok(())
}

/// The metrics CSV of `epochs`.
pub(super) fn metrics_csv(epochs: &[EpochStats]) -> String {
    let mut s = String::from(
        "epoch,train_loss,test_loss,test_accuracy,train_seconds,samples_per_sec,test_seconds\n",
    );
    for e in epochs {
        s.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.3},{:.1},{:.4}\n",
            e.epoch,
            e.train_loss,
            e.test.loss,
            e.test.accuracy(),
            e.train_seconds,
            e.samples_per_sec,
            e.test_seconds
        ));
    }
    s
}

/// Rewrites the metrics CSV at `path`, atomically.
pub(super) fn write_metrics(path: &Path, epochs: &[EpochStats]) -> Result<()> {
    outputs::write_atomically(path, metrics_csv(epochs).as_bytes(), "the metrics CSV")
}

/// The training log: a closed pipe stops the run (at the next step boundary) and silences the
/// log instead of failing.
///
/// With `progress` on, [`Log::progress`] redraws one line on standard error (at most five
/// times a second), and every log line first erases it, so the two never mix on a terminal.
pub(super) struct Log<'a> {
    out: &'a mut dyn Write,
    closed: bool,
    progress: bool,
    shown: bool,
    drawn_at: Option<std::time::Instant>,
}

impl<'a> Log<'a> {
    pub(super) fn new(out: &'a mut dyn Write, progress: bool) -> Log<'a> {
        Log {
            out,
            closed: false,
            progress,
            shown: false,
            drawn_at: None,
        }
    }

    /// Redraws the progress line (when on and the last draw is 200 ms old). A failed write to
    /// standard error is a closed pipe: a stop request.
    pub(super) fn progress(&mut self, p: &super::report::Progress) {
        if !self.progress || self.drawn_at.is_some_and(|t| t.elapsed().as_millis() < 200) {
            return;
        }
        self.drawn_at = Some(std::time::Instant::now());
        let _ = self.out.flush();
        if write_stderr(&format!("\r\x1b[2K{}", p.text())) {
            self.shown = true;
        } else {
            self.progress = false;
            signals::request(Stop::PipeClosed);
        }
    }

    /// Writes one line (erasing the progress line first).
    pub(super) fn line(&mut self, args: std::fmt::Arguments) -> Result<()> {
        if self.shown {
            self.shown = false;
            if !write_stderr("\r\x1b[2K") {
                self.progress = false;
                signals::request(Stop::PipeClosed);
            }
        }
        if self.closed {
            return Ok(());
        }
        let written = self
            .out
            .write_fmt(args)
            .and_then(|()| self.out.write_all(b"\n"));
        match written {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                signals::request(Stop::PipeClosed);
                Ok(())
            }
            Err(e) => Err(Error::new(format!("cannot write the training log: {e}"))),
        }
    }
}

/// Writes `text` to standard error; `false` when that failed.
fn write_stderr(text: &str) -> bool {
    let mut err = std::io::stderr().lock();
    err.write_all(text.as_bytes())
        .and_then(|()| err.flush())
        .is_ok()
}
