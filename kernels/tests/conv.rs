//! Convolution on every ISA against the direct-loop reference in f64, on every path the table
//! has (channel path on AVX-512 and AVX2, direct, and im2col + the table's GEMM), with sweeps
//! across each path's thresholds; im2col/col2im against their definition and each other;
//! gradient checks of the reference's backward passes; the panics.
//!
//! Tolerance: the inputs are f32 values, so the only error is f32 rounding in the sums. Each
//! output is a sum of `n` products (plus the bias), added in some order by GEMM and col2im;
//! whatever the order, `|fl(sum) - sum| <= gamma_n * sum |terms|` with `gamma_n = n u / (1 - n u)`,
//! `u = 2^-24` (Higham, Accuracy and Stability, 3.1). The test computes `sum |terms|` exactly
//! enough by running the reference in f64 on `|input|`, `|weight|`, `|bias|`, `|grad_output|`,
//! and allows `gamma_n` times that, `n` being the most terms any output can have.

mod common;

use common::{all_kernels, cases, random_vec, widen};
use proptest::prelude::*;
use simdnet_kernels::conv::rules::{
    self, CHANNEL_MAX_KERNEL, CHANNEL_MAX_OUT_W, CHANNEL_MIN_OUT_CHANNELS, DIRECT_MAX_K,
};
use simdnet_kernels::conv::{col2im, im2col, scalar, Conv2dShape};
use simdnet_kernels::gradcheck::{GradCheck, Tensor};
use simdnet_kernels::{Isa, Kernels};

fn gamma(n: usize) -> f64 {
    let nu = n as f64 * f32::EPSILON as f64 / 2.0;
    nu / (1.0 - nu)
}

fn abs(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| x.abs()).collect()
}

/// Asserts `|got - want| <= gamma(terms) * magnitude` element-wise (plus the smallest normal
/// f32, for results that underflow).
#[track_caller]
fn assert_within(what: &str, got: &[f32], want: &[f64], magnitude: &[f64], terms: usize) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let g = gamma(terms.max(1));
    for (i, ((&got, &want), &mag)) in got.iter().zip(want).zip(magnitude).enumerate() {
        let bound = g * mag + f32::MIN_POSITIVE as f64;
        let err = (got as f64 - want).abs();
        assert!(
            err <= bound,
            "{what}: index {i}: got {got:e}, want {want:e}, |diff| {err:e} > bound {bound:e}"
        );
    }
}

/// Random inputs of a shape: (input, weight, bias, grad_output) in f32.
fn data(s: &Conv2dShape, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    (
        random_vec(s.input_len(), seed),
        random_vec(s.weight_len(), seed ^ 1),
        random_vec(s.out_channels, seed ^ 2),
        random_vec(s.output_len(), seed ^ 3),
    )
}

/// Forward on every ISA against the f64 reference.
fn check_forward(s: &Conv2dShape, seed: u64, with_bias: bool) {
    let (x, w, b, _) = data(s, seed);
    let (xd, wd, bd) = (widen(&x), widen(&w), widen(&b));
    let mut want = vec![0.0; s.output_len()];
    scalar::forward(s, &xd, &wd, with_bias.then_some(&bd[..]), &mut want);
    let mut mag = vec![0.0; s.output_len()];
    scalar::forward(
        s,
        &abs(&xd),
        &abs(&wd),
        with_bias.then_some(&abs(&bd)[..]),
        &mut mag,
    );
    for k in all_kernels() {
        // NaN in the output and workspace: the forward must overwrite both.
        let mut out = vec![f32::NAN; s.output_len()];
        let mut ws = vec![f32::NAN; s.workspace_len()];
        k.conv2d_forward(s, &x, &w, with_bias.then_some(&b[..]), &mut out, &mut ws);
        let what = format!("{} forward {s:?}", k.isa());
        assert_within(&what, &out, &want, &mag, s.col_rows() + 1);
    }
}

/// Backward on every ISA against the f64 reference, with and without grad_input / grad_bias.
fn check_backward(s: &Conv2dShape, seed: u64, want_input: bool, want_bias: bool) {
    let (x, w, _, dy) = data(s, seed);
    let (xd, wd, dyd) = (widen(&x), widen(&w), widen(&dy));
    let (ax, aw, ady) = (abs(&xd), abs(&wd), abs(&dyd));
    let mut gi_want = vec![0.0; s.input_len()];
    let mut gi_mag = gi_want.clone();
    scalar::backward_input(s, &wd, &dyd, &mut gi_want);
    scalar::backward_input(s, &aw, &ady, &mut gi_mag);
    let mut gw_want = vec![0.0; s.weight_len()];
    let mut gw_mag = gw_want.clone();
    scalar::backward_weight(s, &xd, &dyd, &mut gw_want);
    scalar::backward_weight(s, &ax, &ady, &mut gw_mag);
    let mut gb_want = vec![0.0; s.out_channels];
    let mut gb_mag = gb_want.clone();
    scalar::backward_bias(s, &dyd, &mut gb_want);
    scalar::backward_bias(s, &ady, &mut gb_mag);
    let plane = s.out_h() * s.out_w();
    for k in all_kernels() {
        let mut gi = vec![f32::NAN; s.input_len()];
        let mut gw = vec![f32::NAN; s.weight_len()];
        let mut gb = vec![f32::NAN; s.out_channels];
        let mut ws = vec![f32::NAN; s.workspace_len()];
        k.conv2d_backward(
            s,
            &x,
            &w,
            &dy,
            want_input.then_some(&mut gi[..]),
            &mut gw,
            want_bias.then_some(&mut gb[..]),
            &mut ws,
        );
        let what = |t: &str| format!("{} {t} {s:?}", k.isa());
        let input_terms = s.out_channels * s.kernel_h * s.kernel_w;
        if want_input {
            assert_within(&what("grad_input"), &gi, &gi_want, &gi_mag, input_terms);
        } else {
            assert!(
                gi.iter().all(|v| v.is_nan()),
                "{}: touched",
                what("grad_input")
            );
        }
        assert_within(
            &what("grad_weight"),
            &gw,
            &gw_want,
            &gw_mag,
            s.batch * plane,
        );
        if want_bias {
            assert_within(&what("grad_bias"), &gb, &gb_want, &gb_mag, s.batch * plane);
        } else {
            assert!(
                gb.iter().all(|v| v.is_nan()),
                "{}: touched",
                what("grad_bias")
            );
        }
    }
}

