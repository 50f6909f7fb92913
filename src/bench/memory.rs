//! The bandwidth-bound kernels `simdnet bench` measures, at LeNet-5's batch-64 sizes: their
//! work is the bytes they read plus the bytes they write, each element counted once.

use super::kernels::{random, Case, Work, BATCH};
use crate::lenet::NUM_PARAMS;
use crate::rng::Rng;
use simdnet_kernels::cross_entropy::{CrossEntropyOptions, GradOutput, Targets};
use simdnet_kernels::maxpool::Pool2dShape;
use simdnet_kernels::sgd::SgdOptions;
use std::hint::black_box;

/// LeNet-5's classes (the cross-entropy's row length).
const CLASSES: usize = 10;
/// Bytes of an f32.
const F32: u64 = 4;

/// Softmax and cross-entropy fused, loss and gradient, mean reduction: reads the logits and
/// the class indices, writes the gradient.
pub(super) fn cross_entropy() -> Case {
    let elements = (BATCH * CLASSES) as u64;
    Case {
        id: "cross_entropy",
        label: "softmax-cross-entropy",
        shape: format!("{BATCH}x{CLASSES}"),
        work: Work::Bytes(elements * F32 * 2 + BATCH as u64 * 8),
        build: Box::new(|k| {
            let mut rng = Rng::new(6);
            let logits = random(&mut rng, BATCH * CLASSES);
            let targets: Vec<i64> = (0..BATCH).map(|i| (i % CLASSES) as i64).collect();
            let mut grad = vec![0.0; BATCH * CLASSES];
            let options = CrossEntropyOptions::default();
            Box::new(move || {
                let loss = k.cross_entropy_forward_backward(
                    &logits,
                    CLASSES,
                    Targets::Indices(&targets),
                    &options,
                    GradOutput::Scalar(1.0),
                    &mut grad,
                    None,
                );
                black_box((loss.is_ok(), &mut grad));
            })
        }),
    }
}

/// One SGD step with momentum over all of LeNet-5's parameters as one tensor: reads the
/// parameters, gradients and momentum buffer, writes the parameters and the buffer.
pub(super) fn sgd_momentum() -> Case {
    Case {
        id: "sgd_momentum",
        label: "SGD momentum step",
        shape: "61,706 params".to_string(),
        work: Work::Bytes(5 * F32 * NUM_PARAMS as u64),
        build: Box::new(|k| {
            let mut rng = Rng::new(7);
            let mut params = random(&mut rng, NUM_PARAMS);
            let grad = random(&mut rng, NUM_PARAMS);
            let mut buffer = random(&mut rng, NUM_PARAMS);
            let options = SgdOptions {
                momentum: 0.9,
                ..SgdOptions::new(0.01)
            };
            Box::new(move || {
                k.sgd_step(&options, &mut params, &grad, Some(&mut buffer), false);
                black_box(&mut params);
            })
        }),
    }
}

/// ReLU in place, as LeNet-5 runs it: reads and writes each element.
pub(super) fn relu_forward(id: &'static str, shape: &str, n: usize) -> Case {
    Case {
        id,
        label: "ReLU forward",
        shape: shape.to_string(),
        work: Work::Bytes(2 * F32 * n as u64),
        build: Box::new(move |k| {
            let mut x = random(&mut Rng::new(8), n);
            Box::new(move || {
                k.relu_forward_in_place(&mut x);
                black_box(&mut x);
            })
        }),
    }
}

/// Reads the forward's output and the output gradient, writes the input gradient.
pub(super) fn relu_backward(id: &'static str, shape: &str, n: usize) -> Case {
    Case {
        id,
        label: "ReLU backward",
        shape: shape.to_string(),
        work: Work::Bytes(3 * F32 * n as u64),
        build: Box::new(move |k| {
            let mut rng = Rng::new(9);
            let output: Vec<f32> = random(&mut rng, n).iter().map(|v| v.max(0.0)).collect();
            let grad_output = random(&mut rng, n);
            let mut grad_input = vec![0.0; n];
            Box::new(move || {
                k.relu_backward(&output, &grad_output, &mut grad_input);
                black_box(&mut grad_input);
            })
        }),
    }
}

