//! Two whole LeNet-5 training steps against PyTorch (tests/fixtures/generate.py wrote
//! lenet_two_steps.safetensors): from the same initial weights and batch of 8 real
//! Fashion-MNIST images, CrossEntropyLoss (mean) and SGD(lr=0.01, momentum=0.9), the logits,
//! the loss, every gradient, and the weights and momentum buffers after each step, on every ISA
//! this CPU has.
//!
//! Tolerances: both sides compute in f32 but sum in different orders (PyTorch's oneDNN
//! convolution and MKL GEMM against im2col and our GEMM), so each value may differ by a few
//! ulp of the largest term of its sum. Per tensor we require
//! `max |ours - torch| <= 1e-5 * max |torch| + 1e-7`. Observed (printed by the test): at most
//! 1.8e-6 relative on the scalar path and 1.4e-6 on AVX2, over both steps and every tensor; an
//! actual error (a wrong index, a missed term, a wrong scale) shifts a gradient by a whole term,
//! i.e. by 1e-2 relative or more.

use std::path::Path;

use simdnet::checkpoint::{self, Checkpoint};
use simdnet::kernels::Kernels;
use simdnet::lenet::{self, LeNet5, CLASSES, IMAGE_LEN, PARAMS};
use simdnet::loss::CrossEntropyLoss;
use simdnet::optim::{Sgd, SgdOptions};

const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-7;

fn fixture() -> Checkpoint {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lenet_two_steps.safetensors");
    checkpoint::read(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn tensor<'a>(f: &'a Checkpoint, name: &str) -> &'a [f32] {
    &f.tensor(name)
        .unwrap_or_else(|| panic!("fixture lacks {name}"))
        .data
}

/// Asserts `ours` matches `torch` within the stated tolerance; returns the normwise error.
fn assert_close(what: &str, ours: &[f32], torch: &[f32]) -> f64 {
    assert_eq!(ours.len(), torch.len(), "{what}: length");
    let scale = torch.iter().fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
    let err = ours.iter().zip(torch).fold(0.0f64, |m, (&a, &b)| {
        m.max((f64::from(a) - f64::from(b)).abs())
    });
    assert!(
        err <= RTOL * scale + ATOL,
        "{what}: max |ours - torch| = {err:e}, scale {scale:e}"
    );
    err / scale.max(f64::MIN_POSITIVE)
}

#[test]
fn two_training_steps_match_pytorch_on_every_isa() {
    let f = fixture();
    let pixels: Vec<u8> = tensor(&f, "pixels").iter().map(|&p| p as u8).collect();
    let labels: Vec<i64> = tensor(&f, "labels").iter().map(|&l| l as i64).collect();
    let batch = labels.len();
    assert_eq!(pixels.len(), batch * IMAGE_LEN);
    let init: Vec<f32> = PARAMS
        .iter()
        .flat_map(|(name, _)| tensor(&f, &format!("init.{name}")).to_vec())
        .collect();

    for kernels in Kernels::all() {
        let isa = kernels.isa();
        let mut model = LeNet5::from_params(init.clone()).unwrap();
        let mut ws = model.workspace(&kernels, batch).unwrap();
        let criterion = CrossEntropyLoss::default();
        let options = SgdOptions {
            momentum: 0.9,
            ..SgdOptions::new(0.01)
        };
        let mut sgd = Sgd::new(&lenet::PARAM_LENS, options).unwrap();
        let mut worst = 0.0f64;
        for step in 1..=2 {
            assert_eq!(ws.load_images(pixels.chunks(IMAGE_LEN)).unwrap(), batch);
            model.forward(&kernels, &mut ws, batch).unwrap();
            worst = worst.max(assert_close(
                &format!("{isa} step {step} logits"),
                ws.logits(batch),
                tensor(&f, &format!("step{step}.logits")),
            ));
            let (logits, grad) = ws.logits_and_grad(batch);
            let loss = criterion
                .forward_backward(&kernels, logits, CLASSES, &labels, grad)
                .unwrap();
            worst = worst.max(assert_close(
                &format!("{isa} step {step} loss"),
                &[loss],
                tensor(&f, &format!("step{step}.loss")),
            ));
            model.backward(&kernels, &mut ws, batch).unwrap();
            for (i, (name, _)) in PARAMS.iter().enumerate() {
                let ours = lenet::split(ws.grads())[i];
                worst = worst.max(assert_close(
                    &format!("{isa} step {step} grad {name}"),
                    ours,
                    tensor(&f, &format!("step{step}.grad.{name}")),
                ));
            }
            sgd.step(&kernels, model.params_mut(), ws.grads()).unwrap();
            for (i, (name, _)) in PARAMS.iter().enumerate() {
                let ours = lenet::split(model.params())[i];
                worst = worst.max(assert_close(
                    &format!("{isa} step {step} param {name}"),
                    ours,
                    tensor(&f, &format!("step{step}.param.{name}")),
                ));
                let buf = sgd
                    .momentum_buffer(i)
                    .expect("momentum buffer after a step");
                worst = worst.max(assert_close(
                    &format!("{isa} step {step} momentum {name}"),
                    buf,
                    tensor(&f, &format!("step{step}.momentum.{name}")),
                ));
            }
        }
        eprintln!("{isa}: worst normwise relative difference from PyTorch {worst:e}");
    }
}

#[test]
fn the_first_step_copies_the_gradient_into_the_buffer() {
    let f = fixture();
    for (name, _) in PARAMS {
        assert_eq!(
            tensor(&f, &format!("step1.momentum.{name}")),
            tensor(&f, &format!("step1.grad.{name}")),
            "PyTorch's first step: buffer = gradient ({name})"
        );
    }
}
