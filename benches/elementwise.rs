//! Element-wise kernel benchmarks at LeNet-5's batch-64 sizes, scalar vs SIMD side by side.
//! Throughput is `Bytes` (every f32/u32 read plus every one written), so criterion's "GiB/s"
//! is the memory traffic the kernel needs.
//!
//! - relu forward / in place / backward on 64x6x28x28 (conv1's output);
//! - bias add / backward on 64x6x28x28 and on a Linear output 64x120;
//! - max pooling forward (with argmax) / backward, 2x2 stride 2, on 64x6x28x28 -> 14x14 and
//!   64x16x10x10 -> 5x5; average pooling the same.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use simdnet_kernels::maxpool::Pool2dShape;
use simdnet_kernels::Kernels;
use std::hint::black_box;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};

fn values(n: usize, seed: u32) -> Buffer<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    Buffer::from(
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect::<Vec<_>>(),
    )
}

fn zeros<T: Copy + Default>(n: usize) -> Buffer<T> {
    Buffer::from(vec![T::default(); n])
}

/// Buffers made so far: the next one's offset within its page.
static BUFFERS: AtomicUsize = AtomicUsize::new(0);

/// A bench buffer placed the same way in every build and run: the k-th buffer made starts
/// `k * 320` bytes (mod 4 KiB) after a page boundary. Where the allocator puts a buffer
/// otherwise depends on what the binary allocated before (so on unrelated code), and a
/// buffer's offset within its page moves a memory-bound kernel's time by more than the
/// differences these benches look for.
struct Buffer<T> {
    storage: Vec<T>,
    start: usize,
    len: usize,
}

impl<T: Copy + Default> From<Vec<T>> for Buffer<T> {
    fn from(v: Vec<T>) -> Self {
        let size = std::mem::size_of::<T>();
        let (page, slot) = (4096 / size, BUFFERS.fetch_add(1, Ordering::Relaxed));
        let mut storage = vec![T::default(); v.len() + 2 * page];
        let misalign = (storage.as_ptr() as usize / size) % page;
        let start = (page - misalign) % page + (slot * 320 / size) % page;
        storage[start..start + v.len()].copy_from_slice(&v);
        Buffer {
            storage,
            start,
            len: v.len(),
        }
    }
}

impl<T> Deref for Buffer<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.storage[self.start..self.start + self.len]
    }
}

impl<T> DerefMut for Buffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// Runs `f` on every ISA in one group with `bytes` of traffic per call.
fn group(c: &mut Criterion, name: &str, bytes: usize, mut f: impl FnMut(&Kernels)) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(bytes as u64));
    for k in Kernels::all() {
        g.bench_function(BenchmarkId::from_parameter(k.isa()), |b| b.iter(|| f(&k)));
    }
    g.finish();
}

fn relu(c: &mut Criterion) {
    let n = 64 * 6 * 28 * 28;
    let x = values(n, 1);
    let g = values(n, 2);
    let mut y = zeros(n);
    let mut gi = zeros(n);
    group(c, "relu/forward 64x6x28x28", 8 * n, |k| {
        k.relu_forward(black_box(&x), &mut y)
    });
    let mut z = values(n, 1);
    group(c, "relu/in_place 64x6x28x28", 8 * n, |k| {
        k.relu_forward_in_place(black_box(&mut z))
    });
    group(c, "relu/backward 64x6x28x28", 12 * n, |k| {
        k.relu_backward(black_box(&x), &g, &mut gi)
    });
}

fn bias(c: &mut Criterion) {
    for (name, batch, channels, spatial) in [("64x6x28x28", 64, 6, 784), ("64x120", 64, 120, 1)] {
        let n = batch * channels * spatial;
        let mut x = values(n, 1);
        let b = values(channels, 2);
        let mut gb = zeros(channels);
        group(c, &format!("bias/add {name}"), 8 * n, |k| {
            k.bias_add(black_box(&mut x), &b, batch, spatial)
        });
        group(c, &format!("bias/backward {name}"), 4 * n, |k| {
            k.bias_backward(black_box(&x), &mut gb, batch, spatial)
        });
    }
}

fn pooling(c: &mut Criterion) {
    for (name, channels, side) in [("64x6x28x28", 6, 28), ("64x16x10x10", 16, 10)] {
        let s = Pool2dShape::new(64, channels, (side, side), (2, 2), (2, 2));
        let (n_in, n_out) = (s.input_len(), s.output_len());
        let x = values(n_in, 1);
        let g = values(n_out, 2);
        let mut y = zeros(n_out);
        let mut at = zeros::<u32>(n_out);
        let mut gi = zeros(n_in);
        group(
            c,
            &format!("maxpool/forward {name}"),
            4 * n_in + 8 * n_out,
            |k| k.maxpool2d_forward(&s, black_box(&x), &mut y, &mut at),
        );
        group(
            c,
            &format!("maxpool/backward {name}"),
            8 * n_out + 4 * n_in,
            |k| k.maxpool2d_backward(&s, black_box(&g), &at, &mut gi),
        );
        group(
            c,
            &format!("maxpool/relu_forward {name}"),
            4 * n_in + 8 * n_out,
            |k| k.maxpool2d_relu_forward(&s, black_box(&x), &mut y, &mut at),
        );
        group(
            c,
            &format!("maxpool/relu_backward {name}"),
            12 * n_out + 4 * n_in,
            |k| k.maxpool2d_relu_backward(&s, black_box(&g), &at, &y, &mut gi),
        );
        group(
            c,
            &format!("avgpool/forward {name}"),
            4 * n_in + 4 * n_out,
            |k| k.avgpool2d_forward(&s, black_box(&x), &mut y),
        );
        group(
            c,
            &format!("avgpool/backward {name}"),
            4 * n_out + 4 * n_in,
            |k| k.avgpool2d_backward(&s, black_box(&g), &mut gi),
        );
    }
}

criterion_group!(elementwise_benches, relu, bias, pooling);
criterion_main!(elementwise_benches);
