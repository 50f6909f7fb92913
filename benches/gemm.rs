//! sgemm benchmarks: each ISA side by side, one group per shape, each shape as ONE sgemm call
//! so it compares directly with `torch.mm` (`../shared/anchors/pytorch_kernels.py`).
//!
//! Throughput is declared as `Elements(2 * m * n * k)`: criterion's "elem/s" is FLOP/s (one
//! multiply-add = 2 FLOPs), so read "Gelem/s" as GFLOP/s.
//!
//! Groups:
//! - `sgemm/<layer> MxKxN`: C[M,N] = A[M,K] B[K,N], no transposes, beta = 0: square 64..1024 and the ten
//!   LeNet-5 shapes at batch 64 (M x K x N as in the PyTorch script).
//! - `sgemm_trainer/...`: the LeNet-5 shapes with the transposes a trainer uses (Linear forward
//!   X W^T, weight gradients dY^T X and dY cols^T, column gradient W^T dY), over the batch and
//!   for one image (an im2col convolution calls GEMM per image).
//!
//! Every group also runs two peer crates, single-threaded: `matrixmultiply` (its `sgemm`; the
//! `threading` feature is off) and `gemm` (`Parallelism::None`, built with its `x86-v4`
//! feature). Both pick their own kernels at run time (AVX-512 on a CPU that has it, whatever
//! simdnet table a column shows), so compare them with the fastest simdnet table.
//!
//! After criterion, a GFLOP/s summary table (median of short timed runs) is printed, by wall
//! time and by this thread's CPU time (on a shared machine the latter excludes time slices
//! given to other processes).
//! `GEMM_SUMMARY_ONLY=1 cargo bench --bench gemm` prints only that table (quick comparisons).

use criterion::{criterion_group, Criterion, Throughput};
use simdnet_kernels::gemm::Transpose;
use simdnet_kernels::{Isa, Kernels};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// (name, transa, transb, M, K, N)
type Shape = (&'static str, Transpose, Transpose, usize, usize, usize);

const N: Transpose = Transpose::No;
const T: Transpose = Transpose::Yes;

const SHAPES: &[Shape] = &[
    ("square", N, N, 64, 64, 64),
    ("square", N, N, 128, 128, 128),
    ("square", N, N, 256, 256, 256),
    ("square", N, N, 512, 512, 512),
    ("square", N, N, 1024, 1024, 1024),
    ("conv1 fwd", N, N, 6, 25, 50176),
    ("conv2 fwd", N, N, 16, 150, 6400),
    ("fc1 fwd", N, N, 64, 400, 120),
    ("fc2 fwd", N, N, 64, 120, 84),
    ("fc3 fwd", N, N, 64, 84, 10),
    ("conv1 dW", N, N, 6, 50176, 25),
    ("conv2 dW", N, N, 16, 6400, 150),
    ("conv2 dCols", N, N, 150, 16, 6400),
    ("fc1 dX", N, N, 64, 120, 400),
    ("fc1 dW", N, N, 120, 64, 400),
];

const TRAINER_SHAPES: &[Shape] = &[
    ("fc1 fwd X W^T", N, T, 64, 400, 120),
    ("fc1 dW dY^T X", T, N, 120, 64, 400),
    ("conv1 dW dY cols^T", N, T, 6, 50176, 25),
    ("conv2 dW dY cols^T", N, T, 16, 6400, 150),
    ("conv2 dCols W^T dY", T, N, 150, 16, 6400),
    // The same layers one image at a time (how an im2col convolution calls GEMM).
    ("conv1 fwd, 1 image", N, N, 6, 25, 784),
    ("conv2 fwd, 1 image", N, N, 16, 150, 100),
    ("conv1 dW, 1 image", N, T, 6, 784, 25),
    ("conv2 dW, 1 image", N, T, 16, 100, 150),
    ("conv2 dCols, 1 image", T, N, 150, 16, 100),
];

/// Operands for one shape: A, B stored as their transposes say, C zeroed.
struct Operands {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

fn operands(m: usize, k: usize, n: usize) -> Operands {
    let fill = |len: usize, seed: u32| {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32
                    / (1u32 << 24) as f32
                    - 0.5
            })
            .collect::<Vec<f32>>()
    };
    Operands {
        a: fill(m * k, 1),
        b: fill(k * n, 2),
        c: vec![0.0; m * n],
    }
}

/// A GEMM under test: one of simdnet's kernel tables, or a peer crate. (A handful are built
/// once per run: the table's size does not matter.)
#[allow(clippy::large_enum_variant)]
enum Impl {
    Simdnet(Kernels),
    MatrixMultiply,
    Gemm,
}

impl Impl {
    /// simdnet's tables (every ISA this CPU runs), then the peers.
    fn all() -> Vec<Impl> {
        let mut all: Vec<Impl> = Kernels::all().into_iter().map(Impl::Simdnet).collect();
        all.extend([Impl::MatrixMultiply, Impl::Gemm]);
        all
    }

