//! The fused layers on every ISA against the unfused chains on the same table, bit for bit:
//! ReLU + max pooling forward and backward (`maxpool2d_relu_*`), and convolution, bias, ReLU
//! and max pooling forward (`conv2d_relu_maxpool2d_forward`) on shapes of every convolution
//! path (direct, channel, unfolded), batches across tile boundaries, and LeNet-5's two
//! blocks; values with ties, zeros of both signs, NaN and infinities; the f64 reference of the
//! fused pooling against its unfused chain; a gradient check of the fused pooling; the panics.

mod common;

use common::{all_kernels, cases, random_vec, widen};
use proptest::prelude::*;
use simdnet_kernels::conv::{Conv2dShape, PooledConv2dShape};
use simdnet_kernels::gradcheck::{GradCheck, Tensor};
use simdnet_kernels::maxpool::{scalar, Pool2dShape};
use simdnet_kernels::relu;
use simdnet_kernels::Kernels;

/// `n` values from `seed`; `style` 0: uniform in [-1, 1), 1: a few levels with zeros of both
/// signs (ties, and windows that ReLU turns to all zeros), 2: levels with NaN and infinities.
fn values(n: usize, seed: u64, style: u8) -> Vec<f32> {
    random_vec(n, seed)
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let h = (seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)) >> 59;
            match (style, h) {
                (0, _) => v,
                (1, 0..=3) => -0.0,
                (1, _) => (v * 2.0).round(),
                (_, 0) => f32::NAN,
                (_, 1) => f32::INFINITY,
                (_, 2) => f32::NEG_INFINITY,
                (_, 3) => -0.0,
                _ => (v * 2.0).round(),
            }
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Asserts `got` and `want` are equal element for element, naming the first difference (not
/// printing whole buffers).
#[track_caller]
fn assert_same<T: PartialEq + std::fmt::Debug>(got: &[T], want: &[T], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}: first difference at {i}: {:?} vs {:?}",
            got[i], want[i]
        );
    }
}

/// The unfused ReLU -> max-pool forward and backward on `k`: (pooled, argmax, grad_input).
fn unfused_pool(
    k: &Kernels,
    s: &Pool2dShape,
    x: &[f32],
    g: &[f32],
) -> (Vec<f32>, Vec<u32>, Vec<f32>) {
    let mut a = vec![0.0; x.len()];
    k.relu_forward(x, &mut a);
    let mut y = vec![0.0; s.output_len()];
    let mut at = vec![0; s.output_len()];
    k.maxpool2d_forward(s, &a, &mut y, &mut at);
    let mut ga = vec![0.0; x.len()];
    k.maxpool2d_backward(s, g, &at, &mut ga);
    let mut gx = vec![0.0; x.len()];
    k.relu_backward(&a, &ga, &mut gx);
    (y, at, gx)
}

fn check_pool(s: &Pool2dShape, seed: u64, style: u8) {
    let x = values(s.input_len(), seed, style);
    let g = values(s.output_len(), seed ^ 7, style.min(1));
    for k in all_kernels() {
        let what = format!("{} {s:?} style {style}", k.isa());
        let (want_y, want_at, want_gx) = unfused_pool(&k, s, &x, &g);
        let mut y = vec![f32::NAN; s.output_len()];
        let mut at = vec![u32::MAX; s.output_len()];
        k.maxpool2d_relu_forward(s, &x, &mut y, &mut at);
        assert_same(&bits(&y), &bits(&want_y), &format!("forward {what}"));
        assert_same(&at, &want_at, &format!("argmax {what}"));
        let mut gx = vec![f32::NAN; s.input_len()];
        k.maxpool2d_relu_backward(s, &g, &at, &y, &mut gx);
        assert_same(&bits(&gx), &bits(&want_gx), &format!("backward {what}"));
    }
    // The f64 reference: the fused form is its own unfused chain too.
    let (x64, g64) = (widen(&x), widen(&g));
    let mut a64 = vec![0.0f64; x.len()];
    relu::scalar::forward(&x64, &mut a64);
    let (mut y, mut at) = (vec![0.0f64; s.output_len()], vec![0u32; s.output_len()]);
    scalar::forward(s, &a64, &mut y, &mut at);
    let (mut fy, mut fat) = (vec![0.0f64; s.output_len()], vec![0u32; s.output_len()]);
    scalar::relu_forward(s, &x64, &mut fy, &mut fat);
    assert_same(&fat, &at, &format!("f64 argmax {s:?}"));
    let same = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
    assert!(same(&fy, &y), "f64 forward {s:?}");
    let mut ga = vec![0.0f64; x.len()];
    scalar::backward(s, &g64, &at, &mut ga);
    let mut gx = vec![0.0f64; x.len()];
    relu::scalar::backward(&a64, &ga, &mut gx);
    let mut fgx = vec![0.0f64; x.len()];
    scalar::relu_backward(s, &g64, &fat, &fy, &mut fgx);
    assert!(same(&fgx, &gx), "f64 backward {s:?}");
}

