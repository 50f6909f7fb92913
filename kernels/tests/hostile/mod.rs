//! Helpers of the hostile-shape tests: expecting a panic with a message, and calling every
//! entry point of a kernel with slices of given lengths.
#![allow(dead_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};

use simdnet_kernels::conv::Conv2dShape;
use simdnet_kernels::maxpool::Pool2dShape;
use simdnet_kernels::Kernels;

/// Every table this CPU has (scalar first).
pub fn tables() -> Vec<Kernels> {
    Kernels::all()
}

/// The message of a caught panic.
pub fn panic_message(err: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = err.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = err.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "<non-string panic>".to_string()
    }
}

/// Runs `f`, which must panic with a message containing `needle`.
#[track_caller]
pub fn expect_panic(what: &str, needle: &str, f: impl FnOnce()) {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => panic!("{what}: returned, expected a panic containing {needle:?}"),
        Err(err) => {
            let msg = panic_message(&*err);
            assert!(
                msg.contains(needle),
                "{what}: panicked with {msg:?}, expected {needle:?}"
            );
        }
    }
}

/// Slices with the lengths of `lens` (a shape whose lengths are those a wrapping computation
/// would report for the hostile one).
pub struct ConvBuffers {
    pub x: Vec<f32>,
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub y: Vec<f32>,
    pub ws: Vec<f32>,
}

impl ConvBuffers {
    pub fn new(lens: &Conv2dShape) -> Self {
        ConvBuffers {
            x: vec![0.5; lens.input_len()],
            w: vec![0.25; lens.weight_len()],
            b: vec![1.0; lens.out_channels],
            y: vec![0.0; lens.output_len()],
            ws: vec![0.0; lens.workspace_len()],
        }
    }
}

/// `conv2d_forward` and `conv2d_backward` on `k` with the hostile shape `s` and slices sized for
/// `lens` must both panic with `needle`.
#[track_caller]
pub fn conv_refused(k: &Kernels, s: &Conv2dShape, lens: &Conv2dShape, needle: &str) {
    let isa = k.isa();
    let mut buf = ConvBuffers::new(lens);
    expect_panic(&format!("{isa} conv2d_forward {s:?}"), needle, || {
        k.conv2d_forward(s, &buf.x, &buf.w, Some(&buf.b), &mut buf.y, &mut buf.ws)
    });
    let mut buf = ConvBuffers::new(lens);
    let (mut gi, mut gw, mut gb) = (buf.x.clone(), buf.w.clone(), buf.b.clone());
    expect_panic(&format!("{isa} conv2d_backward {s:?}"), needle, || {
        k.conv2d_backward(
            s,
            &buf.x,
            &buf.w,
            &buf.y,
            Some(&mut gi),
            &mut gw,
            Some(&mut gb),
            &mut buf.ws,
        )
    });
}

/// Max and average pooling, forward and backward, on `k` with the hostile shape `s` and slices
/// sized for `lens` must all panic with `needle`.
#[track_caller]
pub fn pool_refused(k: &Kernels, s: &Pool2dShape, lens: &Pool2dShape, needle: &str) {
    let isa = k.isa();
    let (in_len, out_len) = (lens.input_len(), lens.output_len());
    let x = vec![0.5; in_len];
    let (mut y, mut arg) = (vec![0.0; out_len], vec![0u32; out_len]);
    let mut gi = vec![0.0; in_len];
    expect_panic(&format!("{isa} maxpool2d_forward {s:?}"), needle, || {
        k.maxpool2d_forward(s, &x, &mut y, &mut arg)
    });
    expect_panic(&format!("{isa} maxpool2d_backward {s:?}"), needle, || {
        k.maxpool2d_backward(s, &y, &arg, &mut gi)
    });
    expect_panic(&format!("{isa} avgpool2d_forward {s:?}"), needle, || {
        k.avgpool2d_forward(s, &x, &mut y)
    });
    expect_panic(&format!("{isa} avgpool2d_backward {s:?}"), needle, || {
        k.avgpool2d_backward(s, &y, &mut gi)
    });
}

