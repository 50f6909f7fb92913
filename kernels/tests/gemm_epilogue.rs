//! `sgemm_with` (GEMM with a bias + ReLU store epilogue) on every ISA this CPU supports
//! against the unfused chain on the same table: `sgemm`, then `bias_add` on each row of C,
//! then `relu_forward_in_place`. The contract is bit-identity, so every element of the
//! buffer (C, its padding and a trail after it, which hold sentinels) is compared by its bits;
//! the one exception is NaN, whose payload Rust does not promise (any NaN matches any NaN).
//!
//! Shapes aim at what the epilogue must get right: every tile edge (masked or copied edge
//! tiles), k blocks (the epilogue only on the last one), `k == 0`, the `A B^T` dot-product
//! path with few rows or columns (several of its k blocks too), and operands read in place
//! or packed (strides and ldb a multiple of 64 floats).

mod common;

use common::{cases, random_vec};
use proptest::prelude::*;
use simdnet_kernels::gemm::{self, Epilogue, Transpose};
use simdnet_kernels::{Isa, Kernels};

const SENTINEL_BITS: u32 = 0x7fc0_dead;
/// Elements after the end of the C slice (they must keep the sentinel).
const TRAIL: usize = 7;

#[derive(Clone, Copy, Debug)]
struct Case {
    ta: Transpose,
    tb: Transpose,
    m: usize,
    n: usize,
    k: usize,
    pad_a: usize,
    pad_b: usize,
    pad_c: usize,
    alpha: f32,
    beta: f32,
    bias: bool,
    relu: bool,
    seed: u64,
}

/// A `rows x cols` matrix with leading dimension `cols + pad` (whole rows), NaN padding.
fn matrix(rows: usize, cols: usize, pad: usize, seed: u64) -> (Vec<f32>, usize) {
    let ld = cols + pad;
    if rows == 0 || cols == 0 {
        return (Vec::new(), ld.max(1));
    }
    let values = random_vec(rows * ld, seed);
    let m = values
        .iter()
        .enumerate()
        .map(|(i, &v)| if i % ld < cols { v } else { f32::NAN })
        .collect();
    (m, ld)
}

/// Bits equal, or both NaN.
fn same(x: f32, y: f32) -> bool {
    x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
}

/// Runs `c` fused and unfused on `kernels` from the same operands (`bias` when the case has
/// one) and compares the whole C buffer bit for bit.
#[allow(clippy::too_many_arguments)]
#[track_caller]
fn check_with(
    kernels: &Kernels,
    c: &Case,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    bias: &[f32],
) {
    let Case {
        ta, tb, m, n, k, ..
    } = *c;
    let ldc = n + c.pad_c;
    let c_len = if m == 0 || n == 0 { 0 } else { m * ldc };
    let old = random_vec(c_len, c.seed ^ 0xaaaa);
    let mut start = vec![f32::from_bits(SENTINEL_BITS); c_len + TRAIL];
    for (idx, x) in start.iter_mut().enumerate().take(c_len) {
        if idx % ldc < n {
            // Never read when beta == 0: NaN shows if it were.
            *x = if c.beta == 0.0 { f32::NAN } else { old[idx] };
        }
    }

    let mut want = start.clone();
    kernels.sgemm(
        ta,
        tb,
        m,
        n,
        k,
        c.alpha,
        a,
        lda,
        b,
        ldb,
        c.beta,
        &mut want[..c_len],
        ldc,
    );
    if m > 0 && n > 0 {
        for row in want[..c_len].chunks_mut(ldc) {
            let row = &mut row[..n];
            if c.bias {
                kernels.bias_add(row, bias, 1, 1);
            }
            if c.relu {
                kernels.relu_forward_in_place(row);
            }
        }
    }

    let mut got = start;
    let epilogue = Epilogue {
        bias: c.bias.then_some(bias),
        relu: c.relu,
    };
    kernels.sgemm_with(
        ta,
        tb,
        m,
        n,
        k,
        c.alpha,
        a,
        lda,
        b,
        ldb,
        c.beta,
        &mut got[..c_len],
        ldc,
        &epilogue,
    );
    for (idx, (&g, &w)) in got.iter().zip(&want).enumerate() {
        assert!(
            same(g, w),
            "{}: index {idx} (row {}, col {}): fused {g:e} ({:#010x}), unfused {w:e} ({:#010x}); {c:?}",
            kernels.isa(),
            idx / ldc.max(1),
            idx % ldc.max(1),
            g.to_bits(),
            w.to_bits(),
        );
    }
}