/// `x[n][c][s] += bias[c]` in place: reads and writes `x`, reads the bias.
pub(super) fn bias_add(id: &'static str, channels: usize, spatial: usize) -> Case {
    let n = BATCH * channels * spatial;
    Case {
        id,
        label: "bias add",
        shape: bias_text(channels, spatial),
        work: Work::Bytes(F32 * (2 * n + channels) as u64),
        build: Box::new(move |k| {
            let mut rng = Rng::new(10);
            let mut x = random(&mut rng, n);
            let bias = random(&mut rng, channels);
            Box::new(move || {
                k.bias_add(&mut x, &bias, BATCH, spatial);
                black_box(&mut x);
            })
        }),
    }
}

/// The bias gradient: reads the output gradient, writes one sum per channel.
pub(super) fn bias_backward(id: &'static str, channels: usize, spatial: usize) -> Case {
    let n = BATCH * channels * spatial;
    Case {
        id,
        label: "bias gradient",
        shape: bias_text(channels, spatial),
        work: Work::Bytes(F32 * (n + channels) as u64),
        build: Box::new(move |k| {
            let grad_output = random(&mut Rng::new(11), n);
            let mut grad_bias = vec![0.0; channels];
            Box::new(move || {
                k.bias_backward(&grad_output, &mut grad_bias, BATCH, spatial);
                black_box(&mut grad_bias);
            })
        }),
    }
}

fn bias_text(channels: usize, spatial: usize) -> String {
    if spatial == 1 {
        format!("{BATCH}x{channels}")
    } else {
        format!("{BATCH}x{channels}x{spatial}")
    }
}

fn pool_text(s: &Pool2dShape) -> String {
    format!(
        "{}x{}x{}x{} -> {}x{}",
        s.batch,
        s.channels,
        s.in_h,
        s.in_w,
        s.out_h(),
        s.out_w()
    )
}

/// 2x2 max pooling: reads the input, writes the output and the argmax (4 bytes each).
pub(super) fn maxpool_forward(id: &'static str, shape: Pool2dShape) -> Case {
    Case {
        id,
        label: "max-pool forward",
        shape: pool_text(&shape),
        work: Work::Bytes(F32 * (shape.input_len() + 2 * shape.output_len()) as u64),
        build: Box::new(move |k| {
            let input = random(&mut Rng::new(12), shape.input_len());
            let mut output = vec![0.0; shape.output_len()];
            let mut argmax = vec![0u32; shape.output_len()];
            Box::new(move || {
                k.maxpool2d_forward(&shape, &input, &mut output, &mut argmax);
                black_box((&mut output, &mut argmax));
            })
        }),
    }
}

/// Reads the output gradient and the argmax, writes the input gradient.
pub(super) fn maxpool_backward(id: &'static str, shape: Pool2dShape) -> Case {
    Case {
        id,
        label: "max-pool backward",
        shape: pool_text(&shape),
        work: Work::Bytes(F32 * (2 * shape.output_len() + shape.input_len()) as u64),
        build: Box::new(move |k| {
            let mut rng = Rng::new(13);
            let input = random(&mut rng, shape.input_len());
            let grad_output = random(&mut rng, shape.output_len());
            let mut output = vec![0.0; shape.output_len()];
            let mut argmax = vec![0u32; shape.output_len()];
            k.maxpool2d_forward(&shape, &input, &mut output, &mut argmax);
            let mut grad_input = vec![0.0; shape.input_len()];
            Box::new(move || {
                k.maxpool2d_backward(&shape, &grad_output, &argmax, &mut grad_input);
                black_box(&mut grad_input);
            })
        }),
    }
}
