//! Average pooling on every ISA against the reference: bit for bit with the f32 reference (the
//! 2x2 stride-2 vector path adds in the reference's order and divides), and within
//! `gamma_(k+1) * mean |x|` of the f64 reference (`k` = kernel_h * kernel_w additions and one
//! division, `gamma_n = n u / (1 - n u)`, `u = 2^-24`); random kernel sizes and strides, every
//! width of the 2x2 path; gradient check of the reference; the panics.

mod common;

use common::{all_kernels, cases, random_vec, widen};
use proptest::prelude::*;
use simdnet_kernels::avgpool::{scalar, Pool2dShape};
use simdnet_kernels::gradcheck::{GradCheck, Tensor};
use simdnet_kernels::Kernels;

fn gamma(n: usize) -> f64 {
    let nu = n as f64 * f32::EPSILON as f64 / 2.0;
    nu / (1.0 - nu)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn check(s: &Pool2dShape, seed: u64) {
    let x = random_vec(s.input_len(), seed);
    let g = random_vec(s.output_len(), seed ^ 1);
    let mut want = vec![0.0f32; s.output_len()];
    scalar::forward(s, &x, &mut want);
    let mut want64 = vec![0.0f64; s.output_len()];
    scalar::forward(s, &widen(&x), &mut want64);
    let mut mag = vec![0.0f64; s.output_len()];
    let ax: Vec<f64> = x.iter().map(|v| v.abs() as f64).collect();
    scalar::forward(s, &ax, &mut mag);
    let mut want_gi = vec![0.0f32; s.input_len()];
    scalar::backward(s, &g, &mut want_gi);
    let mut want_gi64 = vec![0.0f64; s.input_len()];
    scalar::backward(s, &widen(&g), &mut want_gi64);
    let mut gi_mag = vec![0.0f64; s.input_len()];
    let ag: Vec<f64> = g.iter().map(|v| v.abs() as f64).collect();
    scalar::backward(s, &ag, &mut gi_mag);
    let k_terms = s.kernel_h * s.kernel_w;
    for k in all_kernels() {
        let what = format!("{} {s:?}", k.isa());
        let mut y = vec![f32::NAN; s.output_len()];
        k.avgpool2d_forward(s, &x, &mut y);
        assert_eq!(bits(&y), bits(&want), "{what}: output");
        for (i, ((&a, &b), &m)) in y.iter().zip(&want64).zip(&mag).enumerate() {
            let bound = gamma(k_terms + 1) * m + f32::MIN_POSITIVE as f64;
            assert!(
                (a as f64 - b).abs() <= bound,
                "{what}: output {i}: {a} vs {b}"
            );
        }
        let mut gi = vec![f32::NAN; s.input_len()];
        k.avgpool2d_backward(s, &g, &mut gi);
        assert_eq!(bits(&gi), bits(&want_gi), "{what}: grad_input");
        // Each element gets at most k shares, each rounded once, added in some order.
        for (i, ((&a, &b), &m)) in gi.iter().zip(&want_gi64).zip(&gi_mag).enumerate() {
            let bound = gamma(2 * k_terms) * m + f32::MIN_POSITIVE as f64;
            assert!(
                (a as f64 - b).abs() <= bound,
                "{what}: grad_input {i}: {a} vs {b}"
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
    fn random_shapes_match_reference(s in general_shape(), seed in any::<u64>()) {
        check(&s, seed);
    }

    #[test]
    fn two_by_two_stride_two_matches_reference(
        n in 0usize..=2, c in 1usize..=3, h in 2usize..=13, w in 2usize..=37, seed in any::<u64>()
    ) {
        check(&Pool2dShape::new(n, c, (h, w), (2, 2), (2, 2)), seed);
    }
}

#[test]
fn every_width_of_the_2x2_path() {
    for w in 2..=40 {
        for h in [2, 3, 5] {
            check(
                &Pool2dShape::new(1, 2, (h, w), (2, 2), (2, 2)),
                (w * 10 + h) as u64,
            );
        }
    }
}

#[test]
fn lenet_shapes() {
    let batch = if cfg!(target_arch = "aarch64") { 2 } else { 64 };
    check(&Pool2dShape::new(batch, 6, (28, 28), (2, 2), (2, 2)), 1);
    check(&Pool2dShape::new(batch, 16, (10, 10), (2, 2), (2, 2)), 2);
}

#[test]
fn known_values() {
    // 2x4 input, 2x2 windows stride 2: means of [1,2,5,6] and [3,4,7,8].
    let s = Pool2dShape::new(1, 1, (2, 4), (2, 2), (2, 2));
    for k in all_kernels() {
        let mut y = [0.0f32; 2];
        k.avgpool2d_forward(&s, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], &mut y);
        assert_eq!(y, [3.5, 5.5], "{}", k.isa());
        let mut gi = [f32::NAN; 8];
        k.avgpool2d_backward(&s, &[4.0, -8.0], &mut gi);
        assert_eq!(
            gi,
            [1.0, 1.0, -2.0, -2.0, 1.0, 1.0, -2.0, -2.0],
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
        let x = widen(&random_vec(s.input_len(), 1));
        let r = widen(&random_vec(s.output_len(), 2)); // loss = sum(r * avgpool(x))
        let mut gx = vec![0.0; s.input_len()];
        scalar::backward(&s, &r, &mut gx);
        let mut tensors = vec![Tensor::new("x", vec![s.input_len()], x, gx)];
        let mut y = vec![0.0; s.output_len()];
        let report = GradCheck::default().run(&mut tensors, |t| {
            scalar::forward(&s, &t[0].values, &mut y);
            y.iter().zip(&r).map(|(y, r)| y * r).sum()
        });
        assert!(report.passed(), "{s:?}\n{report}");
    }
}

#[test]
#[should_panic(expected = "pool2d: kernel_w must be positive, got 0")]
fn zero_kernel_panics() {
    let s = Pool2dShape::new(1, 1, (4, 4), (2, 0), (2, 2));
    Kernels::get().avgpool2d_forward(&s, &[0.0; 16], &mut []);
}

#[test]
#[should_panic(expected = "pool2d: empty output: in_h 1 is smaller than kernel_h 2")]
fn empty_output_panics() {
    let s = Pool2dShape::new(1, 1, (1, 4), (2, 2), (2, 2));
    Kernels::get().avgpool2d_forward(&s, &[0.0; 4], &mut []);
}

#[test]
#[should_panic(expected = "avgpool2d_forward: output: expected length 4, got 5")]
fn output_length_panics() {
    let s = Pool2dShape::new(1, 1, (4, 4), (2, 2), (2, 2));
    Kernels::get().avgpool2d_forward(&s, &[0.0; 16], &mut [0.0; 5]);
}

#[test]
#[should_panic(expected = "avgpool2d_backward: grad_output: expected length 4, got 3")]
fn backward_length_panics() {
    let s = Pool2dShape::new(1, 1, (4, 4), (2, 2), (2, 2));
    Kernels::get().avgpool2d_backward(&s, &[0.0; 3], &mut [0.0; 16]);
}
