//! One LeNet-5 training step at batch 64 (forward, CrossEntropyLoss, backward, SGD with
//! momentum) and the evaluation of a batch of 64 (forward and loss), on every ISA this CPU has,
//! side by side. Throughput is declared in images, so criterion's "elem/s" reads as
//! samples/s of one thread (compare PyTorch's samples/s at `--threads 1` from
//! `../shared/anchors/pytorch_lenet.py`).
//!
//! The images are the first 64 of the embedded Fashion-MNIST training subset.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use simdnet::kernels::Kernels;
use simdnet::lenet::{LeNet5, Workspace, CLASSES, PARAM_LENS};
use simdnet::loss::CrossEntropyLoss;
use simdnet::optim::{Sgd, SgdOptions};
use std::hint::black_box;

const BATCH: usize = 64;

struct Step {
    model: LeNet5,
    ws: Workspace<f32>,
    sgd: Sgd,
    criterion: CrossEntropyLoss,
    targets: Vec<i64>,
}

fn setup(kernels: &Kernels) -> Step {
    let (train, _) = simdnet::data::embedded::splits().expect("embedded subset");
    let model = LeNet5::new(0);
    let mut ws = model.workspace(kernels, BATCH).expect("LeNet-5's shapes");
    ws.load_images((0..BATCH).map(|i| train.image(i)))
        .expect("28x28 images");
    let targets = (0..BATCH).map(|i| i64::from(train.labels[i])).collect();
    let options = SgdOptions {
        momentum: 0.9,
        ..SgdOptions::new(0.01)
    };
    Step {
        model,
        ws,
        sgd: Sgd::new(&PARAM_LENS, options).expect("valid options"),
        criterion: CrossEntropyLoss::default(),
        targets,
    }
}

impl Step {
    fn train(&mut self, kernels: &Kernels) -> f32 {
        self.model.forward(kernels, &mut self.ws, BATCH).unwrap();
        let (logits, grad) = self.ws.logits_and_grad(BATCH);
        let loss = self
            .criterion
            .forward_backward(kernels, logits, CLASSES, &self.targets, grad)
            .unwrap();
        self.model.backward(kernels, &mut self.ws, BATCH).unwrap();
        self.sgd
            .step(kernels, self.model.params_mut(), self.ws.grads())
            .unwrap();
        loss
    }

    fn eval(&mut self, kernels: &Kernels) -> f32 {
        self.model.forward(kernels, &mut self.ws, BATCH).unwrap();
        self.criterion
            .forward(kernels, self.ws.logits(BATCH), CLASSES, &self.targets)
            .unwrap()
    }
}

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("lenet5_train_step_batch64");
    group.throughput(Throughput::Elements(BATCH as u64));
    for kernels in Kernels::all() {
        let mut step = setup(&kernels);
        group.bench_function(BenchmarkId::from_parameter(kernels.isa()), |b| {
            b.iter(|| black_box(step.train(&kernels)))
        });
    }
    group.finish();
}

fn eval_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("lenet5_eval_batch64");
    group.throughput(Throughput::Elements(BATCH as u64));
    for kernels in Kernels::all() {
        let mut step = setup(&kernels);
        group.bench_function(BenchmarkId::from_parameter(kernels.isa()), |b| {
            b.iter(|| black_box(step.eval(&kernels)))
        });
    }
    group.finish();
}

criterion_group!(benches, train_step, eval_batch);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
