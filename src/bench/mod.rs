//! `simdnet bench`: what this CPU gets. The FMA peak of every ISA it supports, measured on the
//! spot ([`peak`]); each kernel at LeNet-5's shapes and GEMM at square sizes on every ISA, as
//! GFLOP/s (and the fraction of that ISA's one-thread peak) or GB/s ([`kernels`]); then training
//! steps and evaluation on the trainer's own code ([`model`]). [`report`] writes the table and
//! the JSON.
//!
//! Every figure is the fastest sample within a time budget ([`timing::measure`]), single
//! threaded except the multi-thread peak and the training and evaluation rows.

pub mod kernels;
mod memory;
pub mod model;
pub mod peak;
pub mod report;
pub mod timing;

use crate::Result;
use kernels::{Case, Work};
use peak::Peak;
use simdnet_kernels::{Isa, Kernels};
use std::time::Duration;

/// What to measure and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The ISAs, in the table's column order (each supported by this CPU).
    pub isas: Vec<Isa>,
    /// Threads of the multi-thread peak, training and evaluation rows.
    pub threads: usize,
    /// Tiny budgets (a smoke test: the figures are rough).
    pub quick: bool,
}

/// The largest square GEMM the scalar ISA runs: its reference loops take seconds at 1024.
pub const SCALAR_MAX_GEMM: usize = 512;

/// Test images of the evaluation rows (a multiple of the evaluation batch).
pub const EVAL_IMAGES: usize = 512;
const QUICK_EVAL_IMAGES: usize = 64;

impl Settings {
    /// Time spent timing one kernel on one ISA (after its warm-up call).
    pub fn kernel_budget(&self) -> Duration {
        Duration::from_millis(if self.quick { 2 } else { 120 })
    }

    /// Time spent on each of the one-thread and the multi-thread peak of one ISA.
    pub fn peak_budget(&self) -> Duration {
        Duration::from_millis(if self.quick { 5 } else { 200 })
    }

    /// Time spent on each training or evaluation row.
    pub fn model_budget(&self) -> Duration {
        Duration::from_millis(if self.quick { 5 } else { 300 })
    }

    /// Images each evaluation covers.
    pub fn eval_images(&self) -> usize {
        if self.quick {
            QUICK_EVAL_IMAGES
        } else {
            EVAL_IMAGES
        }
    }

    /// Thread counts of the training and evaluation rows: 1, and `threads` when more.
    pub fn thread_counts(&self) -> Vec<usize> {
        if self.threads > 1 {
            vec![1, self.threads]
        } else {
            vec![1]
        }
    }
}

/// The machine the figures come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// The CPU's model name from /proc/cpuinfo, when readable.
    pub cpu: Option<String>,
    /// Cores available to this process.
    pub cores: usize,
    pub arch: &'static str,
    /// Every ISA this CPU supports.
    pub isas: Vec<Isa>,
}

impl Machine {
    pub fn detect() -> Machine {
        Machine {
            cpu: cpu_model(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            arch: std::env::consts::ARCH,
            isas: Isa::supported(),
        }
    }
}

/// The first `model name` (x86) or `Model` (some aarch64 kernels) line of /proc/cpuinfo.
fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let key = key.trim();
        let value = value.trim();
        ((key == "model name" || key == "Model") && !value.is_empty()).then(|| value.to_string())
    })
}

/// One kernel on one ISA.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    /// Seconds per call: the fastest sample and the median one.
    pub best: f64,
    pub median: f64,
    /// GFLOP/s or GB/s (as the case's [`Work`]) at the best time.
    pub rate: f64,
    /// `rate` over the ISA's one-thread FMA peak (compute-bound kernels only).
    pub of_peak: Option<f64>,
}

/// One kernel on every ISA of the settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub id: &'static str,
    pub label: &'static str,
    pub shape: String,
    pub work: Work,
    /// One per ISA of the settings, in order; `None` where the ISA is not run for this case.
    pub cells: Vec<Option<Cell>>,
}

/// Whether `isa` runs `case`: the scalar ISA skips the square GEMMs above [`SCALAR_MAX_GEMM`].
pub fn runs(case: &Case, isa: Isa) -> bool {
    let too_big = case
        .id
        .strip_prefix("gemm_")
        .and_then(|n| n.parse::<usize>().ok())
        > Some(SCALAR_MAX_GEMM);
    !(isa == Isa::Scalar && too_big)
}

