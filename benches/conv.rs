//! conv2d benchmarks: LeNet-5's two convolutions at batch 64, forward and forward+backward, on
//! each ISA side by side (the ISA picks the GEMM; im2col/col2im are the same on every table).
//!
//! - conv1: 1 -> 6 channels, 28x28, 5x5, padding 2, with bias; backward without the input
//!   gradient (a first layer's input is the image).
//! - conv2: 6 -> 16 channels, 14x14, 5x5, with bias; backward with every gradient.
//!
//! Throughput is `Elements(FLOPs)` (2 per multiply-add of the GEMMs), so criterion's "Gelem/s"
//! reads as GFLOP/s. PyTorch's figures for the same calls come from
//! `../shared/anchors/pytorch_kernels.py --threads 1`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use simdnet_kernels::conv::Conv2dShape;
use simdnet_kernels::Kernels;
use std::hint::black_box;

struct Case {
    name: &'static str,
    shape: Conv2dShape,
    grad_input: bool,
}

fn cases() -> [Case; 2] {
    [
        Case {
            name: "conv1",
            shape: Conv2dShape::new(64, 1, 6, (28, 28), (5, 5)).with_padding(2, 2),
            grad_input: false,
        },
        Case {
            name: "conv2",
            shape: Conv2dShape::new(64, 6, 16, (14, 14), (5, 5)),
            grad_input: true,
        },
    ]
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    for case in cases() {
        let s = case.shape;
        let x = values(s.input_len(), 1);
        let w = values(s.weight_len(), 2);
        let b = values(s.out_channels, 3);
        let dy = values(s.output_len(), 4);
        let mut y = vec![0.0; s.output_len()];
        let mut gx = vec![0.0; s.input_len()];
        let mut gw = vec![0.0; s.weight_len()];
        let mut gb = vec![0.0; s.out_channels];
        let mut ws = vec![0.0; s.workspace_len()];
        // One GEMM of Cout x K x (batch * out_h * out_w) per pass.
        let pass_flops = 2 * s.weight_len() * s.batch * s.out_h() * s.out_w();
        let passes = if case.grad_input { 3 } else { 2 };

        let mut group = c.benchmark_group(format!("conv2d/{} fwd", case.name));
        group.throughput(Throughput::Elements(pass_flops as u64));
        for k in Kernels::all() {
            group.bench_function(BenchmarkId::from_parameter(k.isa()), |bench| {
                bench.iter(|| {
                    k.conv2d_forward(&s, black_box(&x), &w, Some(&b), &mut y, &mut ws);
                    black_box(&y);
                })
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("conv2d/{} fwd+bwd", case.name));
        group.throughput(Throughput::Elements((passes * pass_flops) as u64));
        for k in Kernels::all() {
            group.bench_function(BenchmarkId::from_parameter(k.isa()), |bench| {
                bench.iter(|| {
                    k.conv2d_forward(&s, black_box(&x), &w, Some(&b), &mut y, &mut ws);
                    k.conv2d_backward(
                        &s,
                        &x,
                        &w,
                        black_box(&dy),
                        case.grad_input.then_some(&mut gx[..]),
                        &mut gw,
                        Some(&mut gb),
                        &mut ws,
                    );
                    black_box((&y, &gx, &gw, &gb));
                })
            });
        }
        group.finish();
    }
}

criterion_group!(conv_benches, benches);
criterion_main!(conv_benches);
