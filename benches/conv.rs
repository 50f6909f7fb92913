//! conv2d benchmarks: LeNet-5's two convolutions at batch 64, forward and forward+backward, on
//! each ISA side by side. conv1 takes the direct path (the ISA's direct kernels); conv2 takes
//! the channel path on the avx512 table (16 output channels per vector, its 10-wide rows in
//! whole-row blocks) and im2col and GEMM on the others (the ISA picks the GEMM; im2col/col2im
//! are the same on every table).
//!
//! - conv1: 1 -> 6 channels, 28x28, 5x5, padding 2, with bias; backward without the input
//!   gradient (a first layer's input is the image).
//! - conv2: 6 -> 16 channels, 14x14, 5x5, with bias; backward with every gradient.
//!
//! Throughput is `Elements(FLOPs)` (2 per multiply-add of the GEMMs, which the direct path
//! does as well), so criterion's "Gelem/s" reads as GFLOP/s. PyTorch's figures for the same
//! calls come from `../shared/anchors/pytorch_kernels.py --threads 1`.
//!
//! `conv2d/<layer> block fwd` times LeNet-5's whole block, conv + bias + ReLU + 2x2 max pool:
//! `fused/<isa>` is `conv2d_relu_maxpool2d_forward` (one pass per tile of images), `chain/<isa>`
//! the unfused calls it is bit-identical to (`conv2d_forward`, `relu_forward_in_place`,
//! `maxpool2d_forward`), `relu_pool/<isa>` the batch's convolution then the fused ReLU + max
//! pool (`maxpool2d_relu_forward`); throughput is the convolution's FLOPs.
//!
//! After criterion, a summary table gives the minimum and the median milliseconds per call over
//! short timed runs (the minimum is the steadier figure on a shared, loaded machine).
//! `CONV_SUMMARY_ONLY=1 cargo bench --bench conv` prints only that table.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use simdnet_kernels::conv::{Conv2dShape, PooledConv2dShape};
use simdnet_kernels::Kernels;
use std::hint::black_box;
use std::time::{Duration, Instant};

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

/// One case's buffers, and the two calls the benchmarks time.
struct Buffers {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    dy: Vec<f32>,
    y: Vec<f32>,
    gx: Vec<f32>,
    gw: Vec<f32>,
    gb: Vec<f32>,
    ws: Vec<f32>,
}

impl Buffers {
    fn new(s: &Conv2dShape) -> Self {
        Buffers {
            x: values(s.input_len(), 1),
            w: values(s.weight_len(), 2),
            b: values(s.out_channels, 3),
            dy: values(s.output_len(), 4),
            y: vec![0.0; s.output_len()],
            gx: vec![0.0; s.input_len()],
            gw: vec![0.0; s.weight_len()],
            gb: vec![0.0; s.out_channels],
            ws: vec![0.0; s.workspace_len()],
        }
    }

    fn forward(&mut self, k: &Kernels, s: &Conv2dShape) {
        k.conv2d_forward(
            s,
            black_box(&self.x),
            &self.w,
            Some(&self.b),
            &mut self.y,
            &mut self.ws,
        );
        black_box(&self.y);
    }

    fn forward_backward(&mut self, k: &Kernels, case: &Case) {
        let s = &case.shape;
        self.forward(k, s);
        k.conv2d_backward(
            s,
            &self.x,
            &self.w,
            black_box(&self.dy),
            case.grad_input.then_some(&mut self.gx[..]),
            &mut self.gw,
            Some(&mut self.gb),
            &mut self.ws,
        );
        black_box((&self.gx, &self.gw, &self.gb));
    }
}

/// FLOPs of one GEMM pass (Cout x K x batch * out_h * out_w) and the passes fwd+bwd makes.
fn flops(case: &Case) -> (u64, u64) {
    let s = &case.shape;
    let pass = 2 * s.weight_len() * s.batch * s.out_h() * s.out_w();
    (pass as u64, if case.grad_input { 3 } else { 2 })
}

/// Buffers of one block (conv + bias + ReLU + max pool), fused and as the unfused chain.
struct Block {
    shape: PooledConv2dShape,
    conv: Buffers,
    pooled: Vec<f32>,
    argmax: Vec<u32>,
    ws: Vec<f32>,
}

impl Block {
    fn new(s: &Conv2dShape) -> Self {
        let shape = PooledConv2dShape::new(*s, (2, 2), (2, 2));
        Block {
            shape,
            conv: Buffers::new(s),
            pooled: vec![0.0; shape.pool.output_len()],
            argmax: vec![0; shape.pool.output_len()],
            ws: vec![0.0; shape.workspace_len()],
        }
    }

