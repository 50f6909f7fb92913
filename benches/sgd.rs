//! SGD momentum step (lr 0.01, momentum 0.9), a step after the first, at LeNet-5's 61,706
//! parameters (cache-resident) and at 10,000,000 (from memory), every ISA side by side.
//! Throughput counts the 20 bytes per parameter the step moves (read p, g, buf; write p, buf).
//!
//! cargo bench --bench sgd [-- --warm-up-time 1 --measurement-time 2]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use simdnet_kernels::sgd::SgdOptions;
use simdnet_kernels::Kernels;
use std::hint::black_box;

fn sgd(c: &mut Criterion) {
    let options = SgdOptions {
        momentum: 0.9,
        ..SgdOptions::new(0.01)
    };
    for n in [61_706usize, 10_000_000] {
        let mut group = c.benchmark_group(format!("sgd_momentum_step/{n}"));
        group.throughput(Throughput::Bytes(20 * n as u64));
        if n > 1_000_000 {
            group.sample_size(20);
        }
        for k in Kernels::all() {
            let mut param: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) * 0.01).collect();
            let grad: Vec<f32> = (0..n).map(|i| ((i % 89) as f32 - 44.0) * 0.001).collect();
            let mut buffer = vec![0.0f32; n];
            // The first step only copies the gradient; time the ones after it.
            k.sgd_step(&options, &mut param, &grad, Some(&mut buffer), true);
            group.bench_function(BenchmarkId::from_parameter(k.isa()), |b| {
                b.iter(|| {
                    k.sgd_step(
                        &options,
                        black_box(&mut param),
                        black_box(&grad),
                        Some(&mut buffer),
                        false,
                    )
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, sgd);
criterion_main!(benches);
