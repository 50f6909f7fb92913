//! Hostile hyperparameters and input dimensions through the layers: each is an `Err` whose
//! message names the layer and the quantity, never a panic, on every kernel table and on the
//! f64 reference backend. (The kernel crate panics on the same shapes; the layers check them
//! first, in checked arithmetic.)

use simdnet::backend::Reference;
use simdnet::kernels::Kernels;
use simdnet::layers::{AvgPool2d, Conv2d, Dims, Flatten, Linear, MaxPool2d};

/// 2^63 + 1: times an even number it wraps to that number.
const HUGE_ODD: usize = (1 << 63) + 1;

#[track_caller]
fn assert_err<T: std::fmt::Debug>(what: &str, r: simdnet::Result<T>, needle: &str) {
    match r {
        Ok(v) => panic!("{what}: accepted ({v:?}), expected an error containing {needle:?}"),
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains(needle), "{what}: error {e:?} lacks {needle:?}");
        }
    }
}

/// Forward and backward of `conv` on `batch` samples of `dims`, with every slice sized as if the
/// products had wrapped (`lens`), must be refused with `needle`, on every table.
fn conv_refused(conv: &Conv2d, batch: usize, dims: Dims, needle: &str) {
    assert_err("shape", conv.shape(batch, dims), needle);
    for k in Kernels::all() {
        let (x, w, b) = (vec![0.5f32; 16], vec![0.25f32; 32], vec![1.0f32; 8]);
        let (mut y, mut ws) = (vec![0.0f32; 72], vec![0.0f32; 4096]);
        let r = conv.forward(&k, batch, dims, &x, &w, &b, &mut y, &mut ws);
        assert_err(&format!("{} forward", k.isa()), r, needle);
        let (mut gi, mut gw, mut gb) = (x.clone(), w.clone(), b.clone());
        let r = conv.backward(
            &k,
            batch,
            dims,
            &x,
            &w,
            &y,
            Some(&mut gi),
            &mut gw,
            &mut gb,
            &mut ws,
        );
        assert_err(&format!("{} backward", k.isa()), r, needle);
    }
    let (x, w, b) = (vec![0.5f64; 16], vec![0.25f64; 32], vec![1.0f64; 8]);
    let (mut y, mut ws) = (vec![0.0f64; 72], vec![0.0f64; 4096]);
    let r = conv.forward(&Reference, batch, dims, &x, &w, &b, &mut y, &mut ws);
    assert_err("reference forward", r, needle);
}

#[test]
fn conv_in_channels_wrapping_to_one_is_an_error() {
    let conv = Conv2d::new("conv", HUGE_ODD, 8, (2, 2));
    conv_refused(&conv, 1, Dims::new(HUGE_ODD, 4, 4), "conv: ");
    conv_refused(&conv, 1, Dims::new(HUGE_ODD, 4, 4), "overflows");
    assert_err("fan_in", conv.fan_in(), "conv: fan-in overflows");
    assert_err("weight", conv.try_weight_len(), "conv: weight overflows");
}

#[test]
fn conv_padding_and_dilation_near_usize_max_are_errors() {
    let pad = Conv2d::new("pad", 1, 8, (1, 1)).with_padding(1 << 63, 0);
    conv_refused(
        &pad,
        1,
        Dims::new(1, 3, 3),
        "the padded input h (in_h + 2 * pad_h) overflows",
    );
    let dil = Conv2d::new("dil", 1, 8, (2, 2)).with_dilation(1, usize::MAX);
    conv_refused(&dil, 1, Dims::new(1, 3, 3), "the dilated kernel w");
    let stride = Conv2d::new("stride", 1, 8, (2, 2)).with_stride(usize::MAX, usize::MAX);
    // A huge stride is fine: one output pixel.
    assert_eq!(
        stride.output_dims(Dims::new(1, 3, 3)).unwrap(),
        Dims::new(8, 1, 1)
    );
}

#[test]
fn conv_batch_wrapping_is_an_error() {
    let conv = Conv2d::new("conv", 2, 8, (1, 1));
    conv_refused(
        &conv,
        HUGE_ODD,
        Dims::new(2, 2, 2),
        "conv: conv2d: input_len",
    );
}