/// One axis: (kernel, stride, pad, dilation, in) with a non-empty output; `in` may be 0 when the
/// padding alone covers the dilated kernel.
fn axis() -> impl Strategy<Value = (usize, usize, usize, usize, usize)> {
    (1usize..=5, 1usize..=3, 0usize..=2, 1usize..=3, 0usize..=9).prop_map(|(k, s, p, d, extra)| {
        let span = d * (k - 1) + 1;
        (k, s, p, d, span.saturating_sub(2 * p) + extra)
    })
}

fn shape() -> impl Strategy<Value = Conv2dShape> {
    (0usize..=3, 0usize..=4, 0usize..=5, axis(), axis()).prop_map(|(n, ci, co, h, w)| {
        Conv2dShape::new(n, ci, co, (h.4, w.4), (h.0, w.0))
            .with_stride(h.1, w.1)
            .with_padding(h.2, w.2)
            .with_dilation(h.3, w.3)
    })
}

/// A shape of the direct path: stride 1, dilation 1, kernels 1..=7, paddings 0..=3, output
/// widths 1..=40 (below, at and above every ISA's vector width and the forward blocks: 4, 8,
/// 16, 32), 1..=13 output channels (whole channel blocks and remainders), and as many input
/// channels as keep `K` within [`DIRECT_MAX_K`].
fn direct_shape() -> impl Strategy<Value = Conv2dShape> {
    let kernel = || (1usize..=7, 0usize..=3);
    (
        0usize..=3,
        1usize..=13,
        kernel(),
        kernel(),
        1usize..=5,
        1usize..=40,
        1usize..=3,
    )
        .prop_map(|(n, co, (kh, ph), (kw, pw), oh, ow, ci)| {
            let ci = ci.min(DIRECT_MAX_K / (kh * kw)).max(1);
            let in_h = (oh + kh - 1).saturating_sub(2 * ph);
            let in_w = (ow + kw - 1).saturating_sub(2 * pw);
            Conv2dShape::new(n, ci, co, (in_h, in_w), (kh, kw)).with_padding(ph, pw)
        })
}

/// A stride-1 shape around the channel path's rule: 1..=40 output channels (below the rule's
/// 8, partial groups of 16 and whole ones), 1..=7 input channels, kernels 1..=7, paddings
/// 0..=3, output rows 1..=20 wide (the rule takes up to 16) and 1..=9 high (every forward
/// block height and its tails).
fn channel_shape() -> impl Strategy<Value = Conv2dShape> {
    let kernel = || (1usize..=7, 0usize..=3);
    (
        (0usize..=3, 1usize..=40, 1usize..=7),
        kernel(),
        kernel(),
        1usize..=9,
        1usize..=20,
    )
        .prop_map(|((n, co, ci), (kh, ph), (kw, pw), oh, ow)| {
            let in_h = (oh + kh - 1).saturating_sub(2 * ph);
            let in_w = (ow + kw - 1).saturating_sub(2 * pw);
            Conv2dShape::new(n, ci, co, (in_h, in_w), (kh, kw)).with_padding(ph, pw)
        })
}

/// The ISAs whose tables have the channel path, where this architecture builds them.
const CHANNEL_ISAS: &[Isa] = if cfg!(target_arch = "x86_64") {
    &[Isa::Avx512, Isa::Avx2]
} else {
    &[]
};

/// Whether every table of [`CHANNEL_ISAS`] runs `s` on the channel path (true where there are
/// none: then no table has the path to take).
fn channel_tables_take(s: &Conv2dShape) -> bool {
    CHANNEL_ISAS
        .iter()
        .all(|&isa| rules::takes_channel_path(s, isa))
}

