//! GEMM on every ISA this CPU supports against the f64 reference `gemm::scalar::gemm::<f64>`.
//!
//! Tolerance: each element of `C = alpha * A B + beta * C` is a dot product of length k plus a
//! scaled old value. However its terms are summed (in any order, with or without FMA, in one
//! piece or in k blocks whose partial results are rounded into C), the classic bound for
//! floating-point summation gives an error of at most about `(k + 2) * u * S` with
//! `u = eps_f32 / 2` and `S = |alpha| * sum_p |a_ip| |b_pj| + |beta| |c_ij|` (the
//! roundings of alpha, beta and the k-block boundaries add a few more `u`). We allow
//! `(k + 4) * eps_f32 * S`: about twice that bound, so it never fails on a correct kernel,
//! yet a single wrong, missing or duplicated term (of size ~ S / k) breaks it for every k
//! these tests use.
//!
//! Padding of A and B (elements between rows) holds NaN, so reading it shows up in C; C's
//! padding and the elements after its slice hold a NaN sentinel that must keep its exact bits.

mod common;

use common::{cases, random_vec};
use proptest::prelude::*;
use simdnet_kernels::gemm::{self, scalar, Transpose};
use simdnet_kernels::{Isa, Kernels};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

const SENTINEL_BITS: u32 = 0x7fc0_dead;

fn sentinel() -> f32 {
    f32::from_bits(SENTINEL_BITS)
}

/// Elements written after the end of the C slice we pass (they must stay sentinels).
const TRAIL: usize = 9;

#[derive(Clone, Copy, Debug)]
struct Case {
    ta: Transpose,
    tb: Transpose,
    m: usize,
    n: usize,
    k: usize,
    /// Extra elements per row beyond the stored row length (leading dimension - cols).
    pad_a: usize,
    pad_b: usize,
    pad_c: usize,
    /// Pass each slice trimmed to its span (no padding after the last row) instead of whole rows.
    trim: bool,
    alpha: f32,
    beta: f32,
    seed: u64,
}

/// A `rows x cols` matrix with leading dimension `cols + pad`: random values, NaN padding.
fn matrix(rows: usize, cols: usize, pad: usize, trim: bool, seed: u64) -> (Vec<f32>, usize) {
    let ld = cols + pad;
    if rows == 0 || cols == 0 {
        return (Vec::new(), ld.max(1));
    }
    let len = if trim {
        (rows - 1) * ld + cols
    } else {
        rows * ld
    };
    let values = random_vec(len, seed);
    let m = values
        .iter()
        .enumerate()
        .map(|(i, &v)| if i % ld < cols { v } else { f32::NAN })
        .collect();
    (m, ld)
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn abs64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| (x as f64).abs()).collect()
}

fn transpose_name(t: Transpose) -> &'static str {
    match t {
        Transpose::No => "N",
        Transpose::Yes => "T",
    }
}

