//! ReLU on every ISA against the reference: bit for bit (the operations are selections), on
//! every length 0..=70 (all tails of 8 and 4 lanes) and random slices with NaN, infinities and
//! signed zeros; PyTorch's semantics spelled out; gradient check of the reference backward.

mod common;

use common::{all_kernels, cases, random_vec, widen};
use proptest::prelude::*;
use simdnet_kernels::gradcheck::{GradCheck, Tensor};
use simdnet_kernels::relu::scalar;
use simdnet_kernels::Kernels;

/// `n` values from `seed`: mostly uniform in [-1, 1), with NaN, +-inf, +-0 and tiny values mixed
/// in when `special`.
fn values(n: usize, seed: u64, special: bool) -> Vec<f32> {
    let picks = [
        f32::NAN,
        -0.0,
        0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e-40,
        -1e-40,
    ];
    random_vec(n, seed)
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let h = (seed ^ i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58;
            if special && h < picks.len() as u64 {
                picks[h as usize]
            } else {
                v
            }
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Every ISA's forward, in-place forward and backward against the f32 reference (same bits) and
/// the f64 reference (same value).
fn check(n: usize, seed: u64, special: bool) {
    let x = values(n, seed, special);
    let g = values(n, seed ^ 5, special);
    let mut want_y = vec![0.0f32; n];
    scalar::forward(&x, &mut want_y);
    let mut want_y64 = vec![0.0f64; n];
    scalar::forward(&widen(&x), &mut want_y64);
    for (a, b) in want_y.iter().zip(&want_y64) {
        assert!(a.to_bits() == (*b as f32).to_bits() || (a.is_nan() && b.is_nan()));
    }
    // Backward from the forward's output and from raw values (so outputs of every sign occur).
    for y in [want_y.clone(), x.clone()] {
        let mut want_gi = vec![0.0f32; n];
        scalar::backward(&y, &g, &mut want_gi);
        for k in all_kernels() {
            let mut gi = vec![f32::NAN; n];
            k.relu_backward(&y, &g, &mut gi);
            assert_eq!(bits(&gi), bits(&want_gi), "{} backward n={n}", k.isa());
        }
    }
    for k in all_kernels() {
        let mut y = vec![f32::NAN; n];
        k.relu_forward(&x, &mut y);
        assert_eq!(bits(&y), bits(&want_y), "{} forward n={n}", k.isa());
        let mut z = x.clone();
        k.relu_forward_in_place(&mut z);
        assert_eq!(bits(&z), bits(&want_y), "{} in place n={n}", k.isa());
    }
}

#[test]
fn every_length_up_to_70() {
    for n in 0..=70 {
        check(n, n as u64, true);
        check(n, 1000 + n as u64, false);
    }
}

#[test]
fn lenet_size() {
    let n = if cfg!(target_arch = "aarch64") {
        6 * 28 * 28
    } else {
        64 * 6 * 28 * 28
    };
    check(n, 77, true);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn random_slices_match_reference(n in 0usize..600, seed in any::<u64>(), special in any::<bool>()) {
        check(n, seed, special);
    }
}

#[test]
fn pytorch_semantics() {
    let x = [
        f32::NAN,
        -0.0,
        0.0,
        -1.0,
        2.0,
        f32::NEG_INFINITY,
        f32::INFINITY,
        -1e-40,
        1e-40,
    ];
    for k in all_kernels() {
        // Long enough that the vector path, not only the tail, sees every case.
        let xs: Vec<f32> = x.iter().cycle().take(9 * 8).copied().collect();
        let mut y = vec![0.0; xs.len()];
        k.relu_forward(&xs, &mut y);
        for (i, (&a, &b)) in xs.iter().zip(&y).enumerate() {
            let ok = match i % 9 {
                0 => b.is_nan(),
                1 => b.to_bits() == (-0.0f32).to_bits(), // torch.relu(-0.) is -0.
                2 | 4 | 6 | 8 => b.to_bits() == a.to_bits(),
                _ => b.to_bits() == 0, // +0.0
            };
            assert!(ok, "{}: relu({a}) = {b}", k.isa());
        }
        // threshold_backward: zero where output <= 0, the gradient elsewhere (NaN included).
        let out: Vec<f32> = y.clone();
        let g = vec![3.0f32; out.len()];
        let mut gi = vec![0.0; out.len()];
        k.relu_backward(&out, &g, &mut gi);
        for (i, (&o, &d)) in out.iter().zip(&gi).enumerate() {
            let want = if o.is_nan() || o > 0.0 { 3.0 } else { 0.0 };
            assert_eq!(d, want, "{}: index {i}, output {o}", k.isa());
        }
        // A NaN gradient where the output is not positive is blocked.
        let mut gi = [1.0f32; 9];
        k.relu_backward(&[-1.0; 9], &[f32::NAN; 9], &mut gi);
        assert!(gi.iter().all(|&v| v == 0.0), "{}", k.isa());
    }
}

#[test]
fn gradcheck_reference_backward() {
    // Inputs away from 0, where relu is differentiable.
    let x: Vec<f64> = widen(&random_vec(200, 3))
        .into_iter()
        .map(|v| if v.abs() < 0.05 { v + 0.1 } else { v })
        .collect();
    let r = widen(&random_vec(200, 4)); // loss = sum(r * relu(x))
    let mut y = vec![0.0; 200];
    scalar::forward(&x, &mut y);
    let mut gx = vec![0.0; 200];
    scalar::backward(&y, &r, &mut gx);
    let mut tensors = vec![Tensor::new("x", vec![200], x, gx)];
    let mut out = vec![0.0; 200];
    let report = GradCheck::default().run(&mut tensors, |t| {
        scalar::forward(&t[0].values, &mut out);
        out.iter().zip(&r).map(|(o, r)| o * r).sum()
    });
    assert!(report.passed(), "{report}");
}

#[test]
#[should_panic(expected = "relu_forward: output: expected length 5, got 4")]
fn forward_length_panics() {
    Kernels::get().relu_forward(&[0.0; 5], &mut [0.0; 4]);
}

#[test]
#[should_panic(expected = "relu_backward: grad_output: expected length 5, got 6")]
fn backward_grad_output_length_panics() {
    Kernels::get().relu_backward(&[0.0; 5], &[0.0; 6], &mut [0.0; 5]);
}

#[test]
#[should_panic(expected = "relu_backward: grad_input: expected length 5, got 3")]
fn backward_grad_input_length_panics() {
    Kernels::get().relu_backward(&[0.0; 5], &[0.0; 5], &mut [0.0; 3]);
}