/// `check_with` on random operands (values in [-1, 1), so sums and biases take both signs).
#[track_caller]
fn check_case(kernels: &Kernels, c: &Case) {
    let (ar, ac) = c.ta.stored_dims(c.m, c.k);
    let (br, bc) = c.tb.stored_dims(c.k, c.n);
    let (a, lda) = matrix(ar, ac, c.pad_a, c.seed);
    let (b, ldb) = matrix(br, bc, c.pad_b, c.seed ^ 0x5555);
    let bias = random_vec(c.n, c.seed ^ 0x3333);
    check_with(kernels, c, &a, lda, &b, ldb, &bias);
}

const TRANSPOSES: [(Transpose, Transpose); 4] = [
    (Transpose::No, Transpose::No),
    (Transpose::No, Transpose::Yes),
    (Transpose::Yes, Transpose::No),
    (Transpose::Yes, Transpose::Yes),
];

/// The four epilogues: (bias, relu).
const EPILOGUES: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

/// Small shapes on every table: m and n through every tail of the register tiles, k from 0
/// (C = beta C, then the epilogue) past a few vectors, each transpose pair and epilogue.
#[test]
fn small_shapes() {
    const BETAS: [f32; 3] = [0.0, 1.0, -1.5];
    let ms: Vec<usize> = if cfg!(target_arch = "aarch64") {
        vec![0, 1, 3, 7, 8, 9, 13]
    } else {
        (0..=17).collect()
    };
    for kernels in Kernels::all() {
        let mut seed = 0u64;
        for (ta, tb) in TRANSPOSES {
            for &m in &ms {
                for n in [0, 1, 2, 5, 8, 11, 12, 13, 16, 17, 23, 33, 47, 48, 49] {
                    for k in [0, 1, 2, 7, 16] {
                        seed += 1;
                        let (bias, relu) = EPILOGUES[(seed % 4) as usize];
                        let case = Case {
                            ta,
                            tb,
                            m,
                            n,
                            k,
                            pad_a: (m + k) % 3,
                            pad_b: (n + k) % 2,
                            pad_c: (m + n) % 3,
                            alpha: if seed.is_multiple_of(5) { 1.0 } else { 0.75 },
                            beta: BETAS[(seed % 3) as usize],
                            bias,
                            relu,
                            seed,
                        };
                        check_case(&kernels, &case);
                    }
                }
            }
        }
    }
}

/// Signed zeros and NaN through the epilogue: A of zeros with alpha -1 makes every product
/// -0.0; the bias holds +0.0, -0.0, NaN, negative and positive values, so `x + bias` is
/// -0.0 (ReLU keeps it), +0.0, NaN (kept) and both signs.
#[test]
fn signed_zeros_and_nan() {
    for kernels in Kernels::all() {
        for (ta, tb) in TRANSPOSES {
            for (m, n, k) in [(5, 9, 3), (9, 50, 70), (3, 20, 300)] {
                let (ar, ac) = ta.stored_dims(m, k);
                let (br, bc) = tb.stored_dims(k, n);
                let a = vec![0.0f32; ar * ac];
                let (b, ldb) = matrix(br, bc, 0, 11);
                let bias: Vec<f32> = (0..n)
                    .map(|j| [0.0, -0.0, f32::NAN, -0.5, 0.25][j % 5])
                    .collect();
                for (relu, beta) in [(true, 0.0), (false, 0.0), (true, 1.0)] {
                    let case = Case {
                        ta,
                        tb,
                        m,
                        n,
                        k,
                        pad_a: 0,
                        pad_b: 0,
                        pad_c: 1,
                        alpha: -1.0,
                        beta,
                        bias: true,
                        relu,
                        seed: 5,
                    };
                    check_with(&kernels, &case, &a, ac, &b, ldb, &bias);
                }
            }
        }
    }
}

/// The sizes where blocking changes on every SIMD ISA: (kc, mc, nc).
fn block_edges() -> Vec<(usize, usize, usize)> {
    Isa::supported()
        .into_iter()
        .filter_map(gemm::blocking_for_tests)
        .map(|b| (b.kc, b.mc, b.nc))
        .collect()
}

/// MR and NR of every SIMD ISA, one and two tiles, each minus one, itself and plus one.
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

fn small_dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => 0usize..=3,
        8 => 1usize..=40,
        1 => 41usize..=100,
        3 => prop::sample::select(tile_edges()),
    ]
}

/// Which dimension, if any, is pushed to a block boundary.
#[derive(Clone, Copy, Debug)]
enum Big {
    None,
    K,
    M,
    N,
    /// `A B^T` with few rows or columns and k long enough for the dot-product path, up to
    /// several of its k blocks.
    Dot,
}

fn scalar_value() -> impl Strategy<Value = f32> {
    prop_oneof![Just(0.0f32), Just(1.0f32), -2.0f32..2.0]
}