/// The peak of every ISA of the settings.
pub fn measure_peaks(s: &Settings) -> Vec<Peak> {
    s.isas
        .iter()
        .filter_map(|&isa| peak::measure(isa, s.threads, s.peak_budget()))
        .collect()
}

/// `case` on every ISA of the settings; `peaks` gives the fractions of peak.
pub fn measure_row(case: &Case, s: &Settings, peaks: &[Peak]) -> Row {
    let cells = s
        .isas
        .iter()
        .map(|&isa| {
            if !runs(case, isa) {
                return None;
            }
            let k = Kernels::for_isa(isa).ok()?;
            let mut run = case.runner(k);
            let t = timing::measure(s.kernel_budget(), &mut run);
            let (amount, of_peak) = match case.work {
                Work::Flops(f) => (f, true),
                Work::Bytes(b) => (b, false),
            };
            let rate = amount as f64 / t.best / 1e9;
            let peak = peaks.iter().find(|p| p.isa == isa).map(|p| p.single);
            Some(Cell {
                best: t.best,
                median: t.median,
                rate,
                of_peak: peak.filter(|_| of_peak).map(|p| rate / p),
            })
        })
        .collect();
    Row {
        id: case.id,
        label: case.label,
        shape: case.shape.clone(),
        work: case.work,
        cells,
    }
}

/// Training and evaluation of LeNet-5 on one ISA at one thread count.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelRow {
    pub isa: Isa,
    pub threads: usize,
    /// Training samples per second (steps of 64).
    pub train_rate: f64,
    /// `train_rate` times [`model::TRAIN_FLOPS`], in GFLOP/s.
    pub train_gflops: f64,
    /// `train_gflops` over the ISA's FMA peak at this thread count.
    pub train_of_peak: Option<f64>,
    /// Evaluated images per second.
    pub eval_rate: f64,
}

/// The training and evaluation rows: every ISA of the settings at each of its thread counts.
pub fn measure_model(s: &Settings, peaks: &[Peak]) -> Result<Vec<ModelRow>> {
    let mut rows = Vec::new();
    for &isa in &s.isas {
        let Ok(k) = Kernels::for_isa(isa) else {
            continue;
        };
        for threads in s.thread_counts() {
            let train_rate = model::train_rate(&k, threads, s.model_budget())?;
            let eval_rate = model::eval_rate(&k, threads, s.eval_images(), s.model_budget());
            let train_gflops = train_rate * model::TRAIN_FLOPS as f64 / 1e9;
            let peak = peaks.iter().find(|p| p.isa == isa).map(|p| {
                if threads == 1 {
                    p.single
                } else {
                    p.multi
                }
            });
            rows.push(ModelRow {
                isa,
                threads,
                train_rate,
                train_gflops,
                train_of_peak: peak.map(|p| train_gflops / p),
                eval_rate,
            });
        }
    }
    Ok(rows)
}

/// Everything one run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub machine: Machine,
    pub settings: Settings,
    pub peaks: Vec<Peak>,
    pub rows: Vec<Row>,
    pub model: Vec<ModelRow>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scalar_isa_skips_only_the_largest_gemm() {
        for case in kernels::cases() {
            assert!(runs(&case, Isa::Avx2));
            assert_eq!(
                runs(&case, Isa::Scalar),
                case.id != "gemm_1024",
                "{}",
                case.id
            );
        }
    }

    #[test]
    fn a_quick_row_has_a_rate_per_isa_and_a_fraction_only_for_flops() {
        let s = Settings {
            isas: Isa::supported(),
            threads: 1,
            quick: true,
        };
        let peaks = measure_peaks(&s);
        assert_eq!(peaks.len(), s.isas.len());
        let all = kernels::cases();
        for id in ["conv1_forward", "sgd_momentum"] {
            let case = all.iter().find(|c| c.id == id).unwrap();
            let row = measure_row(case, &s, &peaks);
            for cell in &row.cells {
                let cell = cell.expect("every ISA runs these");
                assert!(cell.rate > 0.0 && cell.best > 0.0 && cell.best <= cell.median);
                assert_eq!(cell.of_peak.is_some(), id == "conv1_forward");
            }
        }
        assert_eq!(s.thread_counts(), [1]);
    }
}
