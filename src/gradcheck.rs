//! Gradient checks of every layer and of the whole LeNet-5, as `simdnet gradcheck` prints them.
//!
//! - **f64**: each layer's backward pass (and the loss's, and LeNet-5's end to end) on the scalar
//!   references ([`Reference`]) against central differences of its forward pass, with the kernel
//!   crate's checker ([`checker`]) at PyTorch's `gradcheck` defaults (eps 1e-6, atol 1e-5, rtol
//!   1e-3). A layer's loss is `sum(r * output)` for a fixed random `r`, so its analytic gradient
//!   is the backward pass from `grad_output = r`.
//! - **f32**: LeNet-5's gradients on the SIMD kernels (the path training uses) against the same
//!   model's in f64 on the references, per tensor, passing when
//!   `max |g32 - g64| <= F32_BOUND * max |g64|` with `F32_BOUND = 1e-5`. Why: f32 rounds with
//!   unit roundoff u = 6e-8, and the longest sums of a step (conv1's weight gradient: 28*28
//!   products per image, 1,568 at batch 2) accumulate rounding errors that grow like sqrt(n)*u
//!   ~ 2.4e-6 of the largest term in practice (n*u ~ 1e-4 is the never-reached worst case);
//!   the bound allows four times the typical growth. Observed on AVX2: at most 5.3e-7.

use std::io::Write;

use crate::backend::{Backend, Reference, Targets};
use crate::layers::{AvgPool2d, Conv2d, Dims, Flatten, Linear, MaxPool2d, ReLU};
use crate::lenet::{self, LeNet5, CLASSES, IMAGE_LEN, PARAMS};
use crate::loss::CrossEntropyLoss;
use crate::rng::Rng;
use simdnet_kernels::Kernels;

use checker::{GradCheck, Report, Tensor};
/// The kernel crate's numeric-gradient checker.
pub use simdnet_kernels::gradcheck as checker;

/// Normwise relative bound of the f32 SIMD gradients against the f64 ones (see the module docs).
pub const F32_BOUND: f64 = 1e-5;

/// One line of the table: a tensor of a checked layer.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckRow {
    pub layer: String,
    pub tensor: String,
    pub max_abs_err: f64,
    pub max_rel_err: f64,
    pub passed: bool,
    /// `"f64"` (reference vs central differences) or `"f32"` (SIMD vs f64 reference).
    pub precision: &'static str,
}

fn rows_of(layer: &str, report: &Report) -> Vec<GradcheckRow> {
    report
        .tensors
        .iter()
        .map(|t| GradcheckRow {
            layer: layer.to_string(),
            tensor: t.name.clone(),
            max_abs_err: t.max_abs_err,
            max_rel_err: t.max_rel_err,
            passed: t.passed(),
            precision: "f64",
        })
        .collect()
}

fn random(rng: &mut Rng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.uniform(lo, hi)).collect()
}