    /// The criterion function name and summary column (an ISA name for simdnet).
    fn name(&self) -> &'static str {
        match self {
            Impl::Simdnet(kernels) => kernels.isa().name(),
            Impl::MatrixMultiply => "matrixmultiply",
            Impl::Gemm => "gemm",
        }
    }

    fn is_scalar(&self) -> bool {
        matches!(self, Impl::Simdnet(k) if k.isa() == Isa::Scalar)
    }
}

/// Leading dimension of an operand whose `op` is `rows x cols`, stored as `trans` says
/// (rows packed tight).
fn ld(trans: Transpose, rows: usize, cols: usize) -> usize {
    trans.stored_dims(rows, cols).1
}

/// (row stride, column stride) of `op(X)` for X stored row-major with leading dimension `ld`.
fn op_strides(trans: Transpose, ld: usize) -> (isize, isize) {
    match trans {
        Transpose::No => (ld as isize, 1),
        Transpose::Yes => (1, ld as isize),
    }
}

/// One sgemm call: C = A B with the shape's transposes, beta = 0 (as torch.mm).
fn call(imp: &Impl, shape: &Shape, ops: &mut Operands) {
    let &(_, ta, tb, m, k, n) = shape;
    let (lda, ldb) = (ld(ta, m, k), ld(tb, k, n));
    let (a, b) = (black_box(&ops.a), black_box(&ops.b));
    assert!(a.len() == m * k && b.len() == k * n && ops.c.len() == m * n);
    let (rsa, csa) = op_strides(ta, lda);
    let (rsb, csb) = op_strides(tb, ldb);
    match imp {
        Impl::Simdnet(kernels) => simdnet_call(kernels, shape, ops),
        // SAFETY: `op(A)` (m x k) with strides (rsa, csa) and `op(B)` (k x n) with (rsb, csb)
        // index only inside `a` (m * k) and `b` (k * n), as they were built; C (m x n, rows
        // n apart) is `ops.c`, m * n long, exclusively borrowed and not aliased by A or B.
        // beta = 0, so C is not read.
        Impl::MatrixMultiply => unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                rsa,
                csa,
                b.as_ptr(),
                rsb,
                csb,
                0.0,
                ops.c.as_mut_ptr(),
                n as isize,
                1,
            )
        },
        // SAFETY: as above (the gemm crate takes column stride before row stride).
        // `read_dst = false` computes dst = 1.0 * lhs * rhs without reading dst.
        Impl::Gemm => unsafe {
            gemm::gemm(
                m,
                n,
                k,
                ops.c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                csa,
                rsa,
                b.as_ptr(),
                csb,
                rsb,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        },
    }
    black_box(&mut ops.c);
}

fn simdnet_call(kernels: &Kernels, shape: &Shape, ops: &mut Operands) {
    let &(_, ta, tb, m, k, n) = shape;
    let (lda, ldb) = (ld(ta, m, k), ld(tb, k, n));
    kernels.sgemm(
        ta,
        tb,
        m,
        n,
        k,
        1.0,
        black_box(&ops.a),
        lda,
        black_box(&ops.b),
        ldb,
        0.0,
        &mut ops.c,
        n,
    );
}

/// Panics unless every non-scalar implementation computes the same C as simdnet's default
/// table at every shape (within rounding), so the peers' stride arguments are known right.
fn check_agreement() {
    let reference = Impl::Simdnet(Kernels::for_isa(Isa::best()).expect("best ISA runs"));
    for shape in SHAPES.iter().chain(TRAINER_SHAPES) {
        let mut want = operands(shape.3, shape.4, shape.5);
        call(&reference, shape, &mut want);
        for imp in Impl::all().iter().filter(|imp| !imp.is_scalar()) {
            let mut got = operands(shape.3, shape.4, shape.5);
            call(imp, shape, &mut got);
            // Products of terms in [-0.5, 0.5]: rounding grows at most ~linearly in k.
            let tol = 1e-5 * shape.4 as f32 + 1e-5;
            let worst = want.c.iter().zip(&got.c).map(|(x, y)| (x - y).abs());
            let worst = worst.fold(0.0f32, f32::max);
            assert!(
                worst <= tol,
                "{} disagrees with {} at {} {}x{}x{}: max |diff| {worst} > {tol}",
                imp.name(),
                reference.name(),
                shape.0,
                shape.3,
                shape.4,
                shape.5
            );
        }
    }
}

fn flops(shape: &Shape) -> u64 {
    2 * (shape.3 * shape.4 * shape.5) as u64
}

/// The scalar reference is a plain triple loop (~1 GFLOP/s): it runs only where one call
/// stays under ~50 ms, so the whole benchmark stays affordable (not at 512 and 1024 square).
fn scalar_affordable(shape: &Shape) -> bool {
    flops(shape) <= 64_000_000
}

