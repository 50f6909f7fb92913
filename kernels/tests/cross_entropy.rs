//! Fused softmax-cross-entropy: PyTorch golden fixtures on every ISA (every option, the
//! all-ignored batch, non-finite rows, error wording), property tests of every ISA against the
//! reference, f64 gradient checks of the reference, and the length panics.

mod common;
mod fixtures;

use common::{all_kernels, assert_close, cases, random_vec};
use proptest::prelude::*;
use simdnet_kernels::cross_entropy::{
    scalar, CrossEntropyError, CrossEntropyOptions, GradOutput, Reduction, Targets,
};
use simdnet_kernels::gradcheck::{GradCheck, Tensor};
use simdnet_kernels::{Isa, Kernels};

/// The bound for the fixtures: `1e-6 + 1e-5 * |expected|`.
const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-5;

fn reduction(name: &str) -> Reduction {
    match name {
        "none" => Reduction::None,
        "mean" => Reduction::Mean,
        "sum" => Reduction::Sum,
        other => panic!("unknown reduction {other}"),
    }
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// What one way of calling the kernel produced.
struct Outcome {
    loss: f32,
    row_losses: Vec<f32>,
    grad: Option<Vec<f32>>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Call {
    Separate,
    InPlace,
    ForwardOnly,
}

#[allow(clippy::too_many_arguments)]
fn call(
    k: &Kernels,
    how: Call,
    logits: &[f32],
    classes: usize,
    targets: Targets<'_>,
    options: &CrossEntropyOptions<'_>,
    grad_output: GradOutput<'_>,
) -> Result<Outcome, CrossEntropyError> {
    let rows = logits.len() / classes;
    let mut row_losses = vec![f32::NAN; rows];
    match how {
        Call::Separate => {
            // NaN-filled so an unwritten element cannot pass.
            let mut grad = vec![f32::NAN; logits.len()];
            let loss = k.cross_entropy_forward_backward(
                logits,
                classes,
                targets,
                options,
                grad_output,
                &mut grad,
                Some(&mut row_losses),
            )?;
            Ok(Outcome {
                loss,
                row_losses,
                grad: Some(grad),
            })
        }
        Call::InPlace => {
            let mut x = logits.to_vec();
            let loss = k.cross_entropy_forward_backward_in_place(
                &mut x,
                classes,
                targets,
                options,
                grad_output,
                Some(&mut row_losses),
            )?;
            Ok(Outcome {
                loss,
                row_losses,
                grad: Some(x),
            })
        }
        Call::ForwardOnly => {
            let loss =
                k.cross_entropy_forward(logits, classes, targets, options, Some(&mut row_losses))?;
            Ok(Outcome {
                loss,
                row_losses,
                grad: None,
            })
        }
    }
}

/// Sum with NaN and infinities as f64 sums them (the `None` reduction's return value).
fn sum(v: &[f64]) -> f64 {
    v.iter().sum()
}

#[test]
fn pytorch_golden_fixtures_on_every_isa_and_every_call() {
    let fixture = fixtures::load("cross_entropy.txt");
    assert!(fixture.cases.len() >= 84, "{} cases", fixture.cases.len());
    for case in &fixture.cases {
        let logits = case.f32s("logits");
        let classes = case.dims("logits")[1];
        let red = reduction(case.str("reduction"));
        let weight = case.has("weight").then(|| case.f32s("weight"));
        let options = CrossEntropyOptions {
            reduction: red,
            weight: weight.as_deref(),
            ignore_index: case.str("ignore_index").parse().unwrap(),
            label_smoothing: case.str("label_smoothing").parse().unwrap(),
        };
        let idx;
        let probs;
        let targets = if case.has("targets_index") {
            idx = case.i64s("targets_index");
            Targets::Indices(&idx)
        } else {
            probs = case.f32s("targets_prob");
            Targets::Probabilities(&probs)
        };
        let go = case.f32s("grad_output");
        let grad_output = if red == Reduction::None {
            GradOutput::PerRow(&go)
        } else {
            GradOutput::Scalar(go[0])
        };
        let want_loss = widen(&case.f32s("loss"));
        let want_grad = widen(&case.f32s("grad"));
        for k in all_kernels() {
            for how in [Call::Separate, Call::InPlace, Call::ForwardOnly] {
                let what = format!("{} {} {:?}", case.name, k.isa(), how);
                let got = call(&k, how, &logits, classes, targets, &options, grad_output)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                if red == Reduction::None {
                    assert_close(
                        &format!("{what}: row losses"),
                        &got.row_losses,
                        &want_loss,
                        ATOL,
                        RTOL,
                    );
                    assert_close(
                        &format!("{what}: loss sum"),
                        &[got.loss],
                        &[sum(&want_loss)],
                        1e-5,
                        RTOL,
                    );
                } else {
                    assert_close(
                        &format!("{what}: loss"),
                        &[got.loss],
                        &want_loss,
                        ATOL,
                        RTOL,
                    );
                }
                if let Some(grad) = got.grad {
                    assert_close(&format!("{what}: grad"), &grad, &want_grad, ATOL, RTOL);
                }
            }
        }
        // The f64 reference agrees with PyTorch too.
        let logits64 = widen(&logits);
        let weight64 = weight.as_ref().map(|w| widen(w));
        let options64 = CrossEntropyOptions {
            reduction: red,
            weight: weight64.as_deref(),
            ignore_index: options.ignore_index,
            label_smoothing: options.label_smoothing as f64,
        };
        let probs64;
        let targets64 = match targets {
            Targets::Indices(t) => Targets::Indices(t),
            Targets::Probabilities(p) => {
                probs64 = widen(p);
                Targets::Probabilities(&probs64[..])
            }
        };
        let go64 = widen(&go);
        let grad_output64 = match grad_output {
            GradOutput::PerRow(_) => GradOutput::PerRow(&go64[..]),
            GradOutput::Scalar(g) => GradOutput::Scalar(g as f64),
        };
        let mut grad = vec![f64::NAN; logits.len()];
        let mut rows = vec![f64::NAN; logits.len() / classes];
        let loss = scalar::forward_backward(
            &logits64,
            classes,
            targets64,
            &options64,
            grad_output64,
            Some(&mut grad),
            Some(&mut rows),
        )
        .unwrap();
        let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        if red == Reduction::None {
            assert_close(
                &format!("{} f64: rows", case.name),
                &to32(&rows),
                &want_loss,
                ATOL,
                RTOL,
            );
        } else {
            assert_close(
                &format!("{} f64: loss", case.name),
                &[loss as f32],
                &want_loss,
                ATOL,
                RTOL,
            );
        }
        assert_close(
            &format!("{} f64: grad", case.name),
            &to32(&grad),
            &want_grad,
            ATOL,
            RTOL,
        );
    }
}

#[test]
fn errors_use_pytorch_wording() {
    let fixture = fixtures::load("cross_entropy.txt");
    let (n, c) = (6, 5);
    let logits = random_vec(n * c, 1);
    let probs = vec![0.2f32; n * c];
    let idx = [0i64, 1, 2, 3, 4, 0];
    let opts = CrossEntropyOptions::default();
    let k = Kernels::get();
    let run = |targets: Targets<'_>, options: &CrossEntropyOptions<'_>| {
        let mut grad = vec![0.0; n * c];
        let before = grad.clone();
        let err = k
            .cross_entropy_forward_backward(
                &logits,
                c,
                targets,
                options,
                GradOutput::Scalar(1.0),
                &mut grad,
                None,
            )
            .unwrap_err();
        assert_eq!(grad, before, "nothing is written on error");
        err.to_string()
    };
    let short_weight = [1.0f32; 4];
    let cases: Vec<(&str, String)> = vec![
        (
            "target_out_of_bounds",
            run(Targets::Indices(&[1, 2, 10, 0, 0, 0]), &opts),
        ),
        (
            "negative_target",
            run(Targets::Indices(&[1, 2, -1, 0, 0, 0]), &opts),
        ),
        (
            "weight_length",
            run(
                Targets::Indices(&idx),
                &CrossEntropyOptions {
                    weight: Some(&short_weight),
                    ..opts
                },
            ),
        ),
        (
            "weight_length_prob",
            run(
                Targets::Probabilities(&probs),
                &CrossEntropyOptions {
                    weight: Some(&short_weight),
                    ..opts
                },
            ),
        ),
        (
            "label_smoothing_above_1",
            run(
                Targets::Indices(&idx),
                &CrossEntropyOptions {
                    label_smoothing: 1.5,
                    ..opts
                },
            ),
        ),
        (
            "label_smoothing_2",
            run(
                Targets::Indices(&idx),
                &CrossEntropyOptions {
                    label_smoothing: 2.0,
                    ..opts
                },
            ),
        ),
        ("batch_mismatch", run(Targets::Indices(&idx[..4]), &opts)),
        (
            "prob_ignore_index",
            run(
                Targets::Probabilities(&probs),
                &CrossEntropyOptions {
                    ignore_index: 0,
                    ..opts
                },
            ),
        ),
    ];
    assert_eq!(cases.len(), fixture.errors.len());
    for (name, got) in cases {
        assert_eq!(got, fixture.errors[name], "{name}");
    }
    // The probability path's batch mismatch, and PyTorch's order of checks.
    assert_eq!(
        run(Targets::Probabilities(&probs[..4 * c]), &opts),
        "Expected input batch_size (6) to match target batch_size (4)."
    );
    let everything_wrong = CrossEntropyOptions {
        weight: Some(&short_weight),
        label_smoothing: 2.0,
        ..opts
    };
    assert_eq!(
        run(Targets::Indices(&[10, 0, 0]), &everything_wrong),
        "label_smoothing must be between 0.0 and 1.0. Got: 2"
    );
    let weight_and_bounds = CrossEntropyOptions {
        weight: Some(&short_weight),
        ..opts
    };
    assert!(
        run(Targets::Indices(&[10, 0, 0, 0, 0, 0]), &weight_and_bounds)
            .starts_with("weight tensor")
    );
    assert_eq!(
        run(
            Targets::Probabilities(&probs),
            &CrossEntropyOptions {
                ignore_index: 0,
                ..everything_wrong
            }
        ),
        "ignore_index is not supported for floating point target"
    );
    // A negative ignore_index other than -100 is accepted with probabilities, as in PyTorch.
    let mut grad = vec![0.0; n * c];
    assert!(k
        .cross_entropy_forward_backward(
            &logits,
            c,
            Targets::Probabilities(&probs),
            &CrossEntropyOptions {
                ignore_index: -1,
                ..opts
            },
            GradOutput::Scalar(1.0),
            &mut grad,
            None
        )
        .is_ok());
}

#[test]
fn label_smoothing_zero_negative_and_nan_mean_none_as_in_pytorch() {
    let (n, c) = (3, 7);
    let logits = random_vec(n * c, 2);
    let t = [0i64, 6, 3];
    for k in all_kernels() {
        let plain = call(
            &k,
            Call::Separate,
            &logits,
            c,
            Targets::Indices(&t),
            &CrossEntropyOptions::default(),
            GradOutput::Scalar(1.0),
        )
        .unwrap();
        for ls in [-0.5f32, f32::NAN, 0.0] {
            let opts = CrossEntropyOptions {
                label_smoothing: ls,
                ..Default::default()
            };
            let got = call(
                &k,
                Call::Separate,
                &logits,
                c,
                Targets::Indices(&t),
                &opts,
                GradOutput::Scalar(1.0),
            )
            .unwrap();
            assert_eq!(
                got.loss.to_bits(),
                plain.loss.to_bits(),
                "{} ls {ls}",
                k.isa()
            );
            assert_eq!(got.grad, plain.grad);
        }
        // Exactly 1 is allowed.
        let opts = CrossEntropyOptions {
            label_smoothing: 1.0,
            ..Default::default()
        };
        assert!(call(
            &k,
            Call::Separate,
            &logits,
            c,
            Targets::Indices(&t),
            &opts,
            GradOutput::Scalar(1.0)
        )
        .is_ok());
    }
}

#[test]
fn the_tutorial_example() {
    for k in all_kernels() {
        let got = call(
            &k,
            Call::Separate,
            &[2.0, 1.0, 0.1],
            3,
            Targets::Indices(&[0]),
            &CrossEntropyOptions::default(),
            GradOutput::Scalar(1.0),
        )
        .unwrap();
        let g = got.grad.unwrap();
        let softmax = [g[0] + 1.0, g[1], g[2]];
        assert_close("softmax", &softmax, &[0.659, 0.242, 0.099], 5e-4, 0.0);
        assert_close("loss", &[got.loss], &[0.417], 5e-4, 0.0);
    }
}

#[test]
fn one_class_zero_rows_and_all_ignored() {
    for k in all_kernels() {
        // C = 1: log-softmax is 0, so loss 0 and gradient 0.
        let got = call(
            &k,
            Call::Separate,
            &[3.0, -2.0],
            1,
            Targets::Indices(&[0, 0]),
            &CrossEntropyOptions::default(),
            GradOutput::Scalar(1.0),
        )
        .unwrap();
        assert_eq!(got.loss, 0.0);
        assert_eq!(got.grad.unwrap(), vec![0.0, 0.0]);
        // Zero rows: NaN under mean, 0 under sum.
        for (red, nan) in [
            (Reduction::Mean, true),
            (Reduction::Sum, false),
            (Reduction::None, false),
        ] {
            let opts = CrossEntropyOptions {
                reduction: red,
                ..Default::default()
            };
            let l = call(
                &k,
                Call::Separate,
                &[],
                4,
                Targets::Indices(&[]),
                &opts,
                GradOutput::Scalar(1.0),
            )
            .unwrap()
            .loss;
            assert_eq!(l.is_nan(), nan, "{red:?}");
            let l = call(
                &k,
                Call::Separate,
                &[],
                4,
                Targets::Probabilities(&[]),
                &opts,
                GradOutput::Scalar(1.0),
            )
            .unwrap()
            .loss;
            assert_eq!(l.is_nan(), nan, "{red:?} probabilities");
        }
        // All ignored, long rows: NaN mean, zero gradient.
        let c = 37;
        let logits = random_vec(4 * c, 3);
        let got = call(
            &k,
            Call::InPlace,
            &logits,
            c,
            Targets::Indices(&[-100; 4]),
            &CrossEntropyOptions::default(),
            GradOutput::Scalar(1.0),
        )
        .unwrap();
        assert!(got.loss.is_nan());
        assert!(got.grad.unwrap().iter().all(|&g| g == 0.0));
    }
}

/// Logits of one of several kinds: ordinary, tiny, huge, with the maximum in a late block.
fn logits_of(kind: u8, n: usize, seed: u64) -> Vec<f32> {
    let v = random_vec(n, seed);
    match kind {
        0 => v.iter().map(|x| x * 4.0).collect(),
        1 => v.iter().map(|x| x * 1e-4).collect(),
        2 => v.iter().map(|x| x * 3e3).collect(),
        _ => v.iter().map(|x| x * 60.0 - 20.0).collect(),
    }
}

/// Tolerance of a kernel against the f64 reference, scaled by the logits' size.
fn check_against_reference(
    k: &Kernels,
    logits: &[f32],
    classes: usize,
    targets: Targets<'_>,
    options: &CrossEntropyOptions<'_>,
    grad_output: GradOutput<'_>,
) {
    let logits64 = widen(logits);
    let weight64 = options.weight.map(widen);
    let options64 = CrossEntropyOptions {
        reduction: options.reduction,
        weight: weight64.as_deref(),
        ignore_index: options.ignore_index,
        label_smoothing: options.label_smoothing as f64,
    };
    let probs64;
    let targets64 = match targets {
        Targets::Indices(t) => Targets::Indices(t),
        Targets::Probabilities(p) => {
            probs64 = widen(p);
            Targets::Probabilities(&probs64[..])
        }
    };
    let go64;
    let grad_output64 = match grad_output {
        GradOutput::PerRow(g) => {
            go64 = widen(g);
            GradOutput::PerRow(&go64[..])
        }
        GradOutput::Scalar(g) => GradOutput::Scalar(g as f64),
    };
    let rows = logits.len() / classes;
    let mut grad = vec![0.0f64; logits.len()];
    let mut row_losses = vec![0.0f64; rows];
    let want = scalar::forward_backward(
        &logits64,
        classes,
        targets64,
        &options64,
        grad_output64,
        Some(&mut grad),
        Some(&mut row_losses),
    )
    .unwrap();
    let big = logits
        .iter()
        .filter(|x| x.is_finite())
        .fold(1.0f64, |m, &x| m.max((x as f64).abs()));
    let wmax = options
        .weight
        .map_or(1.0, |w| w.iter().fold(0.0f64, |m, &x| m.max(x as f64)));
    for how in [Call::Separate, Call::InPlace, Call::ForwardOnly] {
        let what = format!("{} {how:?} C={classes} N={rows} {options:?}", k.isa());
        let got = call(k, how, logits, classes, targets, options, grad_output).unwrap();
        // Loss: f32 rounding of terms of size |x|, summed over C classes (smoothing) and N rows.
        let loss_tol = 4e-7 * big * wmax * (classes as f64).sqrt() * (rows as f64 + 1.0);
        assert_close(
            &format!("{what}: loss"),
            &[got.loss],
            &[want],
            loss_tol,
            1e-5,
        );
        assert_close(
            &format!("{what}: row losses"),
            &got.row_losses,
            &row_losses,
            4e-7 * big * wmax * (classes as f64).sqrt(),
            1e-5,
        );
        if let Some(g) = got.grad {
            assert_close(&format!("{what}: grad"), &g, &grad, 2e-6 * wmax, 1e-4);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(200)))]

    /// Every ISA against the f64 reference over the option grid, short rows (every tail), C = 1,
    /// tiny and huge logits.
    #[test]
    fn every_isa_matches_the_reference_over_the_option_grid(
        rows in 0usize..5,
        classes in prop_oneof![1usize..20, 20usize..70],
        kind in 0u8..4,
        seed in any::<u64>(),
        reduction in prop::sample::select(vec![Reduction::None, Reduction::Mean, Reduction::Sum]),
        weighted in any::<bool>(),
        ignoring in any::<bool>(),
        smoothing in prop::sample::select(vec![0.0f32, 0.1, 1.0]),
        probabilities in any::<bool>(),
        per_row in any::<bool>(),
    ) {
        let logits = logits_of(kind, rows * classes, seed);
        let weight: Vec<f32> = random_vec(classes, seed ^ 1).iter().map(|v| v.abs() * 2.0 + 0.1).collect();
        let idx: Vec<i64> = (0..rows)
            .map(|r| if ignoring && r % 2 == 1 { 2 } else { ((seed >> (r * 3)) % classes as u64) as i64 })
            .collect();
        let probs: Vec<f32> = (0..rows)
            .flat_map(|r| {
                let raw: Vec<f32> = random_vec(classes, seed ^ (r as u64 + 7)).iter().map(|v| v.abs()).collect();
                let total: f32 = raw.iter().sum::<f32>().max(1e-6);
                raw.into_iter().map(move |v| v / total)
            })
            .collect();
        let options = CrossEntropyOptions {
            reduction,
            weight: weighted.then_some(&weight[..]),
            ignore_index: if ignoring && !probabilities { 2 } else { -100 },
            label_smoothing: smoothing,
        };
        let targets = if probabilities { Targets::Probabilities(&probs[..]) } else { Targets::Indices(&idx[..]) };
        let go = random_vec(rows, seed ^ 3);
        let grad_output = if per_row && reduction == Reduction::None { GradOutput::PerRow(&go[..]) } else { GradOutput::Scalar(0.7) };
        for k in all_kernels() {
            check_against_reference(&k, &logits, classes, targets, &options, grad_output);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(200)))]

    /// Batches of short rows (the block kernel, sixteen rows side by side, whole blocks and a
    /// padded last one), with -inf, +inf and NaN logits sprinkled in.
    #[test]
    fn short_row_batches_match_the_reference(
        rows in 1usize..40,
        classes in 1usize..36,
        kind in 0u8..4,
        seed in any::<u64>(),
        reduction in prop::sample::select(vec![Reduction::None, Reduction::Mean, Reduction::Sum]),
        weighted in any::<bool>(),
        ignoring in any::<bool>(),
        per_row in any::<bool>(),
        specials in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3), 0..4),
    ) {
        let mut logits = logits_of(kind, rows * classes, seed);
        for (at, what) in &specials {
            let i = at.index(logits.len());
            logits[i] = [f32::NEG_INFINITY, f32::INFINITY, f32::NAN][*what as usize];
        }
        let weight: Vec<f32> = random_vec(classes, seed ^ 1).iter().map(|v| v.abs() * 2.0 + 0.1).collect();
        let idx: Vec<i64> = (0..rows)
            .map(|r| if ignoring && r % 3 == 1 { -7 } else { ((seed >> (r % 20 * 3)) % classes as u64) as i64 })
            .collect();
        let options = CrossEntropyOptions {
            reduction,
            weight: weighted.then_some(&weight[..]),
            ignore_index: -7,
            label_smoothing: 0.0,
        };
        let go = random_vec(rows, seed ^ 3);
        let grad_output = if per_row && reduction == Reduction::None { GradOutput::PerRow(&go[..]) } else { GradOutput::Scalar(0.7) };
        for k in all_kernels() {
            check_against_reference(&k, &logits, classes, Targets::Indices(&idx), &options, grad_output);
        }
    }
}