/// Runs one case on `kernels` and checks every element of C and every sentinel.
#[track_caller]
fn check_case(kernels: &Kernels, c: &Case) {
    let Case {
        ta, tb, m, n, k, ..
    } = *c;
    let (ar, ac) = ta.stored_dims(m, k);
    let (br, bc) = tb.stored_dims(k, n);
    let (a, lda) = matrix(ar, ac, c.pad_a, c.trim, c.seed);
    let (b, ldb) = matrix(br, bc, c.pad_b, c.trim, c.seed ^ 0x5555);
    let ldc = n + c.pad_c;
    let c_len = if m == 0 || n == 0 {
        0
    } else if c.trim {
        (m - 1) * ldc + n
    } else {
        m * ldc
    };
    let old = random_vec(c_len, c.seed ^ 0xaaaa);
    // The buffer: C's elements (NaN when beta == 0: never read), sentinels in its padding and
    // after its end.
    let mut buf = vec![sentinel(); c_len + TRAIL];
    let in_c = |idx: usize| idx < c_len && idx % ldc < n;
    for (idx, x) in buf.iter_mut().enumerate() {
        if in_c(idx) {
            *x = if c.beta == 0.0 { f32::NAN } else { old[idx] };
        }
    }
    let old_c = buf[..c_len].to_vec();

    kernels.sgemm(
        ta,
        tb,
        m,
        n,
        k,
        c.alpha,
        &a,
        lda,
        &b,
        ldb,
        c.beta,
        &mut buf[..c_len],
        ldc,
    );

    let mut want = widen(&old_c);
    scalar::gemm::<f64>(
        ta,
        tb,
        m,
        n,
        k,
        c.alpha as f64,
        &widen(&a),
        lda,
        &widen(&b),
        ldb,
        c.beta as f64,
        &mut want,
        ldc,
    );
    // sum_p |a_ip| |b_pj| for the error bound.
    let mut magnitude = vec![0.0f64; c_len];
    scalar::gemm::<f64>(
        ta,
        tb,
        m,
        n,
        k,
        1.0,
        &abs64(&a),
        lda,
        &abs64(&b),
        ldb,
        0.0,
        &mut magnitude,
        ldc,
    );
    let eps = f32::EPSILON as f64;
    for (idx, &got) in buf.iter().enumerate() {
        if in_c(idx) {
            let old = if c.beta == 0.0 {
                0.0
            } else {
                (c.beta as f64 * old_c[idx] as f64).abs()
            };
            let bound = (k + 4) as f64 * eps * ((c.alpha as f64).abs() * magnitude[idx] + old);
            let diff = (got as f64 - want[idx]).abs();
            assert!(
                diff <= bound,
                "{} {}{} m={m} n={n} k={k}: C[{}][{}] = {got:e}, want {:e} (|diff| {diff:e} > {bound:e}); {c:?}",
                kernels.isa(),
                transpose_name(ta),
                transpose_name(tb),
                idx / ldc,
                idx % ldc,
                want[idx],
            );
        } else {
            assert_eq!(
                got.to_bits(),
                SENTINEL_BITS,
                "{} m={m} n={n} k={k}: sentinel at C index {idx} (row {}, col {}) overwritten with {got}; {c:?}",
                kernels.isa(),
                idx / ldc,
                idx % ldc,
            );
        }
    }
}

const TRANSPOSES: [(Transpose, Transpose); 4] = [
    (Transpose::No, Transpose::No),
    (Transpose::No, Transpose::Yes),
    (Transpose::Yes, Transpose::No),
    (Transpose::Yes, Transpose::Yes),
];

/// Every m, n, k in 0..=20 (every tail below both register tiles, and k around them), for
/// each transpose pair, with strides, alpha and beta varying from shape to shape.
#[test]
fn exhaustive_small_shapes() {
    const BETAS: [f32; 3] = [0.0, 1.0, -1.5];
    for kernels in Kernels::all() {
        let mut seed = 0u64;
        for (ta, tb) in TRANSPOSES {
            for m in 0..=20 {
                for n in 0..=20 {
                    for k in 0..=20 {
                        seed += 1;
                        check_case(
                            &kernels,
                            &Case {
                                ta,
                                tb,
                                m,
                                n,
                                k,
                                pad_a: (m + k) % 3,
                                pad_b: (n + k) % 2,
                                pad_c: (m + n) % 3,
                                trim: seed.is_multiple_of(2),
                                alpha: if seed.is_multiple_of(5) { 1.0 } else { 0.75 },
                                beta: BETAS[(seed % 3) as usize],
                                seed,
                            },
                        );
                    }
                }
            }
        }
    }
}

/// The sizes where blocking changes: each block size of every SIMD ISA, minus one, itself and
/// plus one (kc, mc and nc), and the register tiles' multiples.
fn block_edges() -> Vec<(usize, usize, usize)> {
    Isa::supported()
        .into_iter()
        .filter_map(gemm::blocking_for_tests)
        .map(|b| (b.kc, b.mc, b.nc))
        .collect()
}