fn bench_group(c: &mut Criterion, group_name: &str, shapes: &[Shape]) {
    for shape in shapes {
        let &(name, ta, tb, m, k, n) = shape;
        let label = format!(
            "{group_name}/{name} {m}x{k}x{n}{}",
            if ta == N && tb == N {
                String::new()
            } else {
                format!(
                    " {}{}",
                    if ta == N { "N" } else { "T" },
                    if tb == N { "N" } else { "T" }
                )
            }
        );
        let mut group = c.benchmark_group(label);
        group.throughput(Throughput::Elements(flops(shape)));
        let mut ops = operands(m, k, n);
        for imp in Impl::all() {
            if imp.is_scalar() {
                if !scalar_affordable(shape) {
                    continue;
                }
                group.sample_size(10);
            } else {
                group.sample_size(if flops(shape) > 500_000_000 { 20 } else { 50 });
            }
            group.bench_function(imp.name(), |bench| {
                bench.iter(|| call(&imp, shape, &mut ops))
            });
        }
        group.finish();
    }
}

fn benches(c: &mut Criterion) {
    bench_group(c, "sgemm", SHAPES);
    bench_group(c, "sgemm_trainer", TRAINER_SHAPES);
}

/// This thread's CPU time. The machines these benchmarks run on are shared: wall time of a
/// multi-millisecond call includes time slices given to other processes, CPU time does not.
fn thread_cpu_time() -> Duration {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` (libc, Linux) writes one `struct timespec` (two 64-bit fields on
    // the 64-bit targets this crate supports) to the valid pointer it is given.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Median GFLOP/s of `shape` on `imp` from ~`budget` of back-to-back calls, by wall time
/// and by this thread's CPU time.
fn median_gflops(imp: &Impl, shape: &Shape, budget: Duration) -> (f64, f64) {
    let mut ops = operands(shape.3, shape.4, shape.5);
    for _ in 0..3 {
        call(imp, shape, &mut ops);
    }
    let start = Instant::now();
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    while wall.len() < 5 || (start.elapsed() < budget && wall.len() < 10_000) {
        // The wall clock (vDSO, ~20 ns) is read inside the CPU-time calls (system calls,
        // ~0.5 us each), so wall time does not include them (fc3, 2 us a call, read ~20% slow).
        let c = thread_cpu_time();
        let t = Instant::now();
        call(imp, shape, &mut ops);
        wall.push(t.elapsed().as_secs_f64());
        cpu.push((thread_cpu_time() - c).as_secs_f64());
    }
    let gflops = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        flops(shape) as f64 / v[v.len() / 2] / 1e9
    };
    if std::env::var_os("GEMM_SUMMARY_BEST").is_some() {
        // Best instead of median: the least disturbed call, for comparing variants on a busy
        // machine.
        let best = |v: Vec<f64>| flops(shape) as f64 / v.into_iter().fold(f64::MAX, f64::min) / 1e9;
        return (best(wall), best(cpu));
    }
    (gflops(wall), gflops(cpu))
}

fn summary() {
    let budget = Duration::from_millis(
        std::env::var("GEMM_SUMMARY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300),
    );
    // GEMM_SUMMARY_ISAS=avx2,gemm limits the columns to the ISAs and peers named.
    let isas = std::env::var("GEMM_SUMMARY_ISAS").unwrap_or_default();
    let all: Vec<Impl> = Impl::all()
        .into_iter()
        .filter(|imp| isas.is_empty() || isas.split(',').any(|name| name == imp.name()))
        .collect();
    print!(
        "\nsgemm GFLOP/s, median by wall / thread CPU time {:>8}",
        "M x K x N"
    );
    for imp in &all {
        print!(" {:>15}", imp.name());
    }
    println!();
    // GEMM_SUMMARY_FILTER=512 keeps only the rows whose name or shape contains "512".
    let filter = std::env::var("GEMM_SUMMARY_FILTER").unwrap_or_default();
    for shape in SHAPES.iter().chain(TRAINER_SHAPES) {
        let &(name, ta, tb, m, k, n) = shape;
        let tr = format!(
            "{}{}",
            if ta == N { "N" } else { "T" },
            if tb == N { "N" } else { "T" }
        );
        if !format!("{name} {m}x{k}x{n} {tr}").contains(&filter) {
            continue;
        }
        print!("{name:<30} {:>25} {tr}", format!("{m}x{k}x{n}"));
        for imp in &all {
            if imp.is_scalar() && !scalar_affordable(shape) {
                print!(" {:>15}", "-");
            } else {
                let (wall, cpu) = median_gflops(imp, shape, budget);
                print!(" {:>7.1} {:>7.1}", wall, cpu);
            }
        }
        println!();
    }
}

criterion_group!(gemm_benches, benches);

fn main() {
    check_agreement();
    if std::env::var_os("GEMM_SUMMARY_ONLY").is_none() {
        gemm_benches();
        criterion::Criterion::default()
            .configure_from_args()
            .final_summary();
    }
    // `cargo bench -- --test` (and `cargo test --benches`) only smoke-test: skip the table.
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        summary();
    }
}