/// Rows of every length up to 40 and around the SIMD kernels' vector, block and head sizes
/// (16, 64, 128, 1024 and past it, with the maximum in the last, partial block so the reference
/// moves there), through the block kernel (no smoothing, C <= 32) and the row kernel (smoothing
/// and weights: every coefficient tail): every ISA matches the reference, and a gradient
/// written into a slice of a larger buffer leaves the elements around it untouched (no masked
/// load or store strays past a row's end).
#[test]
fn every_tail_length_matches_the_reference_and_writes_only_its_slice() {
    let lengths = (1..=40).chain([
        47, 48, 49, 63, 64, 65, 127, 128, 129, 1023, 1024, 1025, 1039, 1040, 1041, 1151, 1152, 1153,
    ]);
    const SENTINEL: f32 = 12345.0;
    const PAD: usize = 37;
    for classes in lengths {
        let rows = if classes <= 40 { 19 } else { 3 };
        let mut logits = logits_of(0, rows * classes, classes as u64);
        if classes > 1024 {
            for r in 0..rows {
                logits[r * classes + classes - 1 - r] = 30.0;
            }
        }
        let weight: Vec<f32> = random_vec(classes, 3)
            .iter()
            .map(|v| v.abs() + 0.5)
            .collect();
        let idx: Vec<i64> = (0..rows).map(|r| ((r * 5) % classes) as i64).collect();
        for smoothing in [0.0f32, 0.1] {
            let options = CrossEntropyOptions {
                label_smoothing: smoothing,
                weight: (smoothing > 0.0).then_some(&weight[..]),
                ..Default::default()
            };
            let targets = Targets::Indices(&idx);
            for k in all_kernels() {
                check_against_reference(
                    &k,
                    &logits,
                    classes,
                    targets,
                    &options,
                    GradOutput::Scalar(0.7),
                );
                let what = format!("{} C={classes} smoothing {smoothing}", k.isa());
                let n = logits.len();
                let mut buf = vec![SENTINEL; n + 2 * PAD];
                k.cross_entropy_forward_backward(
                    &logits,
                    classes,
                    targets,
                    &options,
                    GradOutput::Scalar(1.0),
                    &mut buf[PAD..PAD + n],
                    None,
                )
                .unwrap();
                let untouched = |b: &[f32]| b.iter().all(|&v| v == SENTINEL);
                assert!(
                    untouched(&buf[..PAD]) && untouched(&buf[PAD + n..]),
                    "{what}: separate"
                );
                assert!(buf[PAD..PAD + n].iter().all(|g| g.is_finite()), "{what}");
                let mut buf = vec![SENTINEL; n + 2 * PAD];
                buf[PAD..PAD + n].copy_from_slice(&logits);
                k.cross_entropy_forward_backward_in_place(
                    &mut buf[PAD..PAD + n],
                    classes,
                    targets,
                    &options,
                    GradOutput::Scalar(1.0),
                    None,
                )
                .unwrap();
                assert!(
                    untouched(&buf[..PAD]) && untouched(&buf[PAD + n..]),
                    "{what}: in place"
                );
            }
        }
    }
}

