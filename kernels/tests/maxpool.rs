//! Max pooling on every ISA against the reference, bit for bit (outputs are selected input
//! values and argmax indices are exact): random kernel sizes and strides, the specialised 2x2
//! stride-2 path on every width (every tail of 8 and 4 outputs, odd sizes), values with many
//! ties, NaN and infinities; PyTorch's tie and NaN rules spelled out; the backward (exact too:
//! each element receives its gradients in the same order on every ISA) and against f64; a
//! gradient check of the reference on inputs without ties; the panics.

mod common;

use common::{all_kernels, cases, random_vec, widen};
use proptest::prelude::*;
use simdnet_kernels::gradcheck::{GradCheck, Tensor};
use simdnet_kernels::maxpool::{scalar, Pool2dShape};
use simdnet_kernels::Kernels;

/// `n` values from `seed`; `style` 0: uniform, 1: a few distinct levels (many ties), 2: levels
/// with NaN and infinities mixed in.
fn values(n: usize, seed: u64, style: u8) -> Vec<f32> {
    random_vec(n, seed)
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let h = (seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)) >> 59;
            match style {
                0 => v,
                1 => (v * 3.0).round(),
                _ => match h {
                    0 | 1 => f32::NAN,
                    2 => f32::INFINITY,
                    3 => f32::NEG_INFINITY,
                    _ => (v * 3.0).round(),
                },
            }
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn check(s: &Pool2dShape, seed: u64, style: u8) {
    let x = values(s.input_len(), seed, style);
    let mut want = vec![0.0f32; s.output_len()];
    let mut want_at = vec![0u32; s.output_len()];
    scalar::forward(s, &x, &mut want, &mut want_at);
    // The f64 reference picks the same elements.
    let mut want64 = vec![0.0f64; s.output_len()];
    let mut want64_at = vec![0u32; s.output_len()];
    scalar::forward(s, &widen(&x), &mut want64, &mut want64_at);
    assert_eq!(want64_at, want_at);
    let g = random_vec(s.output_len(), seed ^ 3);
    let mut want_gi = vec![0.0f32; s.input_len()];
    scalar::backward(s, &g, &want_at, &mut want_gi);
    let mut want_gi64 = vec![0.0f64; s.input_len()];
    scalar::backward(s, &widen(&g), &want_at, &mut want_gi64);
    for k in all_kernels() {
        let what = format!("{} {s:?} style {style}", k.isa());
        let mut y = vec![f32::NAN; s.output_len()];
        let mut at = vec![u32::MAX; s.output_len()];
        k.maxpool2d_forward(s, &x, &mut y, &mut at);
        assert_eq!(bits(&y), bits(&want), "{what}: output");
        assert_eq!(at, want_at, "{what}: argmax");
        let mut gi = vec![f32::NAN; s.input_len()];
        k.maxpool2d_backward(s, &g, &at, &mut gi);
        assert_eq!(bits(&gi), bits(&want_gi), "{what}: grad_input");
        // At most kernel_h * kernel_w gradients meet in one element: sum bound vs f64.
        let terms = s.kernel_h * s.kernel_w;
        let gamma = terms as f64 * f32::EPSILON as f64;
        for (i, (&a, &b)) in gi.iter().zip(&want_gi64).enumerate() {
            assert!(
                (a as f64 - b).abs() <= gamma * terms as f64,
                "{what}: grad_input {i}"
            );
        }
    }
}

fn general_shape() -> impl Strategy<Value = Pool2dShape> {
    (
        0usize..=2,
        0usize..=3,
        1usize..=4,
        1usize..=4,
        1usize..=4,
        1usize..=4,
        0usize..=12,
        0usize..=20,
    )
        .prop_map(|(n, c, kh, kw, sh, sw, eh, ew)| {
            Pool2dShape::new(n, c, (kh + eh, kw + ew), (kh, kw), (sh, sw))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(128)))]

    #[test]
    fn random_shapes_match_reference(s in general_shape(), seed in any::<u64>(), style in 0u8..3) {
        check(&s, seed, style);
    }

    /// The specialised path: widths 2..=37 give every output width 1..=18 (all tails of 8 and 4),
    /// odd heights and widths leave a row or column in no window.
    #[test]
    fn two_by_two_stride_two_matches_reference(
        n in 0usize..=2, c in 1usize..=3, h in 2usize..=13, w in 2usize..=37,
        seed in any::<u64>(), style in 0u8..3
    ) {
        check(&Pool2dShape::new(n, c, (h, w), (2, 2), (2, 2)), seed, style);
    }
}

