//! Bias add and backward on every ISA against the reference: the add is exact (bit for bit
//! with the f32 reference and equal to the f64 one for these inputs, whose sums are exact in
//! f64); the backward sums in another order, so it is held to the summation bound
//! `gamma_n * sum |g|` with `n = batch * spatial` terms, `gamma_n = n u / (1 - n u)`,
//! `u = 2^-24`. Shapes include 0 and 1 and every tail of 8 and 4 lanes; gradient check of the
//! reference.

mod common;

use common::{all_kernels, cases, random_vec, widen};
use proptest::prelude::*;
use simdnet_kernels::bias::scalar;
use simdnet_kernels::gradcheck::{GradCheck, Tensor};
use simdnet_kernels::Kernels;

fn gamma(n: usize) -> f64 {
    let nu = n as f64 * f32::EPSILON as f64 / 2.0;
    nu / (1.0 - nu)
}

fn check(batch: usize, channels: usize, spatial: usize, seed: u64) {
    let n = batch * channels * spatial;
    let x = random_vec(n, seed);
    let b = random_vec(channels, seed ^ 1);
    let mut want = x.clone();
    scalar::add(&mut want, &b, batch, spatial);
    let mut want64 = widen(&x);
    scalar::add(&mut want64, &widen(&b), batch, spatial);
    for (a, w) in want.iter().zip(&want64) {
        assert_eq!(*a as f64, *w);
    }
    let g = random_vec(n, seed ^ 2);
    let mut gb64 = vec![0.0f64; channels];
    scalar::backward(&widen(&g), &mut gb64, batch, spatial);
    let mut mag = vec![0.0f64; channels];
    let abs_g: Vec<f64> = g.iter().map(|v| v.abs() as f64).collect();
    scalar::backward(&abs_g, &mut mag, batch, spatial);
    for k in all_kernels() {
        let what = format!("{} [{batch}, {channels}, {spatial}]", k.isa());
        let mut y = x.clone();
        k.bias_add(&mut y, &b, batch, spatial);
        let same = y.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{what}: bias_add differs from the reference");
        let mut gb = vec![f32::NAN; channels];
        k.bias_backward(&g, &mut gb, batch, spatial);
        for c in 0..channels {
            let bound = gamma(batch * spatial) * mag[c];
            let err = (gb[c] as f64 - gb64[c]).abs();
            assert!(
                err <= bound,
                "{what}: channel {c}: got {}, want {}, |diff| {err:e} > {bound:e}",
                gb[c],
                gb64[c]
            );
        }
    }
}

#[test]
fn every_spatial_tail_and_linear_rows() {
    for spatial in 0..=40 {
        check(2, 3, spatial, spatial as u64);
    }
    // A Linear layer's [N, F]: spatial 1, every row length to 40.
    for channels in 0..=40 {
        check(3, channels, 1, 100 + channels as u64);
    }
}

#[test]
fn lenet_sizes() {
    let batch = if cfg!(target_arch = "aarch64") { 4 } else { 64 };
    check(batch, 6, 28 * 28, 1);
    check(batch, 16, 10 * 10, 2);
    check(batch, 120, 1, 3);
    check(batch, 84, 1, 4);
    check(batch, 10, 1, 5);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn random_shapes_match_reference(
        batch in 0usize..=5, channels in 0usize..=9, spatial in 0usize..=70, seed in any::<u64>()
    ) {
        check(batch, channels, spatial, seed);
    }
}

#[test]
fn nan_and_infinity_propagate() {
    for k in all_kernels() {
        let mut x = vec![1.0f32; 2 * 20];
        k.bias_add(&mut x, &[f32::NAN, f32::INFINITY], 1, 20);
        assert!(x[..20].iter().all(|v| v.is_nan()) && x[20..].iter().all(|&v| v == f32::INFINITY));
        let mut g = vec![1.0f32; 2 * 20];
        g[37] = f32::NAN;
        let mut gb = [0.0f32; 2];
        k.bias_backward(&g, &mut gb, 1, 20);
        assert!(gb[0] == 20.0 && gb[1].is_nan(), "{}: {gb:?}", k.isa());
    }
}

#[test]
fn gradcheck_reference_backward() {
    let (batch, channels, spatial) = (3, 4, 5);
    let n = batch * channels * spatial;
    let x = widen(&random_vec(n, 1));
    let b = widen(&random_vec(channels, 2));
    let r = widen(&random_vec(n, 3)); // loss = sum(r * (x + b))
    let mut gb = vec![0.0; channels];
    scalar::backward(&r, &mut gb, batch, spatial);
    let mut tensors = vec![
        Tensor::new("x", vec![batch, channels, spatial], x, r.clone()),
        Tensor::new("bias", vec![channels], b, gb),
    ];
    let report = GradCheck::default().run(&mut tensors, |t| {
        let mut y = t[0].values.clone();
        scalar::add(&mut y, &t[1].values, batch, spatial);
        y.iter().zip(&r).map(|(y, r)| y * r).sum()
    });
    assert!(report.passed(), "{report}");
}

#[test]
#[should_panic(expected = "bias_add: x: expected length 24, got 23")]
fn add_length_panics() {
    Kernels::get().bias_add(&mut [0.0; 23], &[0.0; 3], 2, 4);
}

#[test]
#[should_panic(expected = "bias_backward: grad_output: expected length 24, got 25")]
fn backward_length_panics() {
    Kernels::get().bias_backward(&[0.0; 25], &mut [0.0; 3], 2, 4);
}