/// The channel path's rule for a stride-1, dilation-1 shape with kernels up to 7.
fn expect_channel_path(s: &Conv2dShape) -> bool {
    s.out_channels >= CHANNEL_MIN_OUT_CHANNELS && s.out_w() <= CHANNEL_MAX_OUT_W
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(96)))]

    #[test]
    fn channel_path_forward_matches_reference(
        s in channel_shape(), seed in any::<u64>(), bias in any::<bool>()
    ) {
        for &isa in CHANNEL_ISAS {
            prop_assert_eq!(rules::takes_channel_path(&s, isa), expect_channel_path(&s));
        }
        prop_assert!(!rules::takes_channel_path(&s, Isa::Scalar) && !rules::takes_channel_path(&s, Isa::Neon));
        check_forward(&s, seed, bias);
    }

    #[test]
    fn channel_path_backward_matches_reference(
        s in channel_shape(),
        seed in any::<u64>(),
        want_input in any::<bool>(),
        want_bias in any::<bool>(),
    ) {
        for &isa in CHANNEL_ISAS {
            prop_assert_eq!(rules::takes_channel_path(&s, isa), expect_channel_path(&s));
        }
        check_backward(&s, seed, want_input, want_bias);
    }

    #[test]
    fn direct_forward_matches_reference(
        s in direct_shape(), seed in any::<u64>(), bias in any::<bool>()
    ) {
        prop_assert!(rules::is_direct(&s), "{:?}", s);
        check_forward(&s, seed, bias);
    }

    #[test]
    fn direct_backward_matches_reference(
        s in direct_shape(),
        seed in any::<u64>(),
        want_input in any::<bool>(),
        want_bias in any::<bool>(),
    ) {
        prop_assert!(rules::is_direct(&s), "{:?}", s);
        check_backward(&s, seed, want_input, want_bias);
    }

    #[test]
    fn forward_matches_direct_reference(s in shape(), seed in any::<u64>(), bias in any::<bool>()) {
        check_forward(&s, seed, bias);
    }

    #[test]
    fn backward_matches_direct_reference(
        s in shape(), seed in any::<u64>(), want_input in any::<bool>(), want_bias in any::<bool>()
    ) {
        check_backward(&s, seed, want_input, want_bias);
    }

    /// im2col is its definition; col2im is its adjoint (<im2col x, c> = <x, col2im c>) and adds.
    #[test]
    fn im2col_and_col2im_are_adjoint(s in shape(), seed in any::<u64>()) {
        let x = widen(&random_vec(s.image_len(), seed));
        let c = widen(&random_vec(s.col_len(), seed ^ 7));
        let mut cols = vec![f64::NAN; s.col_len()];
        im2col(&s, &x, &mut cols);
        let (oh, ow) = (s.out_h(), s.out_w());
        for ci in 0..s.in_channels {
            for ki in 0..s.kernel_h {
                for kj in 0..s.kernel_w {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let row = (ci * s.kernel_h + ki) * s.kernel_w + kj;
                            let iy = (oy * s.stride_h + ki * s.dilation_h) as isize - s.pad_h as isize;
                            let ix = (ox * s.stride_w + kj * s.dilation_w) as isize - s.pad_w as isize;
                            let inside = (0..s.in_h as isize).contains(&iy) && (0..s.in_w as isize).contains(&ix);
                            let want = if inside {
                                x[(ci * s.in_h + iy as usize) * s.in_w + ix as usize]
                            } else {
                                0.0
                            };
                            prop_assert_eq!(cols[row * oh * ow + oy * ow + ox], want);
                        }
                    }
                }
            }
        }
        let start = widen(&random_vec(s.image_len(), seed ^ 9));
        let mut folded = start.clone();
        col2im(&s, &c, &mut folded);
        let lhs: f64 = cols.iter().zip(&c).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.iter().zip(folded.iter().zip(&start)).map(|(a, (f, s0))| a * (f - s0)).sum();
        let scale: f64 = cols.iter().zip(&c).map(|(a, b)| (a * b).abs()).sum();
        prop_assert!((lhs - rhs).abs() <= 1e-12 * (1.0 + scale), "{} vs {}", lhs, rhs);
    }
}

fn conv1(batch: usize) -> Conv2dShape {
    Conv2dShape::new(batch, 1, 6, (28, 28), (5, 5)).with_padding(2, 2)
}

fn conv2(batch: usize) -> Conv2dShape {
    Conv2dShape::new(batch, 6, 16, (14, 14), (5, 5))
}

#[test]
fn output_size_is_pytorchs_formula() {
    assert_eq!((conv1(1).out_h(), conv1(1).out_w()), (28, 28));
    assert_eq!((conv2(1).out_h(), conv2(1).out_w()), (10, 10));
    // (7 + 2*1 - 2*(3-1) - 1) / 2 + 1 = 3; (8 + 0 - 1*(2-1) - 1) / 3 + 1 = 3.
    let s = Conv2dShape::new(1, 1, 1, (7, 8), (3, 2))
        .with_stride(2, 3)
        .with_padding(1, 0)
        .with_dilation(2, 1);
    assert_eq!((s.out_h(), s.out_w()), (3, 3));
    assert_eq!(s.workspace_len(), 6 * 9);
    assert_eq!((s.input_len(), s.weight_len(), s.output_len()), (56, 6, 9));
}

#[test]
fn lenet_shapes_match_reference() {
    let batch = if cfg!(target_arch = "aarch64") { 2 } else { 4 };
    for (i, s) in [conv1(batch), conv2(batch)].iter().enumerate() {
        check_forward(s, 10 + i as u64, true);
        // conv1 is a first layer: no input gradient.
        check_backward(s, 20 + i as u64, i == 1, true);
    }
}

/// Batches split into tiles of several images: fewer images than a tile, a multiple of the
/// tile, and uneven splits (tiles differing by one image), forward and backward; tiles set by
/// the output width (conv2, a strided layer) and by the workspace bound (a layer with 1600
/// column rows and 4 output pixels).
#[test]
fn tiles_of_several_images_match_reference() {
    let strided = |batch| {
        Conv2dShape::new(batch, 3, 4, (9, 9), (3, 3))
            .with_stride(2, 2)
            .with_padding(1, 1)
    };
    let deep = |batch| Conv2dShape::new(batch, 64, 2, (6, 6), (5, 5));
    assert_eq!(rules::images_per_tile(&conv2(64)), 6);
    assert_eq!(rules::images_per_tile(&strided(64)), 21);
    assert_eq!(rules::images_per_tile(&deep(64)), 20);
    assert_eq!(rules::images_per_tile(&conv1(64)), 1);
    let shapes = [
        conv2(3),
        conv2(6),
        conv2(13),
        strided(2),
        strided(21),
        strided(43),
        deep(5),
        deep(41),
    ];
    for (i, s) in shapes.iter().enumerate() {
        assert!(rules::images_per_tile(s) > 1, "{s:?}");
        check_forward(s, 60 + i as u64, i.is_multiple_of(2));
        check_backward(s, 70 + i as u64, true, i % 2 == 1);
    }
    check_backward(&conv2(13), 80, false, true);
}