/// A pooling: random windows and strides, or the 2x2 stride-2 path on every width.
fn pool_shape() -> impl Strategy<Value = Pool2dShape> {
    let general = (
        0usize..=3,
        1usize..=4,
        1usize..=3,
        1usize..=3,
        1usize..=3,
        1usize..=3,
    )
        .prop_flat_map(|(n, c, kh, kw, sh, sw)| {
            (kh..=kh + 9, kw..=kw + 9)
                .prop_map(move |(h, w)| Pool2dShape::new(n, c, (h, w), (kh, kw), (sh, sw)))
        });
    let two = (0usize..=3, 1usize..=4, 2usize..=21, 2usize..=41)
        .prop_map(|(n, c, h, w)| Pool2dShape::new(n, c, (h, w), (2, 2), (2, 2)));
    prop_oneof![general, two]
}

/// Convolutions around every path's rule (the channel path wants stride 1, at least 8 output
/// channels and rows up to 16 wide; the direct path stride 1 and `K <= 100`; strides 2 and
/// `K > 100` run unfolded), pooled 2x2 stride 2 or by a random window.
fn pooled_shape() -> impl Strategy<Value = PooledConv2dShape> {
    (
        (0usize..=7, 1usize..=6, 1usize..=20),
        (1usize..=5, 0usize..=2, 1usize..=2),
        (2usize..=12, 2usize..=20),
        prop_oneof![
            Just(((2, 2), (2, 2))),
            Just(((3, 2), (1, 2))),
            Just(((1, 1), (1, 1)))
        ],
    )
        .prop_filter_map("a pooling larger than the output", |(n, k, size, pool)| {
            let ((batch, ci, co), (kernel, pad, stride), (oh, ow)) = (n, k, size);
            let (in_h, in_w) = ((oh + kernel - 1) * stride, (ow + kernel - 1) * stride);
            let conv = Conv2dShape::new(
                batch,
                ci,
                co,
                (
                    in_h.saturating_sub(2 * pad).max(1),
                    in_w.saturating_sub(2 * pad).max(1),
                ),
                (kernel, kernel),
            )
            .with_padding(pad, pad)
            .with_stride(stride, stride);
            PooledConv2dShape::try_new(conv, pool.0, pool.1).ok()
        })
}