/// A row's loss and gradient do not depend on the rows around it: any split of a batch gives
/// the same bits (trainers split batches across threads).
#[test]
fn a_rows_numbers_do_not_depend_on_how_the_batch_is_split() {
    let rows = 13;
    for k in all_kernels() {
        for classes in [3usize, 10, 40] {
            for smoothing in [0.0f32, 0.1] {
                let logits = logits_of(0, rows * classes, classes as u64);
                let idx: Vec<i64> = (0..rows).map(|r| (r * 7 % classes) as i64).collect();
                let options = CrossEntropyOptions {
                    reduction: Reduction::None,
                    label_smoothing: smoothing,
                    ..Default::default()
                };
                let whole = call(
                    &k,
                    Call::Separate,
                    &logits,
                    classes,
                    Targets::Indices(&idx),
                    &options,
                    GradOutput::Scalar(1.0),
                )
                .unwrap();
                for split in 1..rows {
                    let (a, b) = logits.split_at(split * classes);
                    let first = call(
                        &k,
                        Call::Separate,
                        a,
                        classes,
                        Targets::Indices(&idx[..split]),
                        &options,
                        GradOutput::Scalar(1.0),
                    )
                    .unwrap();
                    let second = call(
                        &k,
                        Call::Separate,
                        b,
                        classes,
                        Targets::Indices(&idx[split..]),
                        &options,
                        GradOutput::Scalar(1.0),
                    )
                    .unwrap();
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    let joined_losses = [first.row_losses, second.row_losses].concat();
                    let joined_grad = [first.grad.unwrap(), second.grad.unwrap()].concat();
                    let what = format!(
                        "{} C={classes} smoothing {smoothing} split {split}",
                        k.isa()
                    );
                    assert_eq!(
                        bits(&joined_losses),
                        bits(&whole.row_losses),
                        "{what}: losses"
                    );
                    assert_eq!(
                        bits(&joined_grad),
                        bits(whole.grad.as_ref().unwrap()),
                        "{what}: grad"
                    );
                }
            }
        }
    }
}