/// The workspace grows with the batch up to a bound, so a buffer sized for a batch serves every
/// smaller batch; several images' tile needs its output buffer too.
#[test]
fn workspace_grows_with_the_batch_up_to_a_bound() {
    let one = conv2(1).col_len();
    assert_eq!(one, 150 * 100);
    assert_eq!(conv2(1).workspace_len(), one);
    assert_eq!(conv2(2).workspace_len(), 2 * (one + 16 * 100));
    let lens: Vec<usize> = (0..=70).map(|b| conv2(b).workspace_len()).collect();
    assert!(lens.windows(2).all(|w| w[0] <= w[1]), "{lens:?}");
    assert_eq!(lens[64], 6 * (one + 16 * 100));
    assert_eq!(lens[70], lens[64]);
}

/// Rows wider than 32 (im2col's run-time-width copy) and the other widths around it.
#[test]
fn wide_rows_match_reference() {
    for in_w in [31, 32, 33, 34, 45, 70] {
        let s = Conv2dShape::new(2, 2, 3, (5, in_w), (3, 3)).with_padding(1, 1);
        check_forward(&s, in_w as u64, true);
        check_backward(&s, in_w as u64, true, true);
        let s = Conv2dShape::new(1, 1, 2, (4, in_w), (1, 2));
        check_forward(&s, in_w as u64, false);
        check_backward(&s, in_w as u64, true, false);
    }
}

/// Which shapes take the direct path: stride 1, dilation 1 and `1 <= K <= DIRECT_MAX_K`.
#[test]
fn direct_path_rule() {
    assert!(rules::is_direct(&conv1(64)));
    assert!(
        !rules::is_direct(&conv2(64)),
        "K = 150 keeps the GEMM path (on tables without the channel path)"
    );
    let base = Conv2dShape::new(2, 1, 4, (9, 9), (3, 3));
    assert!(rules::is_direct(&base));
    assert!(!rules::is_direct(&base.with_stride(1, 2)));
    assert!(!rules::is_direct(&base.with_dilation(2, 1)));
    assert!(!rules::is_direct(&Conv2dShape::new(
        2,
        0,
        4,
        (9, 9),
        (3, 3)
    )));
    let widest = DIRECT_MAX_K / 9;
    assert!(rules::is_direct(&Conv2dShape::new(
        2,
        widest,
        4,
        (9, 9),
        (3, 3)
    )));
    assert!(!rules::is_direct(&Conv2dShape::new(
        2,
        widest + 1,
        4,
        (9, 9),
        (3, 3)
    )));
}

/// The direct path's workspace does not depend on the batch (so a buffer sized for one batch
/// serves every other): the padded planes and partial sums, or the input gradient's flipped
/// weight and padded output-gradient planes (conv1), or one image's columns for its GEMM.
#[test]
fn direct_workspace_is_the_same_for_every_batch() {
    let lens: Vec<usize> = (0..=70).map(|b| conv1(b).workspace_len()).collect();
    // Flipped weight 150, output gradient 6 x 32 x 32 padded by 5 - 1 - 2, 16 slack.
    assert!(
        lens.iter().all(|&l| l == 150 + 6 * 32 * 32 + 16),
        "{lens:?}"
    );
    let s = |b| Conv2dShape::new(b, 2, 3, (4, 5), (1, 1)).with_padding(1, 0);
    // Padded planes 2 x 6 x 5 + 16 slack, 16 partial sums per weight (6); the input gradient
    // (padding 1 >= kernel 1) goes through GEMM and col2im: 2 x 6 x 5 columns.
    assert_eq!(s(1).workspace_len(), 2 * 6 * 5 + 16 + 16 * 6);
    // Padding 2 >= kernel 2: the columns, 4 x 11 x 11, outweigh the 12 x 12 + 16 padded plane
    // and 4 x 16 partial sums.
    let cols = |b| Conv2dShape::new(b, 1, 1, (8, 8), (2, 2)).with_padding(2, 2);
    assert_eq!(cols(2).workspace_len(), 4 * 11 * 11);
    assert_eq!(cols(2).workspace_len(), cols(1).col_len());
    assert_eq!(s(0).workspace_len(), s(9).workspace_len());
    // A workspace sized for a larger batch: its prefix serves a smaller one.
    let mut ws = vec![f32::NAN; s(9).workspace_len()];
    let (x, w, b, _) = data(&s(3), 5);
    let mut out = vec![0.0; s(3).output_len()];
    let mut want = vec![0.0; s(3).output_len()];
    scalar::forward(&s(3), &x, &w, Some(&b), &mut want);
    for k in all_kernels() {
        let len = s(3).workspace_len();
        k.conv2d_forward(&s(3), &x, &w, Some(&b), &mut out, &mut ws[..len]);
        for (i, (&o, &r)) in out.iter().zip(&want).enumerate() {
            assert!((o - r).abs() <= 1e-5, "{} index {i}: {o} vs {r}", k.isa());
        }
    }
}

/// Every output width from 1 to 40 (each ISA's partial last vector, whole vectors, one and two
/// forward blocks), and every kernel size 1..=7 with every padding 0..=3, on the direct path.
#[test]
fn direct_path_every_width_kernel_and_padding() {
    for w in 1..=40 {
        let s = Conv2dShape::new(2, 2, 7, (3, w), (3, 3)).with_padding(1, 1);
        assert!(rules::is_direct(&s));
        check_forward(&s, w as u64, w.is_multiple_of(2));
        check_backward(&s, w as u64, w.is_multiple_of(3), true);
    }
    for k in 1..=7 {
        for p in 0..=3 {
            let s = Conv2dShape::new(2, 1, 5, (k.max(4), k + 9), (k, k)).with_padding(p, p);
            assert!(rules::is_direct(&s));
            let seed = (k * 4 + p) as u64;
            check_forward(&s, seed, p.is_multiple_of(2));
            check_backward(&s, seed, p % 2 == 1, true);
        }
    }
}

