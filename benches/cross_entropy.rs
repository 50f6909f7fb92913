//! Fused softmax-cross-entropy forward+backward, mean reduction, class-index targets, at the
//! reference workloads of `pytorch_kernels.py` ([64, 10], [256, 1000], [32, 32000]), every ISA
//! side by side; the in-place variant too.
//!
//! cargo bench --bench cross_entropy [-- --warm-up-time 1 --measurement-time 2]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use simdnet_kernels::cross_entropy::{CrossEntropyOptions, GradOutput, Targets};
use simdnet_kernels::Kernels;
use std::hint::black_box;

/// Roughly standard-normal logits (sum of uniforms) and uniform targets, deterministic.
fn workload(rows: usize, classes: usize) -> (Vec<f32>, Vec<i64>) {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let logits = (0..rows * classes)
        .map(|_| {
            (0..4)
                .map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32)
                .sum::<f32>()
                * 1.7
                - 3.4
        })
        .collect();
    let targets = (0..rows)
        .map(|_| (next() % classes as u64) as i64)
        .collect();
    (logits, targets)
}

fn cross_entropy(c: &mut Criterion) {
    let options = CrossEntropyOptions::default();
    for (rows, classes) in [(64usize, 10usize), (256, 1000), (32, 32000)] {
        let (logits, targets) = workload(rows, classes);
        let mut group = c.benchmark_group(format!("cross_entropy_fwd_bwd/{rows}x{classes}"));
        group.throughput(Throughput::Elements((rows * classes) as u64));
        for k in Kernels::all() {
            let mut grad = vec![0.0f32; logits.len()];
            group.bench_function(BenchmarkId::new("separate", k.isa()), |b| {
                b.iter(|| {
                    k.cross_entropy_forward_backward(
                        black_box(&logits),
                        classes,
                        Targets::Indices(&targets),
                        &options,
                        GradOutput::Scalar(1.0),
                        &mut grad,
                        None,
                    )
                    .unwrap()
                })
            });
            // In place: each call's logits are the previous call's gradient (bounded values,
            // the same work).
            let mut x = logits.clone();
            group.bench_function(BenchmarkId::new("in_place", k.isa()), |b| {
                b.iter(|| {
                    k.cross_entropy_forward_backward_in_place(
                        black_box(&mut x),
                        classes,
                        Targets::Indices(&targets),
                        &options,
                        GradOutput::Scalar(1.0),
                        None,
                    )
                    .unwrap()
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, cross_entropy);
criterion_main!(benches);