#[test]
fn conv_workspace_overflow_is_an_error() {
    // Every input and output length fits; 16 partial sums per weight of the direct path do not.
    let conv = Conv2d::new("conv", 1, usize::MAX / 8, (1, 1));
    assert_err(
        "workspace",
        conv.shape(0, Dims::new(1, 1, 1)),
        "the direct path's partial sums (weight_len * 16) overflows",
    );
}

#[test]
fn pooling_batch_wrapping_is_an_error() {
    let dims = Dims::new(2, 4, 4);
    let max = MaxPool2d::new("pool", (2, 2));
    assert_err(
        "max",
        max.shape(HUGE_ODD, dims),
        "pool: pool2d: planes (batch * channels) overflows",
    );
    let avg = AvgPool2d::new("avg", (2, 2));
    assert_err(
        "avg",
        avg.shape(HUGE_ODD, dims),
        "avg: pool2d: planes (batch * channels) overflows",
    );
    let k = Kernels::get();
    let (x, mut y, mut am) = (vec![0.0f32; 32], vec![0.0f32; 8], vec![0u32; 8]);
    assert_err(
        "max fwd",
        max.forward(k, HUGE_ODD, dims, &x, &mut y, &mut am),
        "overflows",
    );
    assert_err(
        "avg fwd",
        avg.forward(k, HUGE_ODD, dims, &x, &mut y),
        "overflows",
    );
    // A plane too large for the u32 argmax.
    let wide = Dims::new(1, 1 << 16, 1 << 16);
    assert_err("argmax", max.shape(1, wide), "too large for a u32 argmax");
}

#[test]
fn linear_and_flatten_overflow_are_errors() {
    let fc = Linear::new("fc", HUGE_ODD, 2);
    assert_err("weight", fc.try_weight_len(), "fc: weight overflows");
    let k = Kernels::get();
    let (x, w, b, mut y) = (
        vec![0.0f32; 2],
        vec![0.0f32; 2],
        vec![0.0f32; 2],
        vec![0.0f32; 2],
    );
    let r = fc.forward(k, 2, &x, &w, &b, &mut y);
    assert_err("fc forward", r.map(|_| ()), "overflows");
    let fc = Linear::new("fc", 2, 1);
    let r = fc.forward(k, HUGE_ODD, &x, &w, &b[..1], &mut y);
    assert_err("fc batch", r.map(|_| ()), "fc: input overflows");
    let flat = Flatten::new("flat");
    assert_err(
        "flatten dims",
        flat.output_dims(Dims::new(HUGE_ODD, 2, 1)),
        "flat: a sample of",
    );
    let r = flat.forward(HUGE_ODD, Dims::new(1, 2, 1), &[0.0f32; 2], &mut [0.0; 2]);
    assert_err("flatten batch", r.map(|_| ()), "flat: batch");
}

/// An argmax outside its input plane (not from this layer's forward) is an error naming it, in
/// the plain and the ReLU-folded backward, on every table and the reference.
#[test]
fn an_argmax_outside_the_plane_is_refused() {
    let pool = MaxPool2d::new("pool", (2, 2));
    let dims = Dims::new(2, 4, 4);
    let (g, y) = (vec![1.0f32; 8], vec![1.0f32; 8]);
    let mut argmax = vec![0u32; 8];
    argmax[5] = 16;
    for k in Kernels::all() {
        let mut gi = vec![0.0f32; 32];
        let r = pool.backward(&k, 1, dims, &g, &argmax, &mut gi);
        assert_err(
            "backward",
            r,
            "pool: argmax 16 is outside the 4x4 input plane",
        );
        let r = pool.backward_relu(&k, 1, dims, (&g, &argmax, &y), &mut gi);
        assert_err(
            "backward_relu",
            r,
            "pool: argmax 16 is outside the 4x4 input plane",
        );
    }
    let mut gi = vec![0.0f64; 32];
    let (g, y) = (vec![1.0f64; 8], vec![1.0f64; 8]);
    let r = pool.backward_relu(&Reference, 1, dims, (&g, &argmax, &y), &mut gi);
    assert_err("reference", r, "outside the 4x4 input plane");
}
