//! The kernels `simdnet bench` measures: each at LeNet-5's shapes at batch 64 (and GEMM at three
//! square sizes), with its work counted analytically: floating-point operations for the
//! compute-bound kernels here (GEMM `2 m n k`, convolution `2 * output elements * K` per pass),
//! bytes read plus bytes written for the bandwidth-bound ones (`memory.rs`). [`cases`] lists
//! them all in the table's order.

use super::memory::{
    bias_add, bias_backward, cross_entropy, maxpool_backward, maxpool_forward, relu_backward,
    relu_forward, sgd_momentum,
};
use crate::rng::Rng;
use simdnet_kernels::conv::Conv2dShape;
use simdnet_kernels::gemm::Transpose;
use simdnet_kernels::maxpool::Pool2dShape;
use simdnet_kernels::Kernels;
use std::hint::black_box;

/// LeNet-5's batch in these measurements.
pub const BATCH: usize = 64;

/// What one call of a kernel does, counted analytically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Floating-point operations (a multiply-add is two).
    Flops(u64),
    /// Bytes read plus bytes written, each element once.
    Bytes(u64),
}

/// A call that runs one kernel on buffers it owns.
pub type Runner = Box<dyn FnMut()>;

/// One measured kernel.
pub struct Case {
    /// A stable name for scripts, e.g. `conv1_forward`.
    pub id: &'static str,
    /// What the table shows, e.g. `conv1 forward`.
    pub label: &'static str,
    /// The shape, e.g. `64x1x28x28, 6x5x5, pad 2`.
    pub shape: String,
    pub work: Work,
    pub(super) build: Box<dyn Fn(Kernels) -> Runner>,
}

impl Case {
    /// A runner for `k`: its buffers are allocated and filled here, not in the timed call.
    pub fn runner(&self, k: Kernels) -> Runner {
        (self.build)(k)
    }
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field("id", &self.id)
            .field("shape", &self.shape)
            .field("work", &self.work)
            .finish()
    }
}

/// LeNet-5's first convolution at batch 64: 1 -> 6 channels, 28x28, 5x5, padding 2.
pub fn conv1_shape() -> Conv2dShape {
    Conv2dShape::new(BATCH, 1, 6, (28, 28), (5, 5)).with_padding(2, 2)
}

/// LeNet-5's second convolution at batch 64: 6 -> 16 channels, 14x14 -> 10x10, 5x5.
pub fn conv2_shape() -> Conv2dShape {
    Conv2dShape::new(BATCH, 6, 16, (14, 14), (5, 5))
}

/// The floating-point operations of one pass of a convolution (the forward, the weight
/// gradient or the input gradient): `2 * output elements * in_channels * kernel_h * kernel_w`.
pub fn conv_flops(shape: &Conv2dShape) -> u64 {
    2 * (shape.output_len() * shape.col_rows()) as u64
}

/// The floating-point operations of a GEMM `m x k` by `k x n`.
pub fn gemm_flops(m: usize, n: usize, k: usize) -> u64 {
    2 * (m * n * k) as u64
}

/// `n` values uniform in [-1, 1) from `rng`.
pub(super) fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()
}

