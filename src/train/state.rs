//! The state file of `train --state FILE`: everything a run needs to continue bit-exactly.
//!
//! It is a safetensors file (written atomically, read by the same checked reader as
//! checkpoints): the weights as `model.<name>` and the SGD momentum buffers as
//! `momentum.<name>` (absent before the first momentum step), in PyTorch's names and shapes, and
//! in `__metadata__`, as text:
//!
//! - `simdnet_state_version` ([`STATE_VERSION`]; any other value is refused);
//! - the hyperparameters that fix the trajectory (seed, batch size, lr, momentum, dampening,
//!   weight decay, Nesterov, shuffling), f64 values in Rust's shortest round-trip form, so they
//!   read back to the same bits;
//! - the position: the epoch in progress and the next batch in it, the optimizer's step count,
//!   the samples seen and the summed training loss of the epoch so far (f64, exact). The
//!   shuffling RNG needs no state of its own: an epoch's permutation is a pure function of
//!   (seed, epoch) ([`crate::rng::epoch_permutation`]), so the batch index is the permutation
//!   position;
//! - the best test accuracy so far (correct of total, and its epoch), the metrics history (a line
//!   per finished epoch, numbers exact), the total epochs asked for, the output paths, and a
//!   fingerprint of the data (counts and CRC-32 of the images and labels of both sets).

use super::{EpochStats, Evaluation, TrainConfig};
use crate::checkpoint;
use crate::data::gzip::Crc32;
use crate::data::{Dataset, Splits};
use crate::lenet::{LeNet5, NUM_PARAMS, PARAMS};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// The state format this build writes and reads.
pub const STATE_VERSION: &str = "2";

/// Where a run is: the next batch to train is `batch` of `epoch`.
#[derive(Clone, Debug, PartialEq)]
pub struct Position {
    /// The epoch in progress (1-based); `epochs + 1` once the last one finished.
    pub epoch: usize,
    /// The next batch of that epoch (0-based); the epoch's batch count once its training
    /// finished and only its evaluation remains.
    pub batch: usize,
    /// Optimizer steps taken in the whole run.
    pub steps: u64,
    /// Samples trained on in the epoch so far, and the sum of their losses.
    pub seen: usize,
    pub loss_total: f64,
    /// Training seconds of the epoch so far (for the metrics; not part of the trajectory).
    pub seconds: f64,
}

/// The best test accuracy so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BestSoFar {
    pub correct: usize,
    pub total: usize,
    pub epoch: usize,
}

/// A run's saved state.
#[derive(Clone, Debug)]
pub struct RunState {
    pub model: LeNet5,
    /// The SGD momentum buffers, back to back (empty before the first momentum step).
    pub momentum: Vec<f32>,
    pub optimizer_steps: u64,
    pub position: Position,
    pub best: Option<BestSoFar>,
    pub history: Vec<EpochStats>,
    /// The trajectory-fixing settings (`epochs`, `threads` and the outputs are kept only to
    /// fill in a resumed run's defaults).
    pub config: TrainConfig,
    pub fingerprint: String,
}

/// Counts and CRC-32 of a dataset's images and labels.
fn fingerprint_of(d: &Dataset) -> String {
    let mut crc = Crc32::new();
    crc.update(&d.images);
    crc.update(&d.labels);
    format!("{} images crc32 {:08x}", d.len(), crc.value())
}

/// The fingerprint of the data a run trains and evaluates on.
pub fn fingerprint(data: &Splits) -> String {
    let train = data
        .train
        .as_ref()
        .map_or_else(|| "none".to_string(), fingerprint_of);
    format!("train {train}; test {}", fingerprint_of(&data.test))
}