/// Forward and backward (every gradient) of `s` on `k` against the f64 scalar reference, on
/// small random data: the outcome a valid (if odd) shape must have. Bounds: f32 sums of at most
/// a few dozen products of values in [-1, 1].
#[track_caller]
pub fn conv_matches_reference(k: &Kernels, s: &Conv2dShape, seed: u64) {
    use crate::common::{assert_close, random_vec, widen};
    use simdnet_kernels::conv::scalar;
    let isa = k.isa();
    let (x, w) = (
        random_vec(s.input_len(), seed),
        random_vec(s.weight_len(), seed + 1),
    );
    let b = random_vec(s.out_channels, seed + 2);
    let dy = random_vec(s.output_len(), seed + 3);
    let mut ws = vec![f32::NAN; s.workspace_len()];
    let mut y = vec![f32::NAN; s.output_len()];
    k.conv2d_forward(s, &x, &w, Some(&b), &mut y, &mut ws);
    let mut want = vec![0.0f64; s.output_len()];
    scalar::forward(s, &widen(&x), &widen(&w), Some(&widen(&b)), &mut want);
    assert_close(&format!("{isa} forward {s:?}"), &y, &want, 1e-4, 1e-4);

    let (mut gi, mut gw, mut gb) = (
        vec![f32::NAN; s.input_len()],
        vec![f32::NAN; s.weight_len()],
        vec![f32::NAN; s.out_channels],
    );
    k.conv2d_backward(
        s,
        &x,
        &w,
        &dy,
        Some(&mut gi),
        &mut gw,
        Some(&mut gb),
        &mut ws,
    );
    let mut gi_want = vec![0.0f64; s.input_len()];
    scalar::backward_input(s, &widen(&w), &widen(&dy), &mut gi_want);
    assert_close(
        &format!("{isa} grad_input {s:?}"),
        &gi,
        &gi_want,
        1e-4,
        1e-4,
    );
    let mut gw_want = vec![0.0f64; s.weight_len()];
    scalar::backward_weight(s, &widen(&x), &widen(&dy), &mut gw_want);
    assert_close(
        &format!("{isa} grad_weight {s:?}"),
        &gw,
        &gw_want,
        1e-4,
        1e-4,
    );
    let mut gb_want = vec![0.0f64; s.out_channels];
    scalar::backward_bias(s, &widen(&dy), &mut gb_want);
    assert_close(&format!("{isa} grad_bias {s:?}"), &gb, &gb_want, 1e-4, 1e-4);
}

/// Max and average pooling of `s` on `k` against the scalar reference (both exact: the same
/// comparisons, and sums of at most a few terms in the same order, are bit-identical in the
/// kernels' contract only for max pooling, so average pooling gets a tolerance).
#[track_caller]
pub fn pool_matches_reference(k: &Kernels, s: &Pool2dShape, seed: u64) {
    use crate::common::{assert_close, random_vec, widen};
    use simdnet_kernels::{avgpool, maxpool};
    let isa = k.isa();
    let x = random_vec(s.input_len(), seed);
    let (mut y, mut am) = (
        vec![f32::NAN; s.output_len()],
        vec![u32::MAX; s.output_len()],
    );
    k.maxpool2d_forward(s, &x, &mut y, &mut am);
    let (mut y_want, mut am_want) = (vec![0.0f32; s.output_len()], vec![0u32; s.output_len()]);
    maxpool::scalar::forward(s, &x, &mut y_want, &mut am_want);
    assert_eq!(y, y_want, "{isa} maxpool forward {s:?}");
    assert_eq!(am, am_want, "{isa} maxpool argmax {s:?}");
    let dy = random_vec(s.output_len(), seed + 1);
    let mut gi = vec![f32::NAN; s.input_len()];
    k.maxpool2d_backward(s, &dy, &am, &mut gi);
    let mut gi_want = vec![0.0f32; s.input_len()];
    maxpool::scalar::backward(s, &dy, &am, &mut gi_want);
    assert_eq!(gi, gi_want, "{isa} maxpool backward {s:?}");

    k.avgpool2d_forward(s, &x, &mut y);
    let mut want = vec![0.0f64; s.output_len()];
    avgpool::scalar::forward(s, &widen(&x), &mut want);
    assert_close(
        &format!("{isa} avgpool forward {s:?}"),
        &y,
        &want,
        1e-6,
        1e-5,
    );
    k.avgpool2d_backward(s, &dy, &mut gi);
    let mut gi_want = vec![0.0f64; s.input_len()];
    avgpool::scalar::backward(s, &widen(&dy), &mut gi_want);
    assert_close(
        &format!("{isa} avgpool backward {s:?}"),
        &gi,
        &gi_want,
        1e-6,
        1e-5,
    );
}