/// The register tiles' edges of every SIMD ISA: MR and NR, one and two tiles, each minus one,
/// itself and plus one (8 x 48 on AVX-512 puts NR past `1..=40`).
fn tile_edges() -> Vec<usize> {
    let mut sizes = vec![1];
    for b in Isa::supported()
        .into_iter()
        .filter_map(gemm::blocking_for_tests)
    {
        for tile in [b.mr, b.nr, 2 * b.mr, 2 * b.nr] {
            sizes.extend([tile - 1, tile, tile + 1]);
        }
    }
    sizes
}

/// A dimension: mostly small (tails and a few tiles), sometimes a tile edge.
fn small_dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..=3,
        8 => 1usize..=40,
        1 => 41usize..=100,
        2 => prop::sample::select(tile_edges()),
    ]
}

#[derive(Clone, Copy, Debug)]
enum Big {
    None,
    K,
    M,
    N,
}

fn scalar_value() -> impl Strategy<Value = f32> {
    prop_oneof![Just(0.0f32), Just(1.0f32), -2.0f32..2.0]
}

fn transpose() -> impl Strategy<Value = Transpose> {
    prop_oneof![Just(Transpose::No), Just(Transpose::Yes)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(320)))]

    /// Random shapes (0, 1, tails, several tiles, and one dimension at a time at kc, mc or nc
    /// plus or minus one), both transposes, strided A, B and C, alpha and beta including 0 and 1.
    #[test]
    fn matches_reference_on_random_shapes(
        ta in transpose(),
        tb in transpose(),
        small in (small_dim(), small_dim(), small_dim()),
        big in prop_oneof![3 => Just(Big::None), 1 => Just(Big::K), 1 => Just(Big::M), 1 => Just(Big::N)],
        edge in 0usize..3,
        which_isa in 0usize..8,
        pads in (0usize..5, 0usize..5, 0usize..5),
        ldb_multiple_of_64 in prop::bool::weighted(0.2),
        trim in any::<bool>(),
        alpha in scalar_value(),
        beta in scalar_value(),
        seed in any::<u64>(),
    ) {
        let (mut m, mut n, mut k) = small;
        let edges = block_edges();
        if let Some(&(kc, mc, nc)) = edges.get(which_isa % edges.len().max(1)) {
            // Keep the other two dimensions small so a case stays cheap.
            let near = |size: usize| size + edge - 1;
            match big {
                Big::None => {}
                Big::K => { k = near(kc); m = m.min(20); n = n.min(40); }
                Big::M => {
                    // Full-depth k blocks, so m blocks are mc rows (short k allows taller ones).
                    m = near(mc);
                    n = n.min(40);
                    k = kc;
                }
                Big::N => { n = near(nc); m = m.min(13); k = k.min(60); }
            }
        }
        // A leading dimension of B that is a multiple of 64 floats switches B from being read
        // in place to being packed (for m above the tiny-m limit): exercise both.
        let stored_b_cols = tb.stored_dims(k, n).1;
        let pad_b = if ldb_multiple_of_64 { (64 - stored_b_cols % 64) % 64 } else { pads.1 };
        let case = Case { ta, tb, m, n, k, pad_a: pads.0, pad_b, pad_c: pads.2, trim, alpha, beta, seed };
        for kernels in Kernels::all() {
            check_case(&kernels, &case);
        }
    }
}