    fn fused(&mut self, k: &Kernels) {
        k.conv2d_relu_maxpool2d_forward(
            &self.shape,
            black_box(&self.conv.x),
            &self.conv.w,
            Some(&self.conv.b),
            &mut self.pooled,
            &mut self.argmax,
            &mut self.ws,
        );
        black_box((&self.pooled, &self.argmax));
    }

    fn chain(&mut self, k: &Kernels) {
        self.conv.forward(k, &self.shape.conv);
        k.relu_forward_in_place(&mut self.conv.y);
        k.maxpool2d_forward(
            &self.shape.pool,
            &self.conv.y,
            &mut self.pooled,
            &mut self.argmax,
        );
        black_box((&self.pooled, &self.argmax));
    }

    /// The whole batch's convolution, then the fused ReLU + max pool.
    fn relu_pool(&mut self, k: &Kernels) {
        self.conv.forward(k, &self.shape.conv);
        k.maxpool2d_relu_forward(
            &self.shape.pool,
            &self.conv.y,
            &mut self.pooled,
            &mut self.argmax,
        );
        black_box((&self.pooled, &self.argmax));
    }
}

fn benches(c: &mut Criterion) {
    for case in cases() {
        let s = case.shape;
        let mut bufs = Buffers::new(&s);
        let (pass_flops, passes) = flops(&case);

        let mut group = c.benchmark_group(format!("conv2d/{} fwd", case.name));
        group.throughput(Throughput::Elements(pass_flops));
        for k in Kernels::all() {
            group.bench_function(BenchmarkId::from_parameter(k.isa()), |bench| {
                bench.iter(|| bufs.forward(&k, &s))
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("conv2d/{} fwd+bwd", case.name));
        group.throughput(Throughput::Elements(passes * pass_flops));
        for k in Kernels::all() {
            group.bench_function(BenchmarkId::from_parameter(k.isa()), |bench| {
                bench.iter(|| bufs.forward_backward(&k, &case))
            });
        }
        group.finish();

        let mut block = Block::new(&s);
        let mut group = c.benchmark_group(format!("conv2d/{} block fwd", case.name));
        group.throughput(Throughput::Elements(pass_flops));
        for k in Kernels::all() {
            group.bench_function(BenchmarkId::new("fused", k.isa()), |bench| {
                bench.iter(|| block.fused(&k))
            });
            group.bench_function(BenchmarkId::new("chain", k.isa()), |bench| {
                bench.iter(|| block.chain(&k))
            });
            group.bench_function(BenchmarkId::new("relu_pool", k.isa()), |bench| {
                bench.iter(|| block.relu_pool(&k))
            });
        }
        group.finish();
    }
}

/// (min, median) milliseconds of `f` over calls filling about `budget` (at least 5 calls).
fn min_median_ms(budget: Duration, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < 5 || start.elapsed() < budget {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (times[0], times[times.len() / 2])
}

fn summary() {
    let budget = Duration::from_millis(1000);
    println!("\nconv2d, batch 64: ms per call, min / median (GFLOP/s at the min)");
    for case in cases() {
        let mut bufs = Buffers::new(&case.shape);
        let (pass_flops, passes) = flops(&case);
        for (what, total) in [("fwd", pass_flops), ("fwd+bwd", passes * pass_flops)] {
            print!("{:<6} {:<8}", case.name, what);
            for k in Kernels::all() {
                let (min, median) = min_median_ms(budget, || {
                    if what == "fwd" {
                        bufs.forward(&k, &case.shape)
                    } else {
                        bufs.forward_backward(&k, &case)
                    }
                });
                let gflops = total as f64 / (min * 1e-3) / 1e9;
                print!("  {}: {min:.3} / {median:.3} ms ({gflops:.1})", k.isa());
            }
            println!();
        }
    }
}

criterion_group!(conv_benches, benches);
fn main() {
    if std::env::var_os("CONV_SUMMARY_ONLY").is_none() {
        conv_benches();
        Criterion::default().configure_from_args().final_summary();
    }
    // `cargo bench -- --test` (and `cargo test --benches`) only smoke-test, and a
    // `--profile-time` run profiles one benchmark: skip the table.
    let skip = ["--test", "--list", "--profile-time"];
    if !std::env::args().any(|a| skip.contains(&a.as_str())) {
        summary();
    }
}
