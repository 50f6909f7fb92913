//! What a run shows besides the PyTorch-style lines: the progress line redrawn on a terminal
//! during an epoch, and the training-curves picture (`--plot`).

use super::EpochStats;
use crate::outputs;
use crate::plot::{training_curves, TestPoint, TrainPoint};
use crate::Result;
use std::path::Path;

/// Where an epoch stands, for the progress line.
pub(super) struct Progress {
    pub epoch: usize,
    pub epochs: usize,
    /// Samples trained on in this epoch so far, and the epoch's size.
    pub done: usize,
    pub total: usize,
    /// Seconds spent training in this epoch so far.
    pub seconds: f64,
    /// Mean training loss over the samples done.
    pub loss: f64,
}

/// `1:05` or `1:02:03`.
fn clock(seconds: f64) -> String {
    let s = if seconds.is_finite() {
        seconds.max(0.0).round() as u64
    } else {
        0
    };
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

impl Progress {
    /// `epoch 2/10 [#####.....] 12800/60000 samples, 21512 samples/s, ETA 0:02, loss 0.4312`.
    pub fn text(&self) -> String {
        const BAR: usize = 20;
        let fraction = if self.total == 0 {
            0.0
        } else {
            self.done as f64 / self.total as f64
        };
        let filled = ((fraction * BAR as f64) as usize).min(BAR);
        let rate = if self.seconds > 0.0 {
            self.done as f64 / self.seconds
        } else {
            0.0
        };
        let eta = if rate > 0.0 {
            clock(self.total.saturating_sub(self.done) as f64 / rate)
        } else {
            "-".to_string()
        };
        format!(
            "epoch {}/{} [{}{}] {}/{} samples, {rate:.0} samples/s, ETA {eta}, loss {:.4}",
            self.epoch,
            self.epochs,
            "#".repeat(filled),
            ".".repeat(BAR - filled),
            self.done,
            self.total,
            self.loss
        )
    }
}

/// The training loss at every log interval of this process, for `--plot`.
#[derive(Default)]
pub(super) struct Curve {
    points: Vec<TrainPoint>,
}

impl Curve {
    /// The loss of batch `batch` (of `batches`) of epoch `epoch` (from 1).
    pub fn train_point(&mut self, epoch: usize, batch: usize, batches: usize, loss: f64) {
        let at = (epoch - 1) as f64 + batch as f64 / batches.max(1) as f64;
        self.points.push(TrainPoint { epoch: at, loss });
    }

    /// Draws the curves (this process's training points and every epoch's test result) into
    /// `path`, atomically.
    pub fn write(&self, path: &Path, epochs: &[EpochStats]) -> Result<()> {
        let test: Vec<TestPoint> = epochs
            .iter()
            .map(|e| TestPoint {
                epoch: e.epoch,
                loss: e.test.loss,
                accuracy: e.test.accuracy(),
            })
            .collect();
        // Epochs trained before a resume have no batch points here: their mean training loss
        // stands in, at the end of the epoch.
        let first = self.points.first().map_or(f64::INFINITY, |p| p.epoch);
        let mut train: Vec<TrainPoint> = epochs
            .iter()
            .filter(|e| (e.epoch as f64) <= first && e.train_loss.is_finite())
            .map(|e| TrainPoint {
                epoch: e.epoch as f64,
                loss: e.train_loss,
            })
            .collect();
        train.extend_from_slice(&self.points);
        let svg = training_curves(&train, &test, "LeNet-5 training (simdnet)");
        outputs::write_atomically(path, svg.as_bytes(), "the plot")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_shows_count_rate_eta_and_loss() {
        let p = Progress {
            epoch: 2,
            epochs: 10,
            done: 15000,
            total: 60000,
            seconds: 1.5,
            loss: 0.43125,
        };
        assert_eq!(
            p.text(),
            "epoch 2/10 [#####...............] 15000/60000 samples, 10000 samples/s, ETA 0:05, \
             loss 0.4313"
        );
        assert_eq!(clock(3725.0), "1:02:05");
        assert_eq!(clock(f64::NAN), "0:00");
    }
}