/// Values away from ReLU's kink at 0, so a central difference never straddles it.
fn away_from_zero(v: Vec<f64>) -> Vec<f64> {
    v.into_iter()
        .map(|x| {
            if x.abs() < 0.05 {
                x.signum() * 0.05 + x
            } else {
                x
            }
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

const R: Reference = Reference;

/// Conv2d with every option in play: stride, padding and dilation, a non-square kernel.
pub fn check_conv2d(check: &GradCheck) -> Vec<GradcheckRow> {
    let mut rng = Rng::new(1);
    let conv = Conv2d::new("conv", 3, 4, (3, 2))
        .with_stride(2, 1)
        .with_padding(1, 2)
        .with_dilation(1, 2);
    let (batch, dims) = (2, Dims::new(3, 7, 6));
    let out_dims = conv.output_dims(dims).expect("valid test shape");
    let ws_len = conv
        .workspace_len::<f64, _>(&R, batch, dims)
        .expect("valid test shape");
    let r = random(&mut rng, batch * out_dims.numel(), -1.0, 1.0);
    let input = random(&mut rng, batch * dims.numel(), -1.0, 1.0);
    let (mut weight, mut bias) = (vec![0.0; conv.weight_len()], vec![0.0; conv.bias_len()]);
    conv.init(&mut rng, &mut weight, &mut bias)
        .expect("lengths from the layer");
    let (mut gi, mut gw, mut gb) = (
        vec![0.0; input.len()],
        vec![0.0; weight.len()],
        vec![0.0; bias.len()],
    );
    let mut ws = vec![0.0; ws_len];
    conv.backward(
        &R,
        batch,
        dims,
        &input,
        &weight,
        &r,
        Some(&mut gi),
        &mut gw,
        &mut gb,
        &mut ws,
    )
    .expect("valid test shape");
    let mut tensors = vec![
        Tensor::new("input", vec![batch, 3, 7, 6], input, gi),
        Tensor::new("weight", conv.weight_shape().to_vec(), weight, gw),
        Tensor::new("bias", vec![4], bias, gb),
    ];
    let mut out = vec![0.0; r.len()];
    let report = check.run(&mut tensors, |t| {
        conv.forward(
            &R,
            batch,
            dims,
            &t[0].values,
            &t[1].values,
            &t[2].values,
            &mut out,
            &mut ws,
        )
        .expect("valid test shape");
        dot(&out, &r)
    });
    rows_of(
        "Conv2d(3, 4, (3, 2), stride (2, 1), padding (1, 2), dilation (1, 2))",
        &report,
    )
}

pub fn check_linear(check: &GradCheck) -> Vec<GradcheckRow> {
    let mut rng = Rng::new(2);
    let fc = Linear::new("fc", 7, 5);
    let batch = 3;
    let r = random(&mut rng, batch * 5, -1.0, 1.0);
    let input = random(&mut rng, batch * 7, -1.0, 1.0);
    let (mut weight, mut bias) = (vec![0.0; fc.weight_len()], vec![0.0; fc.bias_len()]);
    fc.init(&mut rng, &mut weight, &mut bias)
        .expect("lengths from the layer");
    let (mut gi, mut gw, mut gb) = (
        vec![0.0; input.len()],
        vec![0.0; weight.len()],
        vec![0.0; bias.len()],
    );
    fc.backward(
        &R,
        batch,
        &input,
        &weight,
        &r,
        Some(&mut gi),
        &mut gw,
        &mut gb,
    )
    .expect("valid test shape");
    let mut tensors = vec![
        Tensor::new("input", vec![batch, 7], input, gi),
        Tensor::new("weight", vec![5, 7], weight, gw),
        Tensor::new("bias", vec![5], bias, gb),
    ];
    let mut out = vec![0.0; r.len()];
    let report = check.run(&mut tensors, |t| {
        fc.forward(
            &R,
            batch,
            &t[0].values,
            &t[1].values,
            &t[2].values,
            &mut out,
        )
        .expect("valid test shape");
        dot(&out, &r)
    });
    rows_of("Linear(7, 5)", &report)
}

/// `Linear(7, 5)` with its ReLU fused ([`Linear::forward_relu`]), backward through the ReLU
/// (from the fused output) then the layer, as LeNet-5's fc1 and fc2. Pre-activations of both
/// signs, none within 0.01 of the kink (checked), so a central difference never straddles it.
pub fn check_linear_relu(check: &GradCheck) -> Vec<GradcheckRow> {
    let mut rng = Rng::new(7);
    let (fc, relu) = (Linear::new("fc", 7, 5), ReLU::new("relu"));
    let batch = 4;
    let r = random(&mut rng, batch * 5, -1.0, 1.0);
    let input = random(&mut rng, batch * 7, -1.0, 1.0);
    let (mut weight, mut bias) = (vec![0.0; fc.weight_len()], vec![0.0; fc.bias_len()]);
    fc.init(&mut rng, &mut weight, &mut bias)
        .expect("lengths from the layer");
    let mut z = vec![0.0; r.len()];
    fc.forward(&R, batch, &input, &weight, &bias, &mut z)
        .expect("valid test shape");
    assert!(
        z.iter().all(|v| v.abs() > 0.01)
            && z.iter().any(|&v| v < 0.0)
            && z.iter().any(|&v| v > 0.0),
        "linear+relu gradcheck: pre-activations must have both signs and avoid the kink: {z:?}"
    );
    let mut out = vec![0.0; r.len()];
    fc.forward_relu(&R, batch, &input, &weight, &bias, &mut out)
        .expect("valid test shape");
    let mut grad_z = vec![0.0; r.len()];
    relu.backward(&R, &out, &r, &mut grad_z)
        .expect("same lengths");
    let (mut gi, mut gw, mut gb) = (
        vec![0.0; input.len()],
        vec![0.0; weight.len()],
        vec![0.0; bias.len()],
    );
    fc.backward(
        &R,
        batch,
        &input,
        &weight,
        &grad_z,
        Some(&mut gi),
        &mut gw,
        &mut gb,
    )
    .expect("valid test shape");
    let mut tensors = vec![
        Tensor::new("input", vec![batch, 7], input, gi),
        Tensor::new("weight", vec![5, 7], weight, gw),
        Tensor::new("bias", vec![5], bias, gb),
    ];
    let report = check.run(&mut tensors, |t| {
        fc.forward_relu(
            &R,
            batch,
            &t[0].values,
            &t[1].values,
            &t[2].values,
            &mut out,
        )
        .expect("valid test shape");
        dot(&out, &r)
    });
    rows_of("Linear(7, 5) + ReLU (fused)", &report)
}

/// Max pooling with overlapping windows (kernel 3, stride 2) and a tail the windows skip.
pub fn check_maxpool2d(check: &GradCheck) -> Vec<GradcheckRow> {
    let mut rng = Rng::new(3);
    let pool = MaxPool2d::new("maxpool", (3, 3)).with_stride(2, 2);
    let (batch, dims) = (2, Dims::new(3, 8, 7));
    let out_dims = pool.output_dims(dims).expect("valid test shape");
    let r = random(&mut rng, batch * out_dims.numel(), -1.0, 1.0);
    let input = random(&mut rng, batch * dims.numel(), -1.0, 1.0);
    let mut out = vec![0.0; r.len()];
    let mut argmax = vec![0u32; r.len()];
    pool.forward(&R, batch, dims, &input, &mut out, &mut argmax)
        .expect("valid test shape");
    let mut gi = vec![0.0; input.len()];
    pool.backward(&R, batch, dims, &r, &argmax, &mut gi)
        .expect("valid test shape");
    let mut tensors = vec![Tensor::new("input", vec![batch, 3, 8, 7], input, gi)];
    let report = check.run(&mut tensors, |t| {
        pool.forward(&R, batch, dims, &t[0].values, &mut out, &mut argmax)
            .expect("valid test shape");
        dot(&out, &r)
    });
    rows_of("MaxPool2d(3, stride 2)", &report)
}

pub fn check_avgpool2d(check: &GradCheck) -> Vec<GradcheckRow> {
    let mut rng = Rng::new(4);
    let pool = AvgPool2d::new("avgpool", (2, 3)).with_stride(2, 2);
    let (batch, dims) = (2, Dims::new(3, 7, 8));
    let out_dims = pool.output_dims(dims).expect("valid test shape");
    let r = random(&mut rng, batch * out_dims.numel(), -1.0, 1.0);
    let input = random(&mut rng, batch * dims.numel(), -1.0, 1.0);
    let mut gi = vec![0.0; input.len()];
    pool.backward(&R, batch, dims, &r, &mut gi)
        .expect("valid test shape");
    let mut tensors = vec![Tensor::new("input", vec![batch, 3, 7, 8], input, gi)];
    let mut out = vec![0.0; r.len()];
    let report = check.run(&mut tensors, |t| {
        pool.forward(&R, batch, dims, &t[0].values, &mut out)
            .expect("valid test shape");
        dot(&out, &r)
    });
    rows_of("AvgPool2d((2, 3), stride 2)", &report)
}

pub fn check_relu(check: &GradCheck) -> Vec<GradcheckRow> {
    let mut rng = Rng::new(5);
    let relu = ReLU::new("relu");
    let n = 60;
    let r = random(&mut rng, n, -1.0, 1.0);
    let input = away_from_zero(random(&mut rng, n, -1.0, 1.0));
    let mut out = vec![0.0; n];
    relu.forward(&R, &input, &mut out).expect("same lengths");
    let mut gi = vec![0.0; n];
    relu.backward(&R, &out, &r, &mut gi).expect("same lengths");
    let mut tensors = vec![Tensor::new("input", vec![n], input, gi)];
    let report = check.run(&mut tensors, |t| {
        relu.forward(&R, &t[0].values, &mut out)
            .expect("same lengths");
        dot(&out, &r)
    });
    rows_of("ReLU", &report)
}

pub fn check_flatten(check: &GradCheck) -> Vec<GradcheckRow> {
    let mut rng = Rng::new(6);
    let flatten = Flatten::new("flatten");
    let (batch, dims) = (2, Dims::new(3, 2, 4));
    let n = batch * dims.numel();
    let r = random(&mut rng, n, -1.0, 1.0);
    let input = random(&mut rng, n, -1.0, 1.0);
    let mut gi = vec![0.0; n];
    flatten
        .backward(batch, dims, &r, &mut gi)
        .expect("same lengths");
    let mut tensors = vec![Tensor::new("input", vec![batch, 3, 2, 4], input, gi)];
    let mut out = vec![0.0; n];
    let report = check.run(&mut tensors, |t| {
        flatten
            .forward(batch, dims, &t[0].values, &mut out)
            .expect("same lengths");
        dot(&out, &r)
    });
    rows_of("Flatten", &report)
}

/// `CrossEntropyLoss()` (PyTorch's defaults) with respect to the logits.
pub fn check_cross_entropy(check: &GradCheck) -> Vec<GradcheckRow> {
    let mut rng = Rng::new(7);
    let (rows, classes) = (4, 5);
    let logits = random(&mut rng, rows * classes, -3.0, 3.0);
    let targets = [3i64, 0, 4, 1];
    let criterion = CrossEntropyLoss::<f64>::default();
    let mut grad = vec![0.0; logits.len()];
    criterion
        .forward_backward(&R, &logits, classes, &targets, &mut grad)
        .expect("valid targets");
    let mut tensors = vec![Tensor::new("logits", vec![rows, classes], logits, grad)];
    let report = check.run(&mut tensors, |t| {
        criterion
            .forward(&R, &t[0].values, classes, &targets)
            .expect("valid targets")
    });
    rows_of("CrossEntropyLoss()", &report)
}

/// A fixed small batch for the LeNet-5 checks: random "pixels" in [0, 1) and labels.
fn lenet_batch(batch: usize) -> (Vec<f64>, Vec<i64>) {
    let mut rng = Rng::new(8);
    let input = random(&mut rng, batch * IMAGE_LEN, 0.0, 1.0);
    let labels = (0..batch)
        .map(|_| rng.below(CLASSES as u64) as i64)
        .collect();
    (input, labels)
}

/// Mean cross-entropy of LeNet-5 on `input` and, with `grads`, the gradients of every
/// parameter and of the input (in [`PARAMS`] order, then the input).
fn lenet_loss<T: simdnet_kernels::Real, B: Backend<T>>(
    backend: &B,
    model: &LeNet5<T>,
    ws: &mut lenet::Workspace<T>,
    input: &[T],
    labels: &[i64],
    grads: bool,
) -> f64 {
    let batch = labels.len();
    ws.input_mut(batch).copy_from_slice(input);
    model
        .forward(backend, ws, batch)
        .expect("LeNet-5's own shapes");
    let criterion = CrossEntropyLoss::<T>::default();
    let (logits, grad) = ws.logits_and_grad(batch);
    let loss = if grads {
        let loss = criterion
            .forward_backward_scaled(
                backend,
                logits,
                CLASSES,
                Targets::Indices(labels),
                T::ONE,
                grad,
            )
            .expect("valid labels");
        model
            .backward(backend, ws, batch)
            .expect("LeNet-5's own shapes");
        loss
    } else {
        criterion
            .forward(backend, logits, CLASSES, labels)
            .expect("valid labels")
    };
    loss.to_f64()
}

/// The whole LeNet-5 in f64: every parameter (large tensors at a sample of coordinates that
/// always includes the first, the last and the borders) and the input.
pub fn check_lenet5(check: &GradCheck) -> Vec<GradcheckRow> {
    let batch = 2;
    let model = LeNet5::<f64>::init(9);
    let (input, labels) = lenet_batch(batch);
    let mut ws = model.workspace(&R, batch).expect("LeNet-5's own shapes");
    ws.keep_input_grad();
    lenet_loss(&R, &model, &mut ws, &input, &labels, true);
    let mut tensors: Vec<Tensor> = PARAMS
        .iter()
        .zip(
            lenet::split(model.params())
                .into_iter()
                .zip(lenet::split(ws.grads())),
        )
        .map(|(&(name, shape), (values, grad))| {
            Tensor::new(name, shape.to_vec(), values.to_vec(), grad.to_vec())
        })
        .collect();
    let grad_input = ws.grad_input(batch).expect("kept").to_vec();
    tensors.push(Tensor::new(
        "input",
        vec![batch, 1, 28, 28],
        input,
        grad_input,
    ));
    let mut probe = model.clone();
    let report = check.run(&mut tensors, |t| {
        let mut offset = 0;
        for tensor in &t[..PARAMS.len()] {
            probe.params_mut()[offset..offset + tensor.values.len()]
                .copy_from_slice(&tensor.values);
            offset += tensor.values.len();
        }
        lenet_loss(&R, &probe, &mut ws, &t[PARAMS.len()].values, &labels, false)
    });
    rows_of("LeNet-5 + CrossEntropyLoss", &report)
}

/// LeNet-5's gradients in f32 on `kernels` against f64 on the references, from the same
/// (f32-representable) weights and inputs.
pub fn check_lenet5_f32(kernels: &Kernels) -> Vec<GradcheckRow> {
    let batch = 2;
    let model32 = LeNet5::new(10);
    let model64: LeNet5<f64> = model32.cast();
    let (input64, labels) = lenet_batch(batch);
    let input32: Vec<f32> = input64.iter().map(|&v| v as f32).collect();
    let input64: Vec<f64> = input32.iter().map(|&v| f64::from(v)).collect();
    let mut ws32 = model32
        .workspace(kernels, batch)
        .expect("LeNet-5's own shapes");
    let mut ws64 = model64.workspace(&R, batch).expect("LeNet-5's own shapes");
    let loss32 = lenet_loss(kernels, &model32, &mut ws32, &input32, &labels, true);
    let loss64 = lenet_loss(&R, &model64, &mut ws64, &input64, &labels, true);
    let layer = format!("LeNet-5 on {} vs f64", kernels.isa());
    let row = |tensor: &str, g32: &[f32], g64: &[f64]| {
        let scale = g64.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let max_abs_err = g32.iter().zip(g64).fold(0.0f64, |m, (&a, &b)| {
            let e = (f64::from(a) - b).abs();
            if e.is_nan() || m.is_nan() {
                f64::NAN
            } else {
                m.max(e)
            }
        });
        let max_rel_err = max_abs_err / scale.max(f64::MIN_POSITIVE);
        GradcheckRow {
            layer: layer.clone(),
            tensor: tensor.to_string(),
            max_abs_err,
            max_rel_err,
            passed: max_abs_err <= F32_BOUND * scale,
            precision: "f32",
        }
    };
    let mut rows = vec![row("loss", &[loss32 as f32], &[loss64])];
    for (&(name, _), (g32, g64)) in PARAMS.iter().zip(
        lenet::split(ws32.grads())
            .into_iter()
            .zip(lenet::split(ws64.grads())),
    ) {
        rows.push(row(name, g32, g64));
    }
    rows
}

/// The settings of the LeNet-5 check: PyTorch's tolerances, a smaller sample of each large
/// tensor (each coordinate costs two forward passes).
pub fn lenet_check() -> GradCheck {
    GradCheck {
        max_coords: 100,
        ..GradCheck::default()
    }
}

/// Every check: each layer, the loss and LeNet-5 in f64, then LeNet-5 in f32 on `kernels`.
pub fn run_all(kernels: &Kernels) -> Vec<GradcheckRow> {
    let mut rows = Vec::new();
    run_each(kernels, |group| rows.extend_from_slice(group));
    rows
}

/// [`run_all`], handing each layer's rows to `done` as soon as that layer is checked (so a
/// program can print them while the slower checks run).
pub fn run_each(kernels: &Kernels, mut done: impl FnMut(&[GradcheckRow])) {
    let check = GradCheck::default();
    let layers: [&dyn Fn() -> Vec<GradcheckRow>; 10] = [
        &|| check_conv2d(&check),
        &|| check_linear(&check),
        &|| check_linear_relu(&check),
        &|| check_maxpool2d(&check),
        &|| check_avgpool2d(&check),
        &|| check_relu(&check),
        &|| check_flatten(&check),
        &|| check_cross_entropy(&check),
        &|| check_lenet5(&lenet_check()),
        &|| check_lenet5_f32(kernels),
    ];
    for layer in layers {
        done(&layer());
    }
}

/// Width of the layer column in [`table_header`] and [`table_row`] (the longest layer name).
pub const LAYER_WIDTH: usize = 28;

/// The table's header line.
pub fn table_header() -> String {
    format!(
        "{:<LAYER_WIDTH$}  {:<12}  {:<9}  {:>11}  {:>11}  result",
        "layer", "tensor", "precision", "max abs err", "max rel err"
    )
}

/// One row of the table, under [`table_header`]: under 90 columns, a layer name longer than
/// the column on a line of its own above the numbers.
pub fn table_row(r: &GradcheckRow) -> String {
    let (above, layer) = if r.layer.chars().count() > LAYER_WIDTH {
        (format!("{}\n", r.layer), "")
    } else {
        (String::new(), r.layer.as_str())
    };
    format!(
        "{above}{:<LAYER_WIDTH$}  {:<12}  {:<9}  {:>11.3e}  {:>11.3e}  {}",
        layer,
        r.tensor,
        r.precision,
        r.max_abs_err,
        r.max_rel_err,
        if r.passed { "pass" } else { "FAIL" }
    )
}

/// The table's closing lines: the count and the tolerances.
pub fn table_footer(rows: &[GradcheckRow]) -> String {
    let failed = rows.iter().filter(|r| !r.passed).count();
    format!(
        "{} of {} checks passed\n\
         f64: PyTorch's gradcheck tolerances (eps 1e-6, atol 1e-5, rtol 1e-3)\n\
         f32: max |g32 - g64| <= {F32_BOUND:e} * max |g64|",
        rows.len() - failed,
        rows.len()
    )
}

/// The table: layer, tensor, precision, max abs error, max rel error, pass/FAIL.
pub fn print_table(rows: &[GradcheckRow], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{}", table_header())?;
    for r in rows {
        writeln!(out, "{}", table_row(r))?;
    }
    writeln!(out, "{}", table_footer(rows))
}