/// `got` against a reference that may hold NaN or infinities: the same non-finite value where
/// the reference has one, within `gamma(terms) * magnitude` elsewhere.
#[track_caller]
fn assert_within_nonfinite(what: &str, got: &[f32], want: &[f64], mag: &[f64], terms: usize) {
    for (i, ((&g, &w), &m)) in got.iter().zip(want).zip(mag).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{what}: index {i}: got {g:e}, want NaN");
        } else if w.is_infinite() {
            assert_eq!(g as f64, w, "{what}: index {i}");
        } else {
            let bound = gamma(terms) * m + f32::MIN_POSITIVE as f64;
            assert!(
                (g as f64 - w).abs() <= bound,
                "{what}: index {i}: got {g:e}, want {w:e} (bound {bound:e})"
            );
        }
    }
}

/// An infinity or NaN at the start of a row, in the input or in the output gradient, reaches
/// only the outputs and weights whose taps read it: the direct path's loads past a row's end
/// (whose lanes the forward drops and the weight gradient masks) must not carry it elsewhere
/// (0 * inf would be NaN). Widths at every ISA's partial last vector.
#[test]
fn direct_path_keeps_nonfinite_values_where_they_belong() {
    for w in [3, 5, 7, 9, 13, 17, 21, 30] {
        let s = Conv2dShape::new(2, 2, 4, (4, w + 2), (2, 3));
        assert!(rules::is_direct(&s));
        let (mut x, wt, b, mut dy) = data(&s, w as u64);
        let (oh, ow) = (s.out_h(), s.out_w());
        // Column 0 of some rows (image, channel, row): only kernel column 0 reads it, so the
        // weights of kernel columns 1 and 2 stay finite.
        let row_start = |n: usize, c: usize, y: usize| ((n * 2 + c) * 4 + y) * (w + 2);
        x[row_start(0, 1, 1)] = f32::INFINITY;
        x[row_start(0, 1, 2)] = f32::NAN;
        x[row_start(1, 0, 3)] = f32::NEG_INFINITY;
        x[row_start(1, 1, 0)] = f32::INFINITY;
        // Output channel 2's first row starts with an infinity: channel 1's last row's tail
        // lanes would read it.
        dy[2 * oh * ow] = f32::INFINITY;
        let (xd, wd, bd, dyd) = (widen(&x), widen(&wt), widen(&b), widen(&dy));
        let mut want = vec![0.0; s.output_len()];
        let mut mag = want.clone();
        scalar::forward(&s, &xd, &wd, Some(&bd), &mut want);
        scalar::forward(&s, &abs(&xd), &abs(&wd), Some(&abs(&bd)), &mut mag);
        let mut gw_want = vec![0.0; s.weight_len()];
        let mut gw_mag = gw_want.clone();
        scalar::backward_weight(&s, &xd, &dyd, &mut gw_want);
        scalar::backward_weight(&s, &abs(&xd), &abs(&dyd), &mut gw_mag);
        assert!(gw_want.iter().any(|v| v.is_finite()) && gw_want.iter().any(|v| !v.is_finite()));
        for k in all_kernels() {
            let mut ws = vec![f32::NAN; s.workspace_len()];
            let mut out = vec![f32::NAN; s.output_len()];
            k.conv2d_forward(&s, &x, &wt, Some(&b), &mut out, &mut ws);
            let what = format!("{} forward width {w}", k.isa());
            assert_within_nonfinite(&what, &out, &want, &mag, s.col_rows() + 1);
            let mut gw = vec![f32::NAN; s.weight_len()];
            k.conv2d_backward(&s, &x, &wt, &dy, None, &mut gw, None, &mut ws);
            let what = format!("{} grad_weight width {w}", k.isa());
            assert_within_nonfinite(&what, &gw, &gw_want, &gw_mag, s.batch * oh * ow);
        }
    }
}

/// The bias gradient of the direct path (which the AVX-512 table sums in its weight-gradient
/// pass, image by image): batches 0..=3, planes of 1 to 120 pixels (every tail of its 16-lane
/// vectors and 64-pixel chunks), and an infinity and a NaN in the output gradient, which reach
/// only their own channel's sum.
#[test]
fn direct_path_bias_gradient_every_batch_and_plane() {
    for batch in 0..=3 {
        for w in 1..=40 {
            let h = 1 + (w + batch) % 3;
            let s = Conv2dShape::new(batch, 1, 3, (h, w), (1, 3)).with_padding(0, 1);
            assert!(rules::is_direct(&s));
            let seed = (batch * 100 + w) as u64;
            check_backward(&s, seed, false, true);
            if batch == 0 {
                continue;
            }
            let (x, wt, _, mut dy) = data(&s, seed);
            let plane = h * w;
            dy[plane - 1] = f32::INFINITY; // channel 0's last pixel (a tail lane)
            dy[(batch - 1) * 3 * plane + plane] = f32::NAN; // channel 1 of the last image
            let mut want = vec![0.0; 3];
            let mut mag = want.clone();
            scalar::backward_bias(&s, &widen(&dy), &mut want);
            scalar::backward_bias(&s, &abs(&widen(&dy)), &mut mag);
            assert!(want[0].is_infinite() && want[1].is_nan() && want[2].is_finite());
            for k in all_kernels() {
                let mut ws = vec![f32::NAN; s.workspace_len()];
                let (mut gw, mut gb) = (vec![f32::NAN; 9], vec![f32::NAN; 3]);
                k.conv2d_backward(&s, &x, &wt, &dy, None, &mut gw, Some(&mut gb), &mut ws);
                let what = format!("{} grad_bias {s:?}", k.isa());
                assert_within_nonfinite(&what, &gb, &want, &mag, batch * plane);
            }
        }
    }
}