fn check_conv(s: &PooledConv2dShape, seed: u64, bias: bool) {
    let c = &s.conv;
    let x = random_vec(c.input_len(), seed);
    let w = random_vec(c.weight_len(), seed ^ 1);
    let b = random_vec(c.out_channels, seed ^ 2);
    let b = bias.then_some(&b[..]);
    for k in all_kernels() {
        let what = format!("{} {s:?} bias {bias}", k.isa());
        let mut z = vec![0.0; c.output_len()];
        let mut ws = vec![0.0; c.workspace_len()];
        k.conv2d_forward(c, &x, &w, b, &mut z, &mut ws);
        k.relu_forward_in_place(&mut z);
        let mut want = vec![0.0; s.pool.output_len()];
        let mut want_at = vec![0; s.pool.output_len()];
        k.maxpool2d_forward(&s.pool, &z, &mut want, &mut want_at);
        let mut y = vec![f32::NAN; s.pool.output_len()];
        let mut at = vec![u32::MAX; s.pool.output_len()];
        let mut ws = vec![f32::NAN; s.workspace_len()];
        k.conv2d_relu_maxpool2d_forward(s, &x, &w, b, &mut y, &mut at, &mut ws);
        assert_same(&bits(&y), &bits(&want), &format!("pooled {what}"));
        assert_same(&at, &want_at, &format!("argmax {what}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(96)))]

    #[test]
    fn relu_pool_matches_the_unfused_chain(s in pool_shape(), seed: u64, style in 0u8..3) {
        check_pool(&s, seed, style);
    }

    #[test]
    fn conv_relu_pool_matches_the_unfused_chain(s in pooled_shape(), seed: u64, bias: bool) {
        check_conv(&s, seed, bias);
    }
}

/// LeNet-5's blocks, and a block every table runs unfolded, at batches across every tile
/// size (1 image, 5 images, the unfolded path's balanced tiles) and at the training batch.
#[test]
fn lenet_blocks_match_the_unfused_chain() {
    for batch in [1, 2, 5, 6, 7, 13, 64] {
        let conv1 = Conv2dShape::new(batch, 1, 6, (28, 28), (5, 5)).with_padding(2, 2);
        let conv2 = Conv2dShape::new(batch, 6, 16, (14, 14), (5, 5));
        // Rows too wide for the channel path and K = 150: unfolded on every table, in
        // balanced tiles of one and two images.
        let wide = Conv2dShape::new(batch, 6, 16, (24, 24), (5, 5));
        for conv in [conv1, conv2, wide] {
            check_conv(
                &PooledConv2dShape::new(conv, (2, 2), (2, 2)),
                batch as u64,
                true,
            );
        }
    }
}

/// A workspace for a batch serves a smaller batch (its first `workspace_len` elements).
#[test]
fn workspace_shrinks_with_the_batch() {
    let conv = |n| Conv2dShape::new(n, 6, 16, (14, 14), (5, 5));
    let len = |n| PooledConv2dShape::new(conv(n), (2, 2), (2, 2)).workspace_len();
    for n in 1..64 {
        assert!(len(n) <= len(n + 1), "batch {n}");
    }
}

/// The fused pooling's gradient (the f64 reference) against central differences, on distinct
/// inputs (no ties) with none within the checker's step of ReLU's kink.
#[test]
fn relu_pool_gradient_checks() {
    let s = Pool2dShape::new(2, 3, (6, 7), (2, 2), (2, 2));
    let n = s.input_len();
    let noise = random_vec(n, 11);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| noise[a].total_cmp(&noise[b]));
    let mut x = vec![0.0f64; n];
    for (rank, &i) in order.iter().enumerate() {
        x[i] = rank as f64 * 1e-3 - 0.1 + 5e-4; // half of them negative, none at 0
    }
    let r = widen(&random_vec(s.output_len(), 12)); // loss = sum(r * maxpool(relu(x)))
    let (mut y, mut at) = (vec![0.0; s.output_len()], vec![0u32; s.output_len()]);
    scalar::relu_forward(&s, &x, &mut y, &mut at);
    let mut gx = vec![0.0; n];
    scalar::relu_backward(&s, &r, &at, &y, &mut gx);
    assert!(gx.iter().any(|&g| g != 0.0) && y.contains(&0.0));
    let mut tensors = vec![Tensor::new("x", vec![n], x, gx)];
    let report = GradCheck::default().run(&mut tensors, |t| {
        scalar::relu_forward(&s, &t[0].values, &mut y, &mut at);
        y.iter().zip(&r).map(|(y, r)| y * r).sum()
    });
    assert!(report.passed(), "{s:?}\n{report}");
}

#[test]
#[should_panic(expected = "is not the convolution's output")]
fn disagreeing_halves_are_refused() {
    let conv = Conv2dShape::new(2, 1, 6, (28, 28), (5, 5)).with_padding(2, 2);
    let mut s = PooledConv2dShape::new(conv, (2, 2), (2, 2));
    s.pool.in_h = 27;
    let k = Kernels::get();
    let (x, w) = (vec![0.0; conv.input_len()], vec![0.0; conv.weight_len()]);
    let (mut y, mut at) = (vec![0.0; 2 * 6 * 14 * 14], vec![0; 2 * 6 * 14 * 14]);
    let mut ws = vec![0.0; 1 << 16];
    k.conv2d_relu_maxpool2d_forward(&s, &x, &w, None, &mut y, &mut at, &mut ws);
}

#[test]
#[should_panic(expected = "conv2d_relu_maxpool2d_forward: pooled: expected length 1176, got 1175")]
fn a_short_output_is_refused() {
    let conv = Conv2dShape::new(1, 1, 6, (28, 28), (5, 5)).with_padding(2, 2);
    let s = PooledConv2dShape::new(conv, (2, 2), (2, 2));
    let k = Kernels::get();
    let (x, w) = (vec![0.0; conv.input_len()], vec![0.0; conv.weight_len()]);
    let (mut y, mut at) = (vec![0.0; 1175], vec![0; 1176]);
    let mut ws = vec![0.0; s.workspace_len()];
    k.conv2d_relu_maxpool2d_forward(&s, &x, &w, None, &mut y, &mut at, &mut ws);
}

#[test]
#[should_panic(expected = "maxpool2d_relu_backward: output: expected length 12, got 11")]
fn a_short_pooled_output_is_refused_by_the_backward() {
    let s = Pool2dShape::new(1, 3, (4, 4), (2, 2), (2, 2));
    let (g, at, y) = (vec![0.0; 12], vec![0; 12], vec![0.0; 11]);
    let mut gx = vec![0.0; 48];
    Kernels::get().maxpool2d_relu_backward(&s, &g, &at, &y, &mut gx);
}

#[test]
#[should_panic(expected = "empty output")]
fn a_pooling_larger_than_the_output_is_refused() {
    let conv = Conv2dShape::new(1, 1, 6, (3, 3), (3, 3));
    PooledConv2dShape::new(conv, (2, 2), (2, 2));
}