/// Long rows: the maximum late in the row, long runs of -inf before finite values,
/// NaN and +inf late in the row.
#[test]
fn long_rows_with_late_maxima_and_non_finite_values() {
    let c = 5000;
    let mut logits = logits_of(0, 4 * c, 11);
    logits[c + 4500] = 40.0; // row 1: the maximum in the third block
    for v in &mut logits[2 * c..2 * c + 4096] {
        *v = f32::NEG_INFINITY; // row 2: two blocks of -inf first
    }
    logits[2 * c + 4999] = 3.0;
    for k in all_kernels() {
        check_against_reference(
            &k,
            &logits[..3 * c],
            c,
            Targets::Indices(&[0, 4500, 4999]),
            &CrossEntropyOptions::default(),
            GradOutput::Scalar(1.0),
        );
        let smooth = CrossEntropyOptions {
            label_smoothing: 0.1,
            reduction: Reduction::None,
            ..Default::default()
        };
        let got = call(
            &k,
            Call::Separate,
            &logits[..3 * c],
            c,
            Targets::Indices(&[0, 4500, 4999]),
            &smooth,
            GradOutput::Scalar(1.0),
        )
        .unwrap();
        assert!(
            got.row_losses[2].is_infinite(),
            "smoothing over -inf logits is +inf"
        );
        for bad in [f32::NAN, f32::INFINITY] {
            let mut x = logits[3 * c..].to_vec();
            x[4900] = bad;
            let got = call(
                &k,
                Call::Separate,
                &x,
                c,
                Targets::Indices(&[1]),
                &CrossEntropyOptions::default(),
                GradOutput::Scalar(1.0),
            )
            .unwrap();
            assert!(got.loss.is_nan(), "{} {bad}", k.isa());
            assert!(got.grad.unwrap().iter().all(|g| g.is_nan()));
        }
    }
}