/// Which shapes the AVX-512 and AVX2 tables run on the channel path (the same rule): LeNet-5's
/// conv2 (and conv1 not: its rows are 28 wide), and each bound of the rule; the scalar and
/// NEON tables do not have the path.
#[test]
fn channel_path_rule() {
    for &isa in CHANNEL_ISAS {
        channel_path_rule_of(isa);
    }
    for isa in [Isa::Scalar, Isa::Neon] {
        assert!(!rules::takes_channel_path(&conv2(64), isa), "{isa}");
        assert!(!rules::takes_channel_path(&conv2(1), isa), "{isa}");
    }
}

fn channel_path_rule_of(isa: Isa) {
    assert!(rules::takes_channel_path(&conv2(64), isa), "{isa}");
    assert!(rules::takes_channel_path(&conv2(1), isa), "{isa}");
    assert!(!rules::takes_channel_path(&conv1(64), isa), "{isa}");
    let takes = |s: Conv2dShape| rules::takes_channel_path(&s, isa);
    assert!(!takes(conv2(64).with_stride(1, 2)));
    assert!(!takes(conv2(64).with_stride(2, 1)));
    assert!(!takes(conv2(64).with_dilation(1, 2)));
    assert!(!takes(conv2(64).with_dilation(2, 1)));
    let co = |c| Conv2dShape::new(2, 6, c, (14, 14), (5, 5));
    assert!(takes(co(CHANNEL_MIN_OUT_CHANNELS)));
    assert!(!takes(co(CHANNEL_MIN_OUT_CHANNELS - 1)));
    assert!(takes(co(200)));
    let width = |w| Conv2dShape::new(2, 3, 16, (4, w), (3, 3));
    assert!(takes(width(CHANNEL_MAX_OUT_W + 2)));
    assert!(!takes(width(CHANNEL_MAX_OUT_W + 3)));
    let k = CHANNEL_MAX_KERNEL;
    let kernel = |kh, kw| Conv2dShape::new(2, 3, 16, (9, 9), (kh, kw));
    assert!(takes(kernel(k, k)));
    assert!(!takes(kernel(k + 1, 1)));
    assert!(!takes(kernel(1, k + 1)));
    assert!(!takes(Conv2dShape::new(2, 0, 16, (9, 9), (3, 3))));
    // Any K: conv2's 150 and a shape of the direct path alike.
    assert!(takes(Conv2dShape::new(2, 1, 16, (9, 9), (3, 3))));
    assert!(takes(Conv2dShape::new(2, 64, 16, (9, 9), (3, 3))));
}

/// The channel path at every output-channel count 1..=40 and 48 (below its bound of 8, where
/// the tables keep the other paths; AVX2's 8-channel halves and AVX-512's 16-channel groups,
/// whole and partial), each with a kernel of its own and row widths 1..=20 (every one
/// several times; past 16 the other paths), forward and backward with and without the bias and
/// the input gradient (the row blocks at every row width 1..=22 of the transposed
/// convolution, whose vector counts differ per ISA).
#[test]
fn channel_path_every_group_tail() {
    for (i, co) in (1..=40).chain([48]).enumerate() {
        let (k, w) = (1 + i % 7, 1 + (i * 7) % 20);
        let s = Conv2dShape::new(1 + i % 3, 1 + i % 7, co, (k + 2, w + k - 1), (k, k));
        let expect = co >= 8 && w <= 16;
        for &isa in CHANNEL_ISAS {
            assert_eq!(rules::takes_channel_path(&s, isa), expect, "{s:?}");
        }
        check_forward(&s, 120 + i as u64, i % 2 == 0);
        check_backward(&s, 140 + i as u64, i % 3 != 1, i % 2 == 1);
    }
}

/// The workspace covers the channel path's needs on every table, and does not grow with the
/// batch: conv2's is still its GEMM tile's; a 1x1 kernel to 40 channels over 8 x 16 pixels
/// needs the channel path's most (padded planes 128 + 16, then 48 channels x (K 1 + 128
/// pixels)), more than the direct path's (its input gradient: 40 + 40 x 128 + 16).
#[test]
fn channel_path_workspace() {
    assert_eq!(conv2(64).workspace_len(), 6 * (150 * 100 + 16 * 100));
    let s = |b| Conv2dShape::new(b, 1, 40, (8, 16), (1, 1));
    assert!(channel_tables_take(&s(1)) && rules::is_direct(&s(1)));
    assert_eq!(s(1).workspace_len(), 128 + 16 + 48 * (1 + 128));
    assert_eq!(s(0).workspace_len(), s(9).workspace_len());
    check_forward(&s(3), 160, true);
    check_backward(&s(3), 161, true, true);
}

/// LeNet-5's conv2 at batch 64 (the path's reason to exist) against the reference, every
/// gradient, on every ISA; on AVX-512 it runs the channel path.
#[test]
fn lenet_conv2_batch_64_matches_reference() {
    let s = conv2(if cfg!(target_arch = "aarch64") { 8 } else { 64 });
    check_forward(&s, 90, true);
    check_backward(&s, 91, true, true);
}