/// Every GEMM shape of LeNet-5 at batch 64 (M x K x N), with each transpose pair the trainer
/// could use, so the skinny-shape paths (operands read in place, long k) run at full size.
#[test]
fn lenet_shapes() {
    let shapes: &[(usize, usize, usize)] = &[
        (6, 25, 50176),
        (16, 150, 6400),
        (64, 400, 120),
        (64, 120, 84),
        (64, 84, 10),
        (6, 50176, 25),
        (16, 6400, 150),
        (150, 16, 6400),
        (64, 120, 400),
        (120, 64, 400),
    ];
    // Under qemu each case is ~50x slower: one transpose pair per shape there.
    let pairs = if cfg!(target_arch = "aarch64") {
        &TRANSPOSES[..1]
    } else {
        &TRANSPOSES[..]
    };
    for kernels in Kernels::all()
        .into_iter()
        .filter(|k| k.isa() != Isa::Scalar)
    {
        for (s, &(m, k, n)) in shapes.iter().enumerate() {
            for (t, &(ta, tb)) in pairs.iter().enumerate() {
                let seed = (s * 4 + t) as u64;
                check_case(
                    &kernels,
                    &Case {
                        ta,
                        tb,
                        m,
                        n,
                        k,
                        pad_a: t % 2,
                        pad_b: 0,
                        pad_c: s % 2,
                        trim: false,
                        alpha: 1.0,
                        beta: if t % 2 == 0 { 0.0 } else { 0.5 },
                        seed,
                    },
                );
            }
        }
    }
}

/// B read in place because all of it is small (at most 8 Ki floats) although its leading
/// dimension is a multiple of 64 floats (which otherwise makes the driver pack it), with m
/// past the tiny-m rule (more than four row tiles): k x n on both sides of 8 Ki floats
/// (64 x 128 in place, 65 x 128 packed), row lengths 64 and 60 (padded to 64) and 128.
#[test]
fn small_b_read_in_place() {
    let mut seed = 2000;
    for kernels in Kernels::all()
        .into_iter()
        .filter(|k| k.isa() != Isa::Scalar)
    {
        let b = gemm::blocking_for_tests(kernels.isa()).expect("SIMD ISAs block");
        for m in [4 * b.mr + 1, 64, 100] {
            for (k, n, pad_b) in [
                (64, 64, 0),
                (64, 60, 4),
                (33, 64, 0),
                (64, 128, 0),
                (65, 128, 0),
            ] {
                for tb in [Transpose::No, Transpose::Yes] {
                    seed += 1;
                    check_case(
                        &kernels,
                        &Case {
                            ta: if seed % 2 == 0 {
                                Transpose::No
                            } else {
                                Transpose::Yes
                            },
                            tb,
                            m,
                            n,
                            k,
                            pad_a: seed as usize % 3,
                            pad_b: if tb == Transpose::No { pad_b } else { 0 },
                            pad_c: seed as usize % 2,
                            trim: seed % 4 == 0,
                            alpha: if seed % 3 == 0 { 1.0 } else { 0.5 },
                            beta: [0.0, 1.0, -0.5][seed as usize % 3],
                            seed,
                        },
                    );
                }
            }
        }
    }
}

/// B read in place (row length not a multiple of 64 floats) with more than one row tile takes
/// k blocks of at most 128: m at one row tile (one k block up to the ISA's kc) and one row
/// more, k on both sides of 128 and of two blocks, both transposes of A.
#[test]
fn direct_b_shared_k_blocks() {
    let mut seed = 3000;
    for kernels in Kernels::all()
        .into_iter()
        .filter(|k| k.isa() != Isa::Scalar)
    {
        let b = gemm::blocking_for_tests(kernels.isa()).expect("SIMD ISAs block");
        for m in [b.mr, b.mr + 1, 3 * b.mr + 2] {
            for k in [127, 128, 129, 256, 257, 300] {
                for ta in [Transpose::No, Transpose::Yes] {
                    seed += 1;
                    check_case(
                        &kernels,
                        &Case {
                            ta,
                            tb: Transpose::No,
                            m,
                            n: 2 * b.nr + 3,
                            k,
                            pad_a: seed as usize % 2,
                            pad_b: 1 + seed as usize % 3,
                            pad_c: seed as usize % 3,
                            trim: seed % 4 == 1,
                            alpha: if seed % 2 == 0 { 1.0 } else { 1.5 },
                            beta: [0.0, 1.0, 0.5][seed as usize % 3],
                            seed,
                        },
                    );
                }
            }
        }
    }
}