#[test]
fn every_width_of_the_2x2_path() {
    for w in 2..=40 {
        for h in [2, 3, 5] {
            for style in 0..3 {
                check(
                    &Pool2dShape::new(1, 2, (h, w), (2, 2), (2, 2)),
                    (w * 10 + h) as u64,
                    style,
                );
            }
        }
    }
}

#[test]
fn lenet_shapes() {
    let batch = if cfg!(target_arch = "aarch64") { 2 } else { 64 };
    check(&Pool2dShape::new(batch, 6, (28, 28), (2, 2), (2, 2)), 1, 2);
    check(&Pool2dShape::new(batch, 16, (10, 10), (2, 2), (2, 2)), 2, 2);
    check(&Pool2dShape::new(batch, 6, (28, 28), (2, 2), (2, 2)), 3, 0);
}

/// Ties keep the first maximum in scan order; NaN wins, and the LAST NaN in scan order gives the
/// index (torch.nn.functional.max_pool2d(return_indices=True) on CPU returns exactly this).
#[test]
fn ties_and_nan_follow_pytorch() {
    let nan = f32::NAN;
    // 2x2 windows over a 2x16 plane (8 outputs: the full vector path on AVX2, two on NEON).
    #[rustfmt::skip]
    let windows: [([f32; 4], u32, bool); 8] = [
        ([1.0, 1.0, 1.0, 1.0], 0, false),  // all tie: first
        ([0.0, 2.0, 2.0, 1.0], 1, false),  // tie between (0,1) and (1,0): first in scan order
        ([1.0, nan, nan, 3.0], 2, true),   // two NaNs: the last one (PyTorch)
        ([nan, 5.0, 6.0, 7.0], 0, true),   // a leading NaN stays
        ([-1.0, -1.0, -2.0, nan], 3, true),
        ([f32::NEG_INFINITY; 4], 0, false),
        ([-0.0, 0.0, 0.0, -0.0], 0, false), // -0 == +0: a tie, the first
        ([1.0, 2.0, 3.0, 4.0], 3, false),
    ];
    let mut plane = vec![0.0f32; 32];
    for (j, (w, _, _)) in windows.iter().enumerate() {
        plane[2 * j] = w[0];
        plane[2 * j + 1] = w[1];
        plane[16 + 2 * j] = w[2];
        plane[16 + 2 * j + 1] = w[3];
    }
    let s = Pool2dShape::new(1, 1, (2, 16), (2, 2), (2, 2));
    for k in all_kernels() {
        let mut y = [0.0f32; 8];
        let mut at = [0u32; 8];
        k.maxpool2d_forward(&s, &plane, &mut y, &mut at);
        for (j, (w, pos, is_nan)) in windows.iter().enumerate() {
            let want_at = [0, 1, 16, 17][*pos as usize] + 2 * j as u32;
            assert_eq!(at[j], want_at, "{}: window {j} {w:?}", k.isa());
            assert_eq!(y[j].is_nan(), *is_nan, "{}: window {j}", k.isa());
            assert_eq!(
                y[j].to_bits(),
                plane[want_at as usize].to_bits(),
                "{}: window {j}",
                k.isa()
            );
        }
    }
    // The general path: a 3x3 stride-1 window over a NaN pair (PyTorch gives 12 everywhere).
    let mut x = vec![0.0f32; 25];
    x[6] = nan;
    x[12] = nan;
    let s = Pool2dShape::new(1, 1, (5, 5), (3, 3), (1, 1));
    for k in all_kernels() {
        let mut y = [0.0f32; 9];
        let mut at = [0u32; 9];
        k.maxpool2d_forward(&s, &x, &mut y, &mut at);
        assert_eq!(at, [12; 9], "{}", k.isa());
    }
}

#[test]
fn backward_adds_overlapping_windows() {
    // 3x3 input, 2x2 windows with stride 1: the centre is every window's max.
    let x = [0.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0];
    let s = Pool2dShape::new(1, 1, (3, 3), (2, 2), (1, 1));
    for k in all_kernels() {
        let mut y = [0.0f32; 4];
        let mut at = [0u32; 4];
        k.maxpool2d_forward(&s, &x, &mut y, &mut at);
        assert_eq!(at, [4; 4]);
        let mut gi = [f32::NAN; 9];
        k.maxpool2d_backward(&s, &[1.0, 2.0, 3.0, 4.0], &at, &mut gi);
        assert_eq!(
            gi,
            [0.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0],
            "{}",
            k.isa()
        );
    }
}