/// Infinities and NaN in the input and the output gradient on the channel path (and the others
/// where the shape takes them): each reaches only the outputs and gradients that read it (the
/// padded output channels, the rows repeated past a block's end and the lanes past a row's
/// end must not carry it elsewhere). Output channels 15, 16, 17 and 33; rows 3 to 16 wide
/// (input rows 5 to 18).
#[test]
fn channel_path_keeps_nonfinite_values_where_they_belong() {
    for (i, (co, w)) in [(15, 3), (16, 10), (17, 7), (33, 16), (16, 14)]
        .into_iter()
        .enumerate()
    {
        // No padding: a padded zero times an infinite output gradient is NaN on every path
        // that multiplies the padding (as PyTorch's unfolded one does), where the reference
        // skips it.
        let s = Conv2dShape::new(2, 3, co, (5, w + 2), (2, 3));
        assert!(channel_tables_take(&s), "{s:?}");
        let (mut x, wt, b, mut dy) = data(&s, 100 + i as u64);
        let (oh, ow) = (s.out_h(), s.out_w());
        let at = |n: usize, c: usize, y: usize, x: usize| ((n * 3 + c) * 5 + y) * (w + 2) + x;
        x[at(0, 1, 1, 0)] = f32::INFINITY;
        x[at(0, 2, 4, w + 1)] = f32::NAN;
        x[at(1, 0, 0, 1)] = f32::NEG_INFINITY;
        let out_at = |n: usize, c: usize, y: usize, x: usize| ((n * co + c) * oh + y) * ow + x;
        dy[out_at(0, co - 1, 0, 0)] = f32::INFINITY;
        dy[out_at(1, 2, oh - 1, ow - 1)] = f32::NAN;
        let (xd, wd, bd, dyd) = (widen(&x), widen(&wt), widen(&b), widen(&dy));
        let mut want = vec![0.0; s.output_len()];
        let mut mag = want.clone();
        scalar::forward(&s, &xd, &wd, Some(&bd), &mut want);
        scalar::forward(&s, &abs(&xd), &abs(&wd), Some(&abs(&bd)), &mut mag);
        let mut gw_want = vec![0.0; s.weight_len()];
        let mut gw_mag = gw_want.clone();
        scalar::backward_weight(&s, &xd, &dyd, &mut gw_want);
        scalar::backward_weight(&s, &abs(&xd), &abs(&dyd), &mut gw_mag);
        let mut gi_want = vec![0.0; s.input_len()];
        let mut gi_mag = gi_want.clone();
        scalar::backward_input(&s, &wd, &dyd, &mut gi_want);
        scalar::backward_input(&s, &abs(&wd), &abs(&dyd), &mut gi_mag);
        for v in [&want, &gw_want, &gi_want] {
            assert!(v.iter().any(|v| v.is_finite()) && v.iter().any(|v| !v.is_finite()));
        }
        for k in all_kernels() {
            let mut ws = vec![f32::NAN; s.workspace_len()];
            let mut out = vec![f32::NAN; s.output_len()];
            k.conv2d_forward(&s, &x, &wt, Some(&b), &mut out, &mut ws);
            let what = |t: &str| format!("{} {t} {s:?}", k.isa());
            assert_within_nonfinite(&what("forward"), &out, &want, &mag, s.col_rows() + 1);
            let mut gw = vec![f32::NAN; s.weight_len()];
            let mut gi = vec![f32::NAN; s.input_len()];
            k.conv2d_backward(&s, &x, &wt, &dy, Some(&mut gi), &mut gw, None, &mut ws);
            let terms = s.batch * oh * ow;
            assert_within_nonfinite(&what("grad_weight"), &gw, &gw_want, &gw_mag, terms);
            let terms = co * s.kernel_h * s.kernel_w;
            assert_within_nonfinite(&what("grad_input"), &gi, &gi_want, &gi_mag, terms);
        }
    }
}

#[test]
fn zero_input_channels_give_the_bias() {
    let s = Conv2dShape::new(2, 0, 3, (4, 5), (3, 3)).with_padding(1, 1);
    let bias = [0.5f32, -1.0, 2.0];
    for k in all_kernels() {
        let mut out = vec![f32::NAN; s.output_len()];
        k.conv2d_forward(&s, &[], &[], Some(&bias), &mut out, &mut []);
        for (i, v) in out.iter().enumerate() {
            assert_eq!(*v, bias[(i / 20) % 3], "{} index {i}", k.isa());
        }
        k.conv2d_forward(&s, &[], &[], None, &mut out, &mut []);
        assert!(out.iter().all(|&v| v == 0.0), "{}", k.isa());
        let dy = random_vec(s.output_len(), 3);
        let mut gb = [f32::NAN; 3];
        let mut gi: [f32; 0] = [];
        k.conv2d_backward(
            &s,
            &[],
            &[],
            &dy,
            Some(&mut gi),
            &mut [],
            Some(&mut gb),
            &mut [],
        );
        for (c, &g) in gb.iter().enumerate() {
            let want: f64 = (0..2)
                .flat_map(|n| &dy[(n * 3 + c) * 20..][..20])
                .map(|&v| v as f64)
                .sum();
            assert!(
                (g as f64 - want).abs() <= gamma(40) * 40.0,
                "{} channel {c}",
                k.isa()
            );
        }
    }
}

#[test]
fn empty_batch_zeroes_the_gradients() {
    let s = Conv2dShape::new(0, 2, 3, (5, 5), (3, 3));
    for k in all_kernels() {
        let mut out: [f32; 0] = [];
        k.conv2d_forward(
            &s,
            &[],
            &random_vec(54, 1),
            None,
            &mut out,
            &mut vec![0.0; s.workspace_len()],
        );
        let mut gw = vec![f32::NAN; 54];
        let mut gb = vec![f32::NAN; 3];
        k.conv2d_backward(
            &s,
            &[],
            &random_vec(54, 1),
            &[],
            Some(&mut []),
            &mut gw,
            Some(&mut gb),
            &mut vec![0.0; s.workspace_len()],
        );
        assert!(gw.iter().chain(&gb).all(|&v| v == 0.0), "{}", k.isa());
    }
}