/// Short k blocks (at most 32) with more than one row tile walk C row panel by row panel, while
/// the packed B panel (kc x nc) stays within 64 Ki floats: m at one tile plus one row and at
/// three tiles minus one, k on both sides of 32, n a few slivers plus a tail and on both sides
/// of the 64 Ki-float panel (n ~ 2048 at k = 32), for every transpose pair.
#[test]
fn short_k_row_panels() {
    let pairs = if cfg!(target_arch = "aarch64") {
        &TRANSPOSES[..2]
    } else {
        &TRANSPOSES[..]
    };
    for kernels in Kernels::all()
        .into_iter()
        .filter(|k| k.isa() != Isa::Scalar)
    {
        let b = gemm::blocking_for_tests(kernels.isa()).expect("SIMD ISAs block");
        let mut seed = 1000;
        for m in [b.mr + 1, 3 * b.mr - 1] {
            for k in [1, 16, 32, 33] {
                for n in [3 * b.nr + 5, 1900, 2200] {
                    for &(ta, tb) in pairs {
                        seed += 1;
                        check_case(
                            &kernels,
                            &Case {
                                ta,
                                tb,
                                m,
                                n,
                                k,
                                pad_a: seed as usize % 2,
                                pad_b: (seed as usize / 2) % 2,
                                pad_c: (seed as usize % 3) * 2,
                                trim: seed % 5 == 0,
                                alpha: if seed % 2 == 0 { 1.0 } else { -0.75 },
                                beta: [0.0, 1.0, 0.5][seed as usize % 3],
                                seed,
                            },
                        );
                    }
                }
            }
        }
    }
}

/// `A B^T` with few rows or columns and k >= 64 (the dot-product path of the x86 ISAs): every
/// row and column count up to three dot tiles (row and column blocks split evenly, the last
/// one short), k at the vector tails (8 and 16 lanes) and around the k blocks (256, 512).
#[test]
fn skinny_a_b_transposed() {
    let ks = [64, 65, 79, 95, 100, 255, 256, 257, 511, 513, 1100];
    for kernels in Kernels::all()
        .into_iter()
        .filter(|k| k.isa() != Isa::Scalar)
    {
        let mut seed = 0;
        for m in 1..=13 {
            for n in 1..=13 {
                seed += 1;
                let k = ks[seed as usize % ks.len()];
                check_case(
                    &kernels,
                    &Case {
                        ta: Transpose::No,
                        tb: Transpose::Yes,
                        m,
                        n,
                        k,
                        pad_a: (m + n) % 3,
                        pad_b: seed as usize % 2,
                        pad_c: (n % 2) * 3,
                        trim: seed % 3 == 0,
                        alpha: if seed % 4 == 0 { 1.0 } else { -0.5 },
                        beta: [0.0, 1.0, 0.25][seed as usize % 3],
                        seed,
                    },
                );
            }
        }
    }
}