/// The settings a resumed run must share with the original: (flag, value as text).
fn trajectory(cfg: &TrainConfig) -> [(&'static str, String); 8] {
    [
        ("--seed", cfg.seed.to_string()),
        ("--batch-size", cfg.batch_size.to_string()),
        ("--lr", cfg.lr.to_string()),
        ("--momentum", cfg.momentum.to_string()),
        ("--dampening", cfg.dampening.to_string()),
        ("--weight-decay", cfg.weight_decay.to_string()),
        ("--nesterov", cfg.nesterov.to_string()),
        ("--no-shuffle", (!cfg.shuffle).to_string()),
    ]
}

fn path_text(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn history_line(e: &EpochStats) -> String {
    let mut s = format!(
        "{} {} {} {} {} {} {} {} {}",
        e.epoch,
        e.samples,
        e.train_loss,
        e.test.loss,
        e.test.correct,
        e.test.total,
        e.train_seconds,
        e.samples_per_sec,
        e.test_seconds
    );
    for row in &e.test.confusion {
        for v in row {
            s.push_str(&format!(" {v}"));
        }
    }
    s
}

fn parse_history_line(line: &str) -> Option<EpochStats> {
    let f: Vec<&str> = line.split(' ').collect();
    if f.len() != 109 {
        return None;
    }
    let mut confusion = [[0u64; 10]; 10];
    for (i, v) in f[9..].iter().enumerate() {
        confusion[i / 10][i % 10] = v.parse().ok()?;
    }
    Some(EpochStats {
        epoch: f[0].parse().ok()?,
        samples: f[1].parse().ok()?,
        train_loss: f[2].parse().ok()?,
        test: Evaluation {
            loss: f[3].parse().ok()?,
            correct: f[4].parse().ok()?,
            total: f[5].parse().ok()?,
            confusion,
        },
        train_seconds: f[6].parse().ok()?,
        samples_per_sec: f[7].parse().ok()?,
        test_seconds: f[8].parse().ok()?,
    })
}

impl RunState {
    /// Writes the state to `path`, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let p = &self.position;
        let cfg = &self.config;
        let mut meta: Vec<(String, String)> = vec![
            ("simdnet_state_version".into(), STATE_VERSION.into()),
            ("version".into(), env!("CARGO_PKG_VERSION").into()),
        ];
        for (flag, value) in trajectory(cfg) {
            meta.push((flag.trim_start_matches('-').into(), value));
        }
        let best = self
            .best
            .map(|b| format!("{} {} {}", b.correct, b.total, b.epoch))
            .unwrap_or_default();
        let history: Vec<String> = self.history.iter().map(history_line).collect();
        meta.extend([
            ("epochs".into(), cfg.epochs.to_string()),
            ("threads".into(), cfg.threads.to_string()),
            ("out".into(), cfg.out.to_string_lossy().into_owned()),
            ("save-last".into(), path_text(&cfg.save_last)),
            ("metrics".into(), path_text(&cfg.metrics)),
            ("epoch".into(), p.epoch.to_string()),
            ("batch".into(), p.batch.to_string()),
            ("steps".into(), p.steps.to_string()),
            ("optimizer_steps".into(), self.optimizer_steps.to_string()),
            ("seen".into(), p.seen.to_string()),
            ("loss_total".into(), p.loss_total.to_string()),
            ("seconds".into(), p.seconds.to_string()),
            ("best".into(), best),
            ("history".into(), history.join("\n")),
            ("data".into(), self.fingerprint.clone()),
        ]);
        let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let names: Vec<(String, String)> = PARAMS
            .iter()
            .map(|(n, _)| (format!("model.{n}"), format!("momentum.{n}")))
            .collect();
        let weights = crate::lenet::split(self.model.params());
        let mut tensors: Vec<(&str, &[usize], &[f32])> = Vec::new();
        for ((names, (_, shape)), w) in names.iter().zip(PARAMS).zip(weights) {
            tensors.push((names.0.as_str(), shape, w));
        }
        if !self.momentum.is_empty() {
            for ((names, (_, shape)), m) in names
                .iter()
                .zip(PARAMS)
                .zip(crate::lenet::split(&self.momentum))
            {
                tensors.push((names.1.as_str(), shape, m));
            }
        }
        let bytes = checkpoint::encode(&tensors, &meta).map_err(|e| Error::in_file(path, e))?;
        crate::outputs::write_atomically(path, &bytes, "the state file")
    }

    /// Reads a state file written by [`RunState::save`]. Errors name the file and the field.
    pub fn load(path: &Path) -> Result<RunState> {
        let c = checkpoint::read(path)?;
        let bad = |what: String| Error::in_file(path, format!("state file: {what}"));
        match c.meta("simdnet_state_version") {
            Some(STATE_VERSION) => {}
            Some(v) => {
                return Err(bad(format!(
                    "format version {v} is not supported (this simdnet reads version \
                     {STATE_VERSION})"
                )))
            }
            None => {
                return Err(bad(
                    "no simdnet_state_version: not a simdnet state file (a checkpoint goes to \
                     --init, a state file to --resume)"
                        .into(),
                ))
            }
        }
        let text = |key: &str| {
            c.meta(key)
                .ok_or_else(|| bad(format!("'{key}' is missing")))
        };
        fn num<T: std::str::FromStr>(
            key: &str,
            v: &str,
            bad: &dyn Fn(String) -> Error,
        ) -> Result<T> {
            v.parse()
                .map_err(|_| bad(format!("'{key}' is '{v}', not a number")))
        }
        let field = |key: &str| -> Result<String> { text(key).map(str::to_string) };
        let get = |key: &str| text(key).map(|v| (key.to_string(), v.to_string()));
        let tensor = |name: &str| -> Result<Vec<f32>> {
            let mut all = Vec::with_capacity(NUM_PARAMS);
            for (n, shape) in PARAMS {
                let key = format!("{name}.{n}");
                let t = c
                    .tensor(&key)
                    .ok_or_else(|| bad(format!("tensor '{key}' is missing")))?;
                if t.shape != shape {
                    return Err(bad(format!("tensor '{key}' has shape {:?}", t.shape)));
                }
                all.extend_from_slice(&t.data);
            }
            Ok(all)
        };
        let model = LeNet5::from_params(tensor("model")?).map_err(|e| bad(e.to_string()))?;
        let momentum = if c.tensor("momentum.conv1.weight").is_some() {
            tensor("momentum")?
        } else {
            Vec::new()
        };
        let b = |k: &str| -> Result<bool> {
            let (k, v) = get(k)?;
            num::<bool>(&k, &v, &bad)
        };
        let n = |k: &str| -> Result<u64> {
            let (k, v) = get(k)?;
            num::<u64>(&k, &v, &bad)
        };
        let f = |k: &str| -> Result<f64> {
            let (k, v) = get(k)?;
            num::<f64>(&k, &v, &bad)
        };
        let opt_path = |k: &str| -> Result<Option<PathBuf>> {
            let v = field(k)?;
            Ok((!v.is_empty()).then(|| PathBuf::from(v)))
        };
        let config = TrainConfig {
            epochs: n("epochs")? as usize,
            batch_size: n("batch-size")? as usize,
            lr: f("lr")?,
            momentum: f("momentum")?,
            dampening: f("dampening")?,
            weight_decay: f("weight-decay")?,
            nesterov: b("nesterov")?,
            threads: n("threads")? as usize,
            seed: n("seed")?,
            out: PathBuf::from(field("out")?),
            shuffle: !b("no-shuffle")?,
            save_last: opt_path("save-last")?,
            metrics: opt_path("metrics")?,
            ..TrainConfig::default()
        };
        let position = Position {
            epoch: n("epoch")? as usize,
            batch: n("batch")? as usize,
            steps: n("steps")?,
            seen: n("seen")? as usize,
            loss_total: f("loss_total")?,
            seconds: f("seconds")?,
        };
        let best_text = field("best")?;
        let best = if best_text.is_empty() {
            None
        } else {
            let v: Vec<usize> = best_text
                .split(' ')
                .map(|x| x.parse::<usize>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| bad(format!("'best' is '{best_text}'")))?;
            let [correct, total, epoch] = v[..] else {
                return Err(bad(format!("'best' is '{best_text}'")));
            };
            Some(BestSoFar {
                correct,
                total,
                epoch,
            })
        };
        let history_text = field("history")?;
        let history = history_text
            .lines()
            .map(|l| parse_history_line(l).ok_or_else(|| bad(format!("history line '{l}'"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(RunState {
            model,
            momentum,
            optimizer_steps: n("optimizer_steps")?,
            position,
            best,
            history,
            config,
            fingerprint: field("data")?,
        })
    }

    /// Checks that `cfg` continues this state: the same trajectory settings and data. Errors
    /// name every setting that differs.
    pub fn check_continues(&self, cfg: &TrainConfig, fingerprint: &str, path: &Path) -> Result<()> {
        let mut differ = Vec::new();
        for ((flag, was), (_, now)) in trajectory(&self.config).into_iter().zip(trajectory(cfg)) {
            if was != now {
                differ.push(format!("{flag} is {now} but the state has {was}"));
            }
        }
        if !differ.is_empty() {
            return Err(Error::refusal(format!(
                "--resume {}: {}; only --epochs, --threads, --out, --save-last, --metrics, \
                 --log-interval and --max-steps may change when resuming",
                path.display(),
                differ.join(", ")
            )));
        }
        if self.fingerprint != fingerprint {
            return Err(Error::refusal(format!(
                "--resume {}: the data differ from the run's (the state has {}, this data is \
                 {fingerprint})",
                path.display(),
                self.fingerprint
            )));
        }
        Ok(())
    }
}