fn transpose() -> impl Strategy<Value = Transpose> {
    prop_oneof![Just(Transpose::No), Just(Transpose::Yes)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// Random shapes (tails, tile edges, kc / mc / nc plus or minus one, the dot path), both
    /// transposes, strided operands, alpha and beta including 0 and 1, each epilogue.
    #[test]
    fn fused_matches_unfused(
        ta in transpose(),
        tb in transpose(),
        small in (small_dim(), small_dim(), small_dim()),
        big in prop_oneof![
            4 => Just(Big::None), 1 => Just(Big::K), 1 => Just(Big::M),
            1 => Just(Big::N), 2 => Just(Big::Dot),
        ],
        edge in 0usize..3,
        which_isa in 0usize..8,
        dot_k in 64usize..1200,
        dot_rows in any::<bool>(),
        pads in (0usize..4, 0usize..4, 0usize..4),
        ldb_multiple_of_64 in prop::bool::weighted(0.2),
        alpha in scalar_value(),
        beta in scalar_value(),
        epilogue in 0usize..4,
        seed in any::<u64>(),
    ) {
        let (mut m, mut n, mut k) = small;
        let (mut ta, mut tb) = (ta, tb);
        let edges = block_edges();
        if let Some(&(kc, mc, nc)) = edges.get(which_isa % edges.len().max(1)) {
            let near = |size: usize| size + edge - 1;
            match big {
                Big::None => {}
                Big::K => { k = near(kc); m = m.min(20); n = n.min(40); }
                Big::M => { m = near(mc); n = n.min(40); k = kc; }
                Big::N => { n = near(nc); m = m.min(13); k = k.min(60); }
                Big::Dot => {
                    (ta, tb) = (Transpose::No, Transpose::Yes);
                    k = dot_k;
                    // Few rows (any columns) or few columns (any rows).
                    if dot_rows { m = m.clamp(1, 24); n = n.clamp(1, 60); }
                    else { n = n.clamp(1, 32); m = m.clamp(1, 60); }
                }
            }
        }
        let stored_b_cols = tb.stored_dims(k, n).1;
        let pad_b = if ldb_multiple_of_64 { (64 - stored_b_cols % 64) % 64 } else { pads.1 };
        let (bias, relu) = EPILOGUES[epilogue];
        let case = Case {
            ta, tb, m, n, k, pad_a: pads.0, pad_b, pad_c: pads.2, alpha, beta, bias, relu, seed,
        };
        for kernels in Kernels::all() {
            check_case(&kernels, &case);
        }
    }
}

/// LeNet-5's fully connected forward shapes at batch 64 (X W^T + b, then ReLU), and their
/// batch-1 forms, on every table.
#[test]
fn lenet_fc_shapes() {
    for kernels in Kernels::all() {
        for (s, &(m, k, n)) in [
            (64, 400, 120),
            (64, 120, 84),
            (64, 84, 10),
            (1, 400, 120),
            (1, 84, 10),
        ]
        .iter()
        .enumerate()
        {
            for (bias, relu) in EPILOGUES {
                let case = Case {
                    ta: Transpose::No,
                    tb: Transpose::Yes,
                    m,
                    n,
                    k,
                    pad_a: 0,
                    pad_b: 0,
                    pad_c: 0,
                    alpha: 1.0,
                    beta: 0.0,
                    bias,
                    relu,
                    seed: s as u64,
                };
                check_case(&kernels, &case);
            }
        }
    }
}

/// `sgemm_with` on an `m x n` C with a bias of `bias_len` elements and ReLU.
fn run_with_bias(kernels: &Kernels, m: usize, n: usize, bias_len: usize) {
    let k = 3;
    let a = vec![1.0f32; m * k];
    let b = vec![1.0f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let bias = vec![0.5f32; bias_len];
    let epilogue = Epilogue {
        bias: Some(&bias),
        relu: true,
    };
    kernels.sgemm_with(
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
        &epilogue,
    );
}

#[test]
#[should_panic(expected = "sgemm_with: bias: expected length 5, got 4")]
fn short_bias_panics() {
    run_with_bias(Kernels::get(), 3, 5, 4);
}

#[test]
#[should_panic(expected = "sgemm_with: bias: expected length 5, got 6")]
fn long_bias_panics() {
    run_with_bias(Kernels::get(), 3, 5, 6);
}

#[test]
#[should_panic(expected = "sgemm_with: bias: expected length 0, got 1")]
fn bias_for_empty_n_panics() {
    run_with_bias(Kernels::get(), 3, 0, 1);
}

#[test]
#[should_panic(expected = "sgemm_with: C: expected length 15, got 14")]
fn short_c_panics_with_its_own_name() {
    let kernels = Kernels::get();
    let (a, b, mut c) = (vec![0.0f32; 9], vec![0.0f32; 15], vec![0.0f32; 14]);
    kernels.sgemm_with(
        Transpose::No,
        Transpose::No,
        3,
        5,
        3,
        1.0,
        &a,
        3,
        &b,
        5,
        0.0,
        &mut c,
        5,
        &Epilogue::NONE,
    );
}