/// beta = 0 never reads C: a C full of NaN (and infinities) gives a finite, correct result.
#[test]
fn beta_zero_ignores_nan_and_inf_in_c() {
    for kernels in Kernels::all() {
        for &(m, n, k) in &[(1, 1, 1), (7, 17, 5), (37, 70, 300), (200, 33, 3)] {
            let a = random_vec(m * k, 1);
            let b = random_vec(k * n, 2);
            let mut c: Vec<f32> = (0..m * n)
                .map(|i| if i % 2 == 0 { f32::NAN } else { f32::INFINITY })
                .collect();
            kernels.sgemm(
                Transpose::No,
                Transpose::No,
                m,
                n,
                k,
                1.0,
                &a,
                k,
                &b,
                n,
                0.0,
                &mut c,
                n,
            );
            let mut want = vec![0.0f32; m * n];
            scalar::gemm::<f32>(
                Transpose::No,
                Transpose::No,
                m,
                n,
                k,
                1.0,
                &a,
                k,
                &b,
                n,
                0.0,
                &mut want,
                n,
            );
            for (i, (&g, &w)) in c.iter().zip(&want).enumerate() {
                assert!(g.is_finite(), "{} {m}x{n}x{k}: C[{i}] = {g}", kernels.isa());
                assert!(
                    (g - w).abs() <= (k + 4) as f32 * f32::EPSILON * k as f32,
                    "{} C[{i}]",
                    kernels.isa()
                );
            }
        }
    }
}

/// k = 0: C = beta * C (zeros for beta = 0, even over NaN); the sentinels stay.
#[test]
fn k_zero_scales_c() {
    for kernels in Kernels::all() {
        for beta in [0.0f32, 1.0, 2.5, -1.0] {
            let (m, n, ldc) = (5, 19, 23);
            let old = random_vec(m * ldc, 9);
            let mut c: Vec<f32> = old
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if i % ldc >= n {
                        sentinel()
                    } else if beta == 0.0 {
                        f32::NAN
                    } else {
                        v
                    }
                })
                .collect();
            kernels.sgemm(
                Transpose::No,
                Transpose::Yes,
                m,
                n,
                0,
                3.0,
                &[],
                1,
                &[],
                1,
                beta,
                &mut c,
                ldc,
            );
            for (i, &x) in c.iter().enumerate() {
                if i % ldc >= n {
                    assert_eq!(
                        x.to_bits(),
                        SENTINEL_BITS,
                        "{} beta {beta}: index {i}",
                        kernels.isa()
                    );
                } else {
                    assert_eq!(x, beta * old[i], "{} beta {beta}: index {i}", kernels.isa());
                }
            }
        }
    }
}

/// m = 0 or n = 0: nothing to do, whatever k, alpha and beta are (C is empty).
#[test]
fn empty_c_does_nothing() {
    for kernels in Kernels::all() {
        let a = random_vec(12, 3);
        let b = random_vec(12, 4);
        kernels.sgemm(
            Transpose::No,
            Transpose::No,
            0,
            3,
            4,
            1.0,
            &[],
            4,
            &b,
            3,
            f32::NAN,
            &mut [],
            3,
        );
        kernels.sgemm(
            Transpose::No,
            Transpose::No,
            3,
            0,
            4,
            1.0,
            &a,
            4,
            &[],
            1,
            f32::NAN,
            &mut [],
            1,
        );
        kernels.sgemm(
            Transpose::Yes,
            Transpose::Yes,
            0,
            0,
            0,
            1.0,
            &[],
            1,
            &[],
            1,
            0.0,
            &mut [],
            1,
        );
    }
}

/// The scalar table is exactly the f32 reference (same order of operations, same bits).
#[test]
fn scalar_table_is_the_f32_reference() {
    let kernels = Kernels::for_isa(Isa::Scalar).unwrap();
    for (t, &(ta, tb)) in TRANSPOSES.iter().enumerate() {
        let (m, n, k) = (13, 29, 41);
        let (ar, ac) = ta.stored_dims(m, k);
        let (br, bc) = tb.stored_dims(k, n);
        let a = random_vec(ar * ac, t as u64);
        let b = random_vec(br * bc, 10 + t as u64);
        let c0 = random_vec(m * n, 20 + t as u64);
        let mut got = c0.clone();
        let mut want = c0.clone();
        kernels.sgemm(ta, tb, m, n, k, 0.5, &a, ac, &b, bc, -0.25, &mut got, n);
        scalar::gemm::<f32>(ta, tb, m, n, k, 0.5, &a, ac, &b, bc, -0.25, &mut want, n);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want));
    }
}