/// Every case, in the table's order.
pub fn cases() -> Vec<Case> {
    let mut v = vec![
        conv_forward("conv1_forward", "conv1 forward", conv1_shape()),
        conv_backward(
            "conv1_backward",
            "conv1 backward (dW, db)",
            conv1_shape(),
            false,
        ),
        conv_forward("conv2_forward", "conv2 forward", conv2_shape()),
        conv_backward(
            "conv2_backward",
            "conv2 backward (dX, dW, db)",
            conv2_shape(),
            true,
        ),
    ];
    for (id_f, id_b, name_f, name_b, inputs, outputs) in [
        (
            "fc1_forward",
            "fc1_backward",
            "fc1 forward",
            "fc1 backward (dX, dW)",
            400,
            120,
        ),
        (
            "fc2_forward",
            "fc2_backward",
            "fc2 forward",
            "fc2 backward (dX, dW)",
            120,
            84,
        ),
        (
            "fc3_forward",
            "fc3_backward",
            "fc3 forward",
            "fc3 backward (dX, dW)",
            84,
            10,
        ),
    ] {
        v.push(fc_forward(id_f, name_f, inputs, outputs));
        v.push(fc_backward(id_b, name_b, inputs, outputs));
    }
    for (id, size) in [("gemm_256", 256), ("gemm_512", 512), ("gemm_1024", 1024)] {
        v.push(square_gemm(id, size));
    }
    v.push(cross_entropy());
    v.push(sgd_momentum());
    let conv1_out = BATCH * 6 * 28 * 28;
    let conv2_out = BATCH * 16 * 10 * 10;
    v.push(relu_forward("relu_forward_conv1", "64x6x28x28", conv1_out));
    v.push(relu_backward(
        "relu_backward_conv1",
        "64x6x28x28",
        conv1_out,
    ));
    v.push(relu_forward("relu_forward_conv2", "64x16x10x10", conv2_out));
    v.push(relu_backward(
        "relu_backward_conv2",
        "64x16x10x10",
        conv2_out,
    ));
    v.push(bias_add("bias_add_fc1", 120, 1));
    v.push(bias_backward("bias_backward_fc1", 120, 1));
    v.push(bias_backward("bias_backward_conv1", 6, 28 * 28));
    let pool1 = Pool2dShape::new(BATCH, 6, (28, 28), (2, 2), (2, 2));
    let pool2 = Pool2dShape::new(BATCH, 16, (10, 10), (2, 2), (2, 2));
    v.push(maxpool_forward("maxpool_forward_conv1", pool1));
    v.push(maxpool_backward("maxpool_backward_conv1", pool1));
    v.push(maxpool_forward("maxpool_forward_conv2", pool2));
    v.push(maxpool_backward("maxpool_backward_conv2", pool2));
    v
}

fn conv_text(s: &Conv2dShape) -> String {
    let pad = if s.pad_h > 0 {
        format!(", pad {}", s.pad_h)
    } else {
        String::new()
    };
    format!(
        "{}x{}x{}x{}, {}x{}x{}{pad}",
        s.batch, s.in_channels, s.in_h, s.in_w, s.out_channels, s.kernel_h, s.kernel_w
    )
}

fn conv_forward(id: &'static str, label: &'static str, shape: Conv2dShape) -> Case {
    Case {
        id,
        label,
        shape: conv_text(&shape),
        work: Work::Flops(conv_flops(&shape)),
        build: Box::new(move |k| {
            let mut rng = Rng::new(1);
            let input = random(&mut rng, shape.input_len());
            let weight = random(&mut rng, shape.weight_len());
            let bias = random(&mut rng, shape.out_channels);
            let mut output = vec![0.0; shape.output_len()];
            let mut ws = vec![0.0; shape.workspace_len()];
            Box::new(move || {
                k.conv2d_forward(&shape, &input, &weight, Some(&bias), &mut output, &mut ws);
                black_box(&mut output);
            })
        }),
    }
}

/// The weight and bias gradients, and the input gradient when `input_grad`.
fn conv_backward(
    id: &'static str,
    label: &'static str,
    shape: Conv2dShape,
    input_grad: bool,
) -> Case {
    Case {
        id,
        label,
        shape: conv_text(&shape),
        work: Work::Flops(conv_flops(&shape) * if input_grad { 2 } else { 1 }),
        build: Box::new(move |k| {
            let mut rng = Rng::new(2);
            let input = random(&mut rng, shape.input_len());
            let weight = random(&mut rng, shape.weight_len());
            let grad_output = random(&mut rng, shape.output_len());
            let mut grad_input = vec![0.0; if input_grad { shape.input_len() } else { 0 }];
            let mut grad_weight = vec![0.0; shape.weight_len()];
            let mut grad_bias = vec![0.0; shape.out_channels];
            let mut ws = vec![0.0; shape.workspace_len()];
            Box::new(move || {
                k.conv2d_backward(
                    &shape,
                    &input,
                    &weight,
                    &grad_output,
                    input_grad.then_some(&mut grad_input[..]),
                    &mut grad_weight,
                    Some(&mut grad_bias),
                    &mut ws,
                );
                black_box((&mut grad_weight, &mut grad_input));
            })
        }),
    }
}

/// `output[64, outputs] = input[64, inputs] x weight[outputs, inputs]^T` (the layer's GEMM;
/// its bias is the `bias_add` rows').
fn fc_forward(id: &'static str, label: &'static str, inputs: usize, outputs: usize) -> Case {
    Case {
        id,
        label,
        shape: format!("{BATCH}x{inputs} x {inputs}x{outputs}"),
        work: Work::Flops(gemm_flops(BATCH, outputs, inputs)),
        build: Box::new(move |k| {
            let mut rng = Rng::new(3);
            let input = random(&mut rng, BATCH * inputs);
            let weight = random(&mut rng, outputs * inputs);
            let mut output = vec![0.0; BATCH * outputs];
            Box::new(move || {
                k.sgemm(
                    Transpose::No,
                    Transpose::Yes,
                    BATCH,
                    outputs,
                    inputs,
                    1.0,
                    &input,
                    inputs,
                    &weight,
                    inputs,
                    0.0,
                    &mut output,
                    outputs,
                );
                black_box(&mut output);
            })
        }),
    }
}

