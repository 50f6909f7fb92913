//! Gradient checks: every layer, the loss and the whole LeNet-5 in f64 on the scalar
//! references at PyTorch's gradcheck tolerances, and LeNet-5's f32 gradients on every ISA's
//! kernels against f64 within the bound `simdnet::gradcheck::F32_BOUND` justifies.

use simdnet::gradcheck::{self, checker::GradCheck, GradcheckRow};
use simdnet::kernels::Kernels;

fn assert_all_pass(rows: &[GradcheckRow]) {
    let mut table = Vec::new();
    gradcheck::print_table(rows, &mut table).unwrap();
    let table = String::from_utf8(table).unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.passed), "{table}");
}

#[test]
fn every_layer_passes_in_f64() {
    let check = GradCheck::default();
    for (layer, rows) in [
        ("conv2d", gradcheck::check_conv2d(&check)),
        ("linear", gradcheck::check_linear(&check)),
        ("linear_relu", gradcheck::check_linear_relu(&check)),
        ("maxpool2d", gradcheck::check_maxpool2d(&check)),
        ("avgpool2d", gradcheck::check_avgpool2d(&check)),
        ("relu", gradcheck::check_relu(&check)),
        ("flatten", gradcheck::check_flatten(&check)),
        ("cross_entropy", gradcheck::check_cross_entropy(&check)),
    ] {
        assert!(!rows.is_empty(), "{layer}");
        assert!(rows.iter().all(|r| r.precision == "f64"));
        assert_all_pass(&rows);
    }
}

#[test]
fn conv2d_checks_input_weight_and_bias() {
    let rows = gradcheck::check_conv2d(&GradCheck::default());
    let tensors: Vec<&str> = rows.iter().map(|r| r.tensor.as_str()).collect();
    assert_eq!(tensors, ["input", "weight", "bias"]);
}

#[test]
fn whole_lenet5_passes_in_f64() {
    let rows = gradcheck::check_lenet5(&gradcheck::lenet_check());
    // Ten parameter tensors and the input.
    assert_eq!(rows.len(), 11);
    assert_all_pass(&rows);
}

#[test]
fn lenet5_f32_on_every_isa_is_within_the_bound_of_f64() {
    for kernels in Kernels::all() {
        let rows = gradcheck::check_lenet5_f32(&kernels);
        assert_eq!(rows.len(), 11, "the loss and ten gradients");
        assert!(rows.iter().all(|r| r.precision == "f32"));
        assert_all_pass(&rows);
    }
}

/// The checker must be able to fail: a wrong analytic gradient (the backward pass of a
/// different layer) is caught.
#[test]
fn a_wrong_gradient_fails() {
    use gradcheck::checker::Tensor;
    let x = vec![0.3, -0.7, 1.1];
    // d/dx sum(x^2) is 2x; claim x instead.
    let mut t = vec![Tensor::new("x", vec![3], x.clone(), x)];
    let report = GradCheck::default().run(&mut t, |t| t[0].values.iter().map(|v| v * v).sum());
    assert!(!report.passed());
}

#[test]
fn the_table_names_every_row_and_says_fail() {
    let mut rows = gradcheck::check_relu(&GradCheck::default());
    rows[0].passed = false;
    let mut out = Vec::new();
    gradcheck::print_table(&rows, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("ReLU") && out.contains("FAIL"), "{out}");
    assert!(out.contains("0 of 1 checks passed"), "{out}");
}