#[test]
fn one_by_one_image_and_kernel() {
    let s = Conv2dShape::new(1, 1, 1, (1, 1), (1, 1));
    let mut ws = vec![0.0; s.workspace_len()];
    for k in all_kernels() {
        let mut out = [0.0f32];
        k.conv2d_forward(&s, &[3.0], &[-2.0], Some(&[0.5]), &mut out, &mut ws);
        assert_eq!(out, [-5.5], "{}", k.isa());
        let (mut gi, mut gw, mut gb) = ([0.0f32], [0.0f32], [0.0f32]);
        k.conv2d_backward(
            &s,
            &[3.0],
            &[-2.0],
            &[4.0],
            Some(&mut gi),
            &mut gw,
            Some(&mut gb),
            &mut ws,
        );
        assert_eq!((gi, gw, gb), ([-8.0], [12.0], [4.0]), "{}", k.isa());
    }
}

/// The direct references' backward passes against central differences of their forward, in f64
/// with PyTorch's gradcheck defaults, with stride, padding and dilation on both axes.
#[test]
fn gradcheck_reference_backward() {
    let shapes = [
        Conv2dShape::new(2, 2, 3, (6, 7), (3, 2))
            .with_stride(2, 1)
            .with_padding(1, 2)
            .with_dilation(1, 2),
        Conv2dShape::new(1, 3, 2, (5, 5), (2, 3))
            .with_stride(1, 2)
            .with_padding(0, 1)
            .with_dilation(2, 1),
        // LeNet-like: 5x5 with padding 2.
        Conv2dShape::new(2, 3, 4, (8, 8), (5, 5)).with_padding(2, 2),
    ];
    for (i, s) in shapes.iter().enumerate() {
        let seed = 40 + i as u64;
        let x = widen(&random_vec(s.input_len(), seed));
        let w = widen(&random_vec(s.weight_len(), seed + 1));
        let b = widen(&random_vec(s.out_channels, seed + 2));
        let r = widen(&random_vec(s.output_len(), seed + 3)); // loss = sum(r * conv(x))
        let mut gx = vec![0.0; s.input_len()];
        let mut gw = vec![0.0; s.weight_len()];
        let mut gb = vec![0.0; s.out_channels];
        scalar::backward_input(s, &w, &r, &mut gx);
        scalar::backward_weight(s, &x, &r, &mut gw);
        scalar::backward_bias(s, &r, &mut gb);
        let mut tensors = vec![
            Tensor::new("input", vec![s.input_len()], x, gx),
            Tensor::new("weight", vec![s.weight_len()], w, gw),
            Tensor::new("bias", vec![s.out_channels], b, gb),
        ];
        let mut out = vec![0.0; s.output_len()];
        let report = GradCheck::default().run(&mut tensors, |t| {
            scalar::forward(s, &t[0].values, &t[1].values, Some(&t[2].values), &mut out);
            out.iter().zip(&r).map(|(o, r)| o * r).sum()
        });
        assert!(report.passed(), "{s:?}\n{report}");
    }
}

fn run_forward(s: Conv2dShape, input: usize, weight: usize, bias: usize, output: usize, ws: usize) {
    Kernels::get().conv2d_forward(
        &s,
        &vec![0.0; input],
        &vec![0.0; weight],
        Some(&vec![0.0; bias]),
        &mut vec![0.0; output],
        &mut vec![0.0; ws],
    );
}

#[test]
#[should_panic(expected = "conv2d: stride_w must be positive, got 0")]
fn zero_stride_panics() {
    run_forward(conv2(1).with_stride(1, 0), 1176, 2400, 16, 1600, 15000);
}

#[test]
#[should_panic(expected = "conv2d: dilation_h must be positive, got 0")]
fn zero_dilation_panics() {
    run_forward(conv2(1).with_dilation(0, 1), 1176, 2400, 16, 1600, 15000);
}

#[test]
#[should_panic(
    expected = "conv2d: empty output: the padded input h 6 (in_h 4 + 2 * pad_h 1) is smaller than the dilated kernel 7"
)]
fn empty_output_panics() {
    let s = Conv2dShape::new(1, 1, 1, (4, 4), (4, 1))
        .with_padding(1, 0)
        .with_dilation(2, 1);
    run_forward(s, 16, 4, 1, 0, 0);
}

#[test]
#[should_panic(expected = "conv2d_forward: workspace: expected length 15000, got 14999")]
fn wrong_workspace_panics() {
    run_forward(conv2(1), 1176, 2400, 16, 1600, 14999);
}

#[test]
#[should_panic(expected = "conv2d_forward: input: expected length 2352, got 1176")]
fn wrong_input_panics() {
    run_forward(conv2(2), 1176, 2400, 16, 3200, 15000);
}

#[test]
#[should_panic(expected = "conv2d_forward: bias: expected length 16, got 6")]
fn wrong_bias_panics() {
    run_forward(conv2(1), 1176, 2400, 6, 1600, 15000);
}

#[test]
#[should_panic(expected = "conv2d_backward: grad_input: expected length 1176, got 1175")]
fn wrong_grad_input_panics() {
    let s = conv2(1);
    Kernels::get().conv2d_backward(
        &s,
        &[0.0; 1176],
        &[0.0; 2400],
        &[0.0; 1600],
        Some(&mut [0.0; 1175]),
        &mut [0.0; 2400],
        None,
        &mut [0.0; 15000],
    );
}

#[test]
#[should_panic(expected = "conv2d_backward: grad_weight: expected length 2400, got 2399")]
fn wrong_grad_weight_panics() {
    let s = conv2(1);
    Kernels::get().conv2d_backward(
        &s,
        &[0.0; 1176],
        &[0.0; 2400],
        &[0.0; 1600],
        None,
        &mut [0.0; 2399],
        None,
        &mut [0.0; 15000],
    );
}

#[test]
#[should_panic(expected = "im2col: cols: expected length 15000, got 10")]
fn im2col_wrong_cols_panics() {
    im2col(&conv2(1), &[0.0f32; 1176], &mut [0.0f32; 10]);
}
