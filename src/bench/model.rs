//! LeNet-5 as `simdnet train` and `simdnet eval` run it, on synthetic data: training steps of 64
//! samples on the trainer's thread team, and evaluation of a test set.

use super::kernels::BATCH;
use super::timing::measure_in;
use crate::data::Dataset;
use crate::lenet::{LeNet5, IMAGE_SIDE, PARAM_LENS};
use crate::optim::{Sgd, SgdOptions};
use crate::rng::Rng;
use crate::train::{self, step};
use crate::{Error, Result};
use simdnet_kernels::Kernels;
use std::time::Duration;

/// Floating-point operations of LeNet-5's forward pass for one image: conv1 235,200, conv2
/// 480,000, fc1 + fc2 + fc3 117,840 (multiply-adds of the convolutions and the linear layers;
/// the bias, ReLU, pooling and loss are not counted).
pub const FORWARD_FLOPS: u64 = CONV1_FLOPS + 480_000 + 117_840;

/// conv1's share of [`FORWARD_FLOPS`]: 6 x 28 x 28 outputs of 25 multiply-adds.
const CONV1_FLOPS: u64 = 235_200;

/// Floating-point operations of one training step per image: the forward pass, then the
/// backward pass, which computes the weight gradient of every layer (the same count as its
/// forward) and the input gradient of every layer but conv1.
pub const TRAIN_FLOPS: u64 = FORWARD_FLOPS + FORWARD_FLOPS + (FORWARD_FLOPS - CONV1_FLOPS);

/// `count` images of Fashion-MNIST's shape with uniformly random pixels and labels, the same
/// for the same `seed`.
pub fn synthetic(count: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let pixels = count * IMAGE_SIDE * IMAGE_SIDE;
    Dataset {
        images: (0..pixels).map(|_| rng.below(256) as u8).collect(),
        labels: (0..count).map(|_| rng.below(10) as u8).collect(),
        rows: IMAGE_SIDE,
        cols: IMAGE_SIDE,
    }
}

/// Training samples per second of steps of 64 samples (SGD, lr 0.01, momentum 0.9, as `simdnet
/// train`'s defaults) on `threads` threads, from the fastest step within `budget`.
pub fn train_rate(k: &Kernels, threads: usize, budget: Duration) -> Result<f64> {
    let data = synthetic(BATCH * 8, 1);
    let options = SgdOptions {
        momentum: 0.9,
        ..SgdOptions::new(0.01)
    };
    let sgd = Sgd::new(&PARAM_LENS, options)?;
    let batches: Vec<Vec<u32>> = (0..8)
        .map(|b| (b * BATCH..(b + 1) * BATCH).map(|i| i as u32).collect())
        .collect();
    let (rate, _, _) = step::with_team(
        LeNet5::new(0),
        sgd,
        &data,
        k,
        BATCH,
        threads,
        |team| -> Result<f64> {
            let mut failed: Option<Error> = None;
            let mut next = 0;
            let timing = measure_in(budget, Duration::ZERO, || {
                if failed.is_none() {
                    if let Err(e) = team.step(&batches[next % batches.len()]) {
                        failed = Some(e);
                    }
                }
                next += 1;
            });
            match failed {
                Some(e) => Err(e),
                None => Ok(BATCH as f64 / timing.best),
            }
        },
    )?;
    Ok(rate)
}

/// Images per second of `simdnet eval`'s evaluation (loss, accuracy and confusion matrix) of
/// `count` synthetic images on `threads` threads, from the fastest run within `budget`.
pub fn eval_rate(k: &Kernels, threads: usize, count: usize, budget: Duration) -> f64 {
    let test = synthetic(count, 2);
    let model = LeNet5::new(0);
    let timing = measure_in(budget, Duration::ZERO, || {
        std::hint::black_box(train::evaluate(&model, &test, k, threads));
    });
    count as f64 / timing.best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenet_flops_per_image() {
        assert_eq!(FORWARD_FLOPS, 833_040);
        // Backward: conv1's weight gradient, conv2's and the linear layers' weight and input
        // gradients.
        assert_eq!(TRAIN_FLOPS, 833_040 + 235_200 + 2 * 480_000 + 2 * 117_840);
        assert_eq!(TRAIN_FLOPS, 2_263_920);
    }

    #[test]
    fn synthetic_data_is_deterministic_and_valid() {
        let a = synthetic(5, 3);
        assert_eq!(a, synthetic(5, 3));
        assert_ne!(a, synthetic(5, 4));
        assert_eq!((a.len(), a.images.len()), (5, 5 * 784));
        assert!(a.labels.iter().all(|&l| l < 10));
    }

    #[test]
    fn training_and_evaluation_rates_are_positive() {
        let k = Kernels::for_isa(simdnet_kernels::Isa::best()).unwrap();
        let rate = train_rate(&k, 2, Duration::from_millis(5)).unwrap();
        assert!(rate > 0.0 && rate.is_finite());
        let rate = eval_rate(&k, 1, 32, Duration::from_millis(5));
        assert!(rate > 0.0 && rate.is_finite());
    }
}