#[test]
fn gradcheck_reference_backward() {
    for s in [
        Pool2dShape::new(2, 2, (6, 7), (2, 2), (2, 2)),
        Pool2dShape::new(1, 2, (7, 6), (3, 2), (2, 1)),
    ] {
        // Distinct values at least 1e-3 apart: no ties within 2 * eps of each other.
        let n = s.input_len();
        let noise = random_vec(n, 9);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| noise[a].total_cmp(&noise[b]));
        let mut x = vec![0.0f64; n];
        for (rank, &i) in order.iter().enumerate() {
            x[i] = rank as f64 * 1e-3 - 0.05;
        }
        let r = widen(&random_vec(s.output_len(), 10)); // loss = sum(r * maxpool(x))
        let mut y = vec![0.0; s.output_len()];
        let mut at = vec![0u32; s.output_len()];
        scalar::forward(&s, &x, &mut y, &mut at);
        let mut gx = vec![0.0; n];
        scalar::backward(&s, &r, &at, &mut gx);
        let mut tensors = vec![Tensor::new("x", vec![n], x, gx)];
        let report = GradCheck::default().run(&mut tensors, |t| {
            scalar::forward(&s, &t[0].values, &mut y, &mut at);
            y.iter().zip(&r).map(|(y, r)| y * r).sum()
        });
        assert!(report.passed(), "{s:?}\n{report}");
    }
}

#[test]
fn out_of_window_argmax_panics_on_every_isa() {
    let s = Pool2dShape::new(1, 1, (4, 20), (2, 2), (2, 2));
    for k in all_kernels() {
        let mut at = vec![0u32; 20];
        let mut y = vec![0.0f32; 20];
        k.maxpool2d_forward(&s, &random_vec(80, 1), &mut y, &mut at);
        for bad in [9usize, 19] {
            let mut wrong = at.clone();
            wrong[bad] = 0; // element (0, 0) is only in window 0
            let result = std::panic::catch_unwind(|| {
                k.maxpool2d_backward(&s, &y, &wrong, &mut vec![0.0; 80]);
            });
            let msg = *result
                .expect_err("must panic")
                .downcast::<String>()
                .unwrap();
            let want = format!("argmax[{bad}] = 0 is outside its pooling window");
            assert!(msg.contains(&want), "{}: {msg}", k.isa());
        }
    }
}

#[test]
fn the_first_out_of_window_argmax_in_output_order_is_named() {
    // Rows of 10 and 20 outputs: two chunks a row on AVX2 and NEON, one or two on AVX-512;
    // the bad indices sit in a row's first and last chunk.
    for w in [20usize, 40] {
        let s = Pool2dShape::new(1, 2, (4, w), (2, 2), (2, 2));
        let n = s.output_len();
        for k in all_kernels() {
            let mut at = vec![0u32; n];
            let mut y = vec![0.0f32; n];
            k.maxpool2d_forward(&s, &random_vec(s.input_len(), 3), &mut y, &mut at);
            let mut wrong = at.clone();
            let (first, last) = (w / 2 + 2, w - 1); // both in the plane's second row
            wrong[first] = 0;
            wrong[last] = 0;
            let result = std::panic::catch_unwind(|| {
                k.maxpool2d_backward(&s, &y, &wrong, &mut vec![0.0; s.input_len()]);
            });
            let msg = *result
                .expect_err("must panic")
                .downcast::<String>()
                .unwrap();
            let want = format!("argmax[{first}] = 0 is outside its pooling window");
            assert!(msg.contains(&want), "{} width {w}: {msg}", k.isa());
        }
    }
}

#[test]
#[should_panic(expected = "pool2d: stride_h must be positive, got 0")]
fn zero_stride_panics() {
    let s = Pool2dShape::new(1, 1, (4, 4), (2, 2), (0, 2));
    Kernels::get().maxpool2d_forward(&s, &[0.0; 16], &mut [0.0; 4], &mut [0; 4]);
}

#[test]
#[should_panic(expected = "pool2d: empty output: in_w 3 is smaller than kernel_w 4")]
fn empty_output_panics() {
    let s = Pool2dShape::new(1, 1, (4, 3), (2, 4), (2, 2));
    Kernels::get().maxpool2d_forward(&s, &[0.0; 12], &mut [], &mut []);
}

#[test]
#[should_panic(expected = "maxpool2d_forward: argmax: expected length 4, got 3")]
fn argmax_length_panics() {
    let s = Pool2dShape::new(1, 1, (4, 4), (2, 2), (2, 2));
    Kernels::get().maxpool2d_forward(&s, &[0.0; 16], &mut [0.0; 4], &mut [0; 3]);
}

#[test]
#[should_panic(expected = "maxpool2d_backward: grad_input: expected length 16, got 15")]
fn grad_input_length_panics() {
    let s = Pool2dShape::new(1, 1, (4, 4), (2, 2), (2, 2));
    Kernels::get().maxpool2d_backward(&s, &[0.0; 4], &[0; 4], &mut [0.0; 15]);
}