/// Long rows whose maximum keeps moving, for pass 1 of the SIMD row kernels (module docs),
/// which computes each block's exponentials against the running maximum: a maximum rising in
/// every block after the head (the segments run out and the rest of the row's maximum is taken
/// at once), one rising so far that early terms flush to 0, a head of -inf followed by values
/// far below 0 (the first segment, without a maximum, must count 0, not `exp(0 - max)`), a
/// falling row with its maximum just after the head, two late jumps; every kind of target term, and NaN and +inf after the
/// reference moved.
#[test]
fn long_rows_whose_maximum_keeps_rising() {
    let c = 3001;
    let rising =
        |slope: f32, from: f32| -> Vec<f32> { (0..c).map(|j| from + slope * j as f32).collect() };
    let mut late = logits_of(0, c, 5);
    late[1500] = 20.0;
    late[2990] = 25.0;
    let rows: Vec<(Vec<f32>, i64)> = vec![
        (rising(0.02, -30.0), 3000),
        (rising(0.2, -300.0), 2999),
        (
            (0..c)
                .map(|j| {
                    if j < 2000 {
                        f32::NEG_INFINITY
                    } else {
                        -100.0 - (j % 7) as f32
                    }
                })
                .collect(),
            2500,
        ),
        (
            {
                // Falling, but for a maximum in the first block after the head, far above
                // the head's (exp of the difference overflows).
                let mut x = rising(-0.01, 5.0);
                x[1030] = 100.0;
                x
            },
            17,
        ),
        (late, 2990),
    ];
    let weight: Vec<f32> = random_vec(c, 9).iter().map(|v| v.abs() + 0.5).collect();
    let raw: Vec<f32> = random_vec(c, 10).iter().map(|v| v.abs()).collect();
    let total: f32 = raw.iter().sum();
    let probs: Vec<f32> = raw.iter().map(|v| v / total).collect();
    for k in all_kernels() {
        for (logits, t) in &rows {
            for (label_smoothing, weighted) in
                [(0.0, false), (0.0, true), (0.1, false), (0.1, true)]
            {
                let options = CrossEntropyOptions {
                    label_smoothing,
                    weight: weighted.then_some(&weight[..]),
                    ..Default::default()
                };
                let targets = Targets::Indices(std::slice::from_ref(t));
                check_against_reference(&k, logits, c, targets, &options, GradOutput::Scalar(0.7));
            }
            let options = CrossEntropyOptions {
                label_smoothing: 0.1,
                weight: Some(&weight),
                ..Default::default()
            };
            let targets = Targets::Probabilities(&probs);
            check_against_reference(&k, logits, c, targets, &options, GradOutput::Scalar(0.7));
        }
        for bad in [f32::NAN, f32::INFINITY] {
            let mut x = rows[0].0.clone();
            x[2500] = bad;
            for how in [Call::Separate, Call::InPlace, Call::ForwardOnly] {
                let options = CrossEntropyOptions::default();
                let got = call(
                    &k,
                    how,
                    &x,
                    c,
                    Targets::Indices(&[3]),
                    &options,
                    GradOutput::Scalar(1.0),
                )
                .unwrap();
                assert!(got.loss.is_nan(), "{} {how:?} {bad}", k.isa());
                if let Some(g) = got.grad {
                    assert!(g.iter().all(|g| g.is_nan()), "{} {how:?} {bad}", k.isa());
                }
            }
        }
    }
}

