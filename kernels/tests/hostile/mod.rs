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