/// The layer's two gradient GEMMs, each as large as the forward's (whose shape names the case):
/// `dX[64, inputs] = dY[64, outputs] x W[outputs, inputs]` and `dW[outputs, inputs] = dY^T x
/// X[64, inputs]`.
fn fc_backward(id: &'static str, label: &'static str, inputs: usize, outputs: usize) -> Case {
    Case {
        id,
        label,
        shape: format!("{BATCH}x{inputs} x {inputs}x{outputs}"),
        work: Work::Flops(2 * gemm_flops(BATCH, outputs, inputs)),
        build: Box::new(move |k| {
            let mut rng = Rng::new(4);
            let input = random(&mut rng, BATCH * inputs);
            let weight = random(&mut rng, outputs * inputs);
            let grad_output = random(&mut rng, BATCH * outputs);
            let mut grad_input = vec![0.0; BATCH * inputs];
            let mut grad_weight = vec![0.0; outputs * inputs];
            Box::new(move || {
                let (n, i, o) = (BATCH, inputs, outputs);
                k.sgemm(
                    Transpose::No,
                    Transpose::No,
                    n,
                    i,
                    o,
                    1.0,
                    &grad_output,
                    o,
                    &weight,
                    i,
                    0.0,
                    &mut grad_input,
                    i,
                );
                k.sgemm(
                    Transpose::Yes,
                    Transpose::No,
                    o,
                    i,
                    n,
                    1.0,
                    &grad_output,
                    o,
                    &input,
                    i,
                    0.0,
                    &mut grad_weight,
                    i,
                );
                black_box((&mut grad_input, &mut grad_weight));
            })
        }),
    }
}

fn square_gemm(id: &'static str, size: usize) -> Case {
    Case {
        id,
        label: "GEMM square",
        shape: format!("{size}x{size} x {size}x{size}"),
        work: Work::Flops(gemm_flops(size, size, size)),
        build: Box::new(move |k| {
            let mut rng = Rng::new(5);
            let a = random(&mut rng, size * size);
            let b = random(&mut rng, size * size);
            let mut c = vec![0.0; size * size];
            Box::new(move || {
                k.sgemm(
                    Transpose::No,
                    Transpose::No,
                    size,
                    size,
                    size,
                    1.0,
                    &a,
                    size,
                    &b,
                    size,
                    0.0,
                    &mut c,
                    size,
                );
                black_box(&mut c);
            })
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convolution_and_gemm_flops_per_image() {
        assert_eq!(conv_flops(&conv1_shape()), 64 * 235_200);
        assert_eq!(conv_flops(&conv2_shape()), 64 * 480_000);
        let fc = gemm_flops(1, 120, 400) + gemm_flops(1, 84, 120) + gemm_flops(1, 10, 84);
        assert_eq!(fc, 117_840);
        assert_eq!(gemm_flops(1024, 1024, 1024), 2 << 30);
    }

    #[test]
    fn every_case_has_work_a_unique_id_and_runs_on_every_isa() {
        let all = cases();
        assert_eq!(all.len(), 26);
        let mut ids: Vec<&str> = all.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        let by_id = |id: &str| all.iter().find(|c| c.id == id).unwrap().work;
        assert_eq!(by_id("conv1_backward"), Work::Flops(64 * 235_200));
        assert_eq!(by_id("conv2_backward"), Work::Flops(2 * 64 * 480_000));
        assert_eq!(by_id("fc1_forward"), Work::Flops(2 * 64 * 400 * 120));
        assert_eq!(by_id("fc3_backward"), Work::Flops(4 * 64 * 84 * 10));
        assert_eq!(by_id("sgd_momentum"), Work::Bytes(20 * 61_706));
        assert_eq!(by_id("relu_backward_conv1"), Work::Bytes(12 * 301_056));
        assert_eq!(
            by_id("maxpool_forward_conv2"),
            Work::Bytes(4 * (102_400 + 2 * 25_600))
        );
        for k in Kernels::all() {
            for c in all.iter().filter(|c| c.id != "gemm_1024") {
                let mut run = c.runner(k);
                run();
                run();
            }
        }
    }
}