/// The SIMD kernels agree closely with the scalar table (same algorithm, different rounding).
#[test]
fn simd_tables_agree_with_the_scalar_table() {
    let scalar_k = Kernels::for_isa(Isa::Scalar).unwrap();
    for k in common::simd_kernels() {
        for classes in [1usize, 3, 7, 8, 9, 15, 16, 17, 31, 100, 1000] {
            let logits = logits_of(0, 3 * classes, classes as u64);
            let t = [0i64, (classes / 2) as i64, (classes - 1) as i64];
            let opts = CrossEntropyOptions {
                label_smoothing: 0.2,
                ..Default::default()
            };
            let a = call(
                &scalar_k,
                Call::Separate,
                &logits,
                classes,
                Targets::Indices(&t),
                &opts,
                GradOutput::Scalar(1.0),
            )
            .unwrap();
            let b = call(
                &k,
                Call::Separate,
                &logits,
                classes,
                Targets::Indices(&t),
                &opts,
                GradOutput::Scalar(1.0),
            )
            .unwrap();
            assert_close("loss", &[b.loss], &widen(&[a.loss]), 1e-6, 1e-5);
            assert_close(
                "grad",
                &b.grad.unwrap(),
                &widen(&a.grad.unwrap()),
                1e-7,
                1e-5,
            );
        }
    }
}