// ---- steady state allocates nothing ----

/// Counts this thread's allocations (tests run on several threads at once).
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every method forwards to the system allocator unchanged; the counter is a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// After a first call has grown the packing buffers, further calls (of that size or smaller,
/// any transposes) allocate nothing.
#[test]
fn steady_state_does_not_allocate() {
    for kernels in Kernels::all() {
        let (m, n, k) = (150, 300, 260);
        let a = random_vec(m * k, 1);
        let b = random_vec(k * n, 2);
        let mut c = vec![0.0f32; m * n];
        let mut run = |ta: Transpose, tb: Transpose, m: usize, n: usize, k: usize| {
            let lda = if ta == Transpose::No { k } else { m };
            let ldb = if tb == Transpose::No { n } else { k };
            kernels.sgemm(
                ta,
                tb,
                m,
                n,
                k,
                1.0,
                &a[..m * k],
                lda,
                &b[..k * n],
                ldb,
                0.5,
                &mut c[..m * n],
                n,
            );
        };
        for (ta, tb) in TRANSPOSES {
            run(ta, tb, m, n, k);
        }
        let before = ALLOCATIONS.with(Cell::get);
        for (ta, tb) in TRANSPOSES {
            run(ta, tb, m, n, k);
            run(ta, tb, 64, 120, 84);
            run(ta, tb, 6, 25, 100);
        }
        let after = ALLOCATIONS.with(Cell::get);
        assert_eq!(
            after,
            before,
            "{}: sgemm allocated in steady state",
            kernels.isa()
        );
    }
}

// ---- length checks ----

#[test]
#[should_panic(expected = "sgemm: A: expected length 12, got 11")]
fn short_a_panics() {
    let mut c = vec![0.0; 6];
    Kernels::get().sgemm(
        Transpose::No,
        Transpose::No,
        3,
        2,
        4,
        1.0,
        &[0.0; 11],
        4,
        &[0.0; 8],
        2,
        0.0,
        &mut c,
        2,
    );
}

#[test]
#[should_panic(expected = "sgemm: B: expected length 8, got 9")]
fn long_b_panics() {
    let mut c = vec![0.0; 6];
    Kernels::get().sgemm(
        Transpose::No,
        Transpose::No,
        3,
        2,
        4,
        1.0,
        &[0.0; 12],
        4,
        &[0.0; 9],
        2,
        0.0,
        &mut c,
        2,
    );
}

#[test]
#[should_panic(expected = "sgemm: B: expected length 8, got 7")]
fn short_transposed_b_panics() {
    // op(B) is 4 x 2, stored as 2 x 4.
    let mut c = vec![0.0; 6];
    Kernels::get().sgemm(
        Transpose::No,
        Transpose::Yes,
        3,
        2,
        4,
        1.0,
        &[0.0; 12],
        4,
        &[0.0; 7],
        4,
        0.0,
        &mut c,
        2,
    );
}

#[test]
#[should_panic(expected = "sgemm: C: expected length between 8 and 9, got 7")]
fn short_strided_c_panics() {
    let mut c = vec![0.0; 7];
    Kernels::get().sgemm(
        Transpose::No,
        Transpose::No,
        3,
        2,
        4,
        1.0,
        &[0.0; 12],
        4,
        &[0.0; 8],
        2,
        0.0,
        &mut c,
        3,
    );
}

#[test]
#[should_panic(expected = "sgemm: A: leading dimension 3 is smaller than the row length 4")]
fn small_leading_dimension_panics() {
    let mut c = vec![0.0; 6];
    Kernels::get().sgemm(
        Transpose::No,
        Transpose::No,
        3,
        2,
        4,
        1.0,
        &[0.0; 12],
        3,
        &[0.0; 8],
        2,
        0.0,
        &mut c,
        2,
    );
}