/// Numeric gradient of the f64 reference across the option grid.
#[test]
fn reference_gradient_passes_gradcheck_over_the_option_grid() {
    let (rows, classes) = (4, 6);
    let logits = widen(&logits_of(0, rows * classes, 5));
    let weight = [0.5, 1.5, 1.0, 2.0, 0.25, 1.0];
    let idx = [1i64, 2, 5, 0];
    let probs: Vec<f64> = (0..rows * classes)
        .map(|i| ((i % classes) + 1) as f64 / 21.0)
        .collect();
    let go = [0.3, -1.2, 0.8, 1.0];
    let mut checked = 0;
    for reduction in [Reduction::None, Reduction::Mean, Reduction::Sum] {
        for weighted in [false, true] {
            for ignore in [-100i64, 2] {
                for smoothing in [0.0, 0.1] {
                    for probabilities in [false, true] {
                        if probabilities && ignore >= 0 {
                            continue;
                        }
                        let options = CrossEntropyOptions {
                            reduction,
                            weight: weighted.then_some(&weight[..]),
                            ignore_index: ignore,
                            label_smoothing: smoothing,
                        };
                        let targets = if probabilities {
                            Targets::Probabilities(&probs[..])
                        } else {
                            Targets::Indices(&idx[..])
                        };
                        let grad_output = if reduction == Reduction::None {
                            GradOutput::PerRow(&go[..])
                        } else {
                            GradOutput::Scalar(0.7)
                        };
                        let mut grad = vec![0.0; logits.len()];
                        scalar::forward_backward(
                            &logits,
                            classes,
                            targets,
                            &options,
                            grad_output,
                            Some(&mut grad),
                            None,
                        )
                        .unwrap();
                        let mut tensors = vec![Tensor::new(
                            "logits",
                            vec![rows, classes],
                            logits.clone(),
                            grad,
                        )];
                        let report = GradCheck::default().run(&mut tensors, |t| {
                            let mut per_row = vec![0.0; rows];
                            let loss = scalar::forward_backward(
                                &t[0].values,
                                classes,
                                targets,
                                &options,
                                grad_output,
                                None,
                                Some(&mut per_row),
                            )
                            .unwrap();
                            match grad_output {
                                GradOutput::PerRow(g) => {
                                    per_row.iter().zip(g).map(|(l, g)| l * g).sum()
                                }
                                GradOutput::Scalar(g) => loss * g,
                            }
                        });
                        assert!(
                            report.passed(),
                            "{options:?} probabilities {probabilities}\n{report}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 3 * 2 * (2 * 2 + 2));
}

#[test]
#[should_panic(expected = "cross_entropy: grad_logits: expected length 6, got 5")]
fn wrong_gradient_length_panics() {
    let mut g = [0.0; 5];
    let _ = Kernels::get().cross_entropy_forward_backward(
        &[0.0; 6],
        3,
        Targets::Indices(&[0, 1]),
        &CrossEntropyOptions::default(),
        GradOutput::Scalar(1.0),
        &mut g,
        None,
    );
}

#[test]
#[should_panic(expected = "cross_entropy: row_losses: expected length 2, got 3")]
fn wrong_row_losses_length_panics() {
    let mut r = [0.0; 3];
    let _ = Kernels::get().cross_entropy_forward(
        &[0.0; 6],
        3,
        Targets::Indices(&[0, 1]),
        &CrossEntropyOptions::default(),
        Some(&mut r),
    );
}

#[test]
#[should_panic(expected = "cross_entropy: logits: length 7 is not a multiple of classes 3")]
fn ragged_logits_panic() {
    let _ = Kernels::get().cross_entropy_forward(
        &[0.0; 7],
        3,
        Targets::Indices(&[0, 1]),
        &CrossEntropyOptions::default(),
        None,
    );
}

#[test]
#[should_panic(expected = "PerRow needs Reduction::None")]
fn per_row_grad_output_with_mean_panics() {
    let mut x = [0.0; 6];
    let _ = Kernels::get().cross_entropy_forward_backward_in_place(
        &mut x,
        3,
        Targets::Indices(&[0, 1]),
        &CrossEntropyOptions::default(),
        GradOutput::PerRow(&[1.0, 1.0]),
        None,
    );
}

#[test]
#[should_panic(expected = "cross_entropy: grad_output: expected length 2, got 1")]
fn per_row_grad_output_of_the_wrong_length_panics() {
    let mut x = [0.0; 6];
    let opts = CrossEntropyOptions {
        reduction: Reduction::None,
        ..Default::default()
    };
    let _ = Kernels::get().cross_entropy_forward_backward_in_place(
        &mut x,
        3,
        Targets::Indices(&[0, 1]),
        &opts,
        GradOutput::PerRow(&[1.0]),
        None,
    );
}
