//! Shapes a hostile caller might pass, on every table this CPU has (and NEON under qemu):
//! products that wrap to a small value in each dimension of each kernel, paddings, strides and
//! dilations near `usize::MAX`, zero dimensions, kernels larger than the input. Each case
//! asserts its precise outcome: a panic whose message names the quantity (caught with
//! `catch_unwind`), or the scalar reference's result. Slices one short and one long are in
//! `hostile_lengths.rs`.
//!
//! Slices passed with a wrapping shape have the lengths the shape would report if its products
//! wrapped (`wrapping_mul`), which is what a length check in plain arithmetic accepted. Every
//! test is named `miri_*`: the shapes are small, so Miri runs them all.

mod common;
mod hostile;

use hostile::*;
use simdnet_kernels::conv::Conv2dShape;
use simdnet_kernels::maxpool::Pool2dShape;

/// 2^63 + 1: times an even number it wraps to that number.
const HUGE_ODD: usize = (1 << 63) + 1;

/// What `len` would be had it been computed with wrapping arithmetic, capped so a test can
/// allocate it (the call must panic before it reads any slice).
fn wrapped(factors: &[usize]) -> usize {
    factors
        .iter()
        .fold(1usize, |p, &f| p.wrapping_mul(f))
        .min(1 << 12)
}

#[test]
fn miri_conv_in_channels_wrapping_to_one_is_refused() {
    // The AVX2 and AVX-512 channel paths ran `for ci in 0..in_channels` through raw pointers on
    // this shape: the lengths of in_channels = 1 passed every check (a segfault in the forward,
    // an invalid write in the weight gradient).
    let s = Conv2dShape::new(1, HUGE_ODD, 8, (4, 4), (2, 2));
    let one = Conv2dShape {
        in_channels: 1,
        ..s
    };
    for k in tables() {
        conv_refused(
            &k,
            &s,
            &one,
            "conv2d: image_len (in_channels * in_h * in_w) overflows usize",
        );
    }
}

/// Each dimension of a convolution in turn set to 2^63 + 1, the others small and even, so every
/// product through it wraps: the quantity named is the first length computed from it.
#[test]
fn miri_conv_wrapping_in_each_dimension_is_refused() {
    let base = Conv2dShape::new(2, 2, 8, (4, 4), (2, 2));
    // (dimension, shape, a small shape with the lengths the wrapped products give, message)
    let cases: [(&str, Conv2dShape, Conv2dShape, &str); 7] = [
        (
            "batch",
            Conv2dShape {
                batch: HUGE_ODD,
                ..base
            },
            Conv2dShape { batch: 1, ..base },
            "input_len (batch * in_channels",
        ),
        (
            "in_channels",
            Conv2dShape {
                in_channels: HUGE_ODD,
                ..base
            },
            base,
            "image_len",
        ),
        (
            "out_channels",
            Conv2dShape {
                out_channels: HUGE_ODD,
                ..base
            },
            Conv2dShape {
                out_channels: 1,
                ..base
            },
            "weight_len (out_channels",
        ),
        // The output plane is computed first: 2^63 by 3 pixels.
        (
            "in_h",
            Conv2dShape {
                in_h: HUGE_ODD,
                ..base
            },
            base,
            "an output plane (out_h * out_w)",
        ),
        (
            "in_w",
            Conv2dShape {
                in_w: HUGE_ODD,
                ..base
            },
            base,
            "an output plane (out_h * out_w)",
        ),
        // A kernel that huge needs a padding that makes room for it.
        (
            "kernel_h",
            Conv2dShape {
                kernel_h: HUGE_ODD,
                pad_h: 1 << 62,
                ..base
            },
            base,
            "K (in_channels * kernel_h * kernel_w)",
        ),
        (
            "kernel_w",
            Conv2dShape {
                kernel_w: HUGE_ODD,
                pad_w: 1 << 62,
                ..base
            },
            base,
            "K (in_channels * kernel_h * kernel_w)",
        ),
    ];
    for k in tables() {
        for (dim, s, lens, needle) in &cases {
            conv_refused(&k, s, lens, needle);
            let err = s.check().expect_err(dim);
            assert!(err.message().contains(needle), "{dim}: {err}");
        }
    }
    assert_eq!(wrapped(&[HUGE_ODD, 2, 16]), 32);
}

#[test]
fn miri_conv_paddings_near_usize_max_are_refused() {
    let base = Conv2dShape::new(1, 1, 8, (3, 3), (1, 1));
    let small = base;
    for k in tables() {
        for pad in [1 << 63, usize::MAX, usize::MAX / 2 + 1] {
            let s = base.with_padding(pad, 0);
            conv_refused(
                &k,
                &s,
                &small,
                "the padded input h (in_h + 2 * pad_h) overflows usize",
            );
            let s = base.with_padding(0, pad);
            conv_refused(
                &k,
                &s,
                &small,
                "the padded input w (in_w + 2 * pad_w) overflows usize",
            );
        }
        // A padding that fits but makes a plane of 2^63 + 2 rows by 3 columns.
        let s = base.with_padding(1 << 62, 0);
        conv_refused(
            &k,
            &s,
            &small,
            "an output plane (out_h * out_w) overflows usize",
        );
    }
}

#[test]
fn miri_conv_dilations_and_strides_near_usize_max() {
    let base = Conv2dShape::new(1, 2, 8, (3, 3), (2, 2));
    for k in tables() {
        // The dilated kernel overflows: usize::MAX * 1 + 1, 2^63 * 2 + 1.
        for (kernel, d) in [(2, usize::MAX), (3, 1 << 63)] {
            let b = Conv2dShape {
                kernel_h: kernel,
                kernel_w: kernel,
                ..base
            };
            let needle = "the dilated kernel h (dilation_h * (kernel_h - 1) + 1) overflows";
            conv_refused(&k, &b.with_dilation(d, 1), &base, needle);
            let needle = "the dilated kernel w (dilation_w * (kernel_w - 1) + 1) overflows";
            conv_refused(&k, &b.with_dilation(1, d), &base, needle);
        }
        // Fits, but is larger than the padded input.
        let s = base.with_dilation(1 << 62, 1);
        conv_refused(&k, &s, &base, "is smaller than the dilated kernel");
        // A dilation of usize::MAX on a kernel of 1 is a 1x1 convolution; a stride of
        // usize::MAX keeps one output pixel per axis. Both compute the reference's result.
        let one = Conv2dShape::new(2, 3, 9, (3, 4), (1, 1)).with_dilation(usize::MAX, usize::MAX);
        conv_matches_reference(&k, &one, 1);
        let strided = Conv2dShape::new(2, 3, 9, (5, 4), (2, 3)).with_stride(usize::MAX, usize::MAX);
        assert_eq!((strided.out_h(), strided.out_w()), (1, 1));
        conv_matches_reference(&k, &strided, 2);
        let strided = strided.with_padding(1, 2).with_stride(usize::MAX, 2);
        conv_matches_reference(&k, &strided, 3);
    }
}

#[test]
fn miri_conv_zero_and_impossible_geometry_is_refused() {
    let base = Conv2dShape::new(1, 1, 8, (3, 3), (2, 2));
    let cases: [(Conv2dShape, &str); 6] = [
        (
            base.with_stride(0, 1),
            "conv2d: stride_h must be positive, got 0",
        ),
        (
            base.with_stride(1, 0),
            "conv2d: stride_w must be positive, got 0",
        ),
        (
            base.with_dilation(0, 1),
            "conv2d: dilation_h must be positive, got 0",
        ),
        (
            base.with_dilation(1, 0),
            "conv2d: dilation_w must be positive, got 0",
        ),
        (
            Conv2dShape {
                kernel_h: 0,
                ..base
            },
            "conv2d: kernel_h must be positive, got 0",
        ),
        (
            Conv2dShape {
                kernel_w: 0,
                ..base
            },
            "conv2d: kernel_w must be positive, got 0",
        ),
    ];
    for k in tables() {
        for (s, needle) in &cases {
            conv_refused(&k, s, &base, needle);
            assert!(s.check().unwrap_err().message().contains(needle));
        }
    }
}

#[test]
fn miri_conv_kernel_larger_than_the_input() {
    for k in tables() {
        // 5x5 on 3x3: refused, on either axis.
        let s = Conv2dShape::new(1, 1, 8, (3, 3), (5, 5));
        let lens = Conv2dShape::new(1, 1, 8, (5, 5), (5, 5));
        conv_refused(&k, &s, &lens, "empty output: the padded input h 3");
        let s = Conv2dShape::new(1, 1, 8, (5, 3), (5, 4));
        conv_refused(&k, &s, &lens, "empty output: the padded input w 3");
        // With the padding that makes it fit: one output pixel, the reference's.
        for (cin, cout) in [(1, 8), (2, 3), (3, 16)] {
            let s = Conv2dShape::new(2, cin, cout, (3, 3), (5, 5)).with_padding(1, 1);
            assert_eq!((s.out_h(), s.out_w()), (1, 1));
            conv_matches_reference(&k, &s, 4);
            // A padding at least the kernel size (the input gradient's GEMM fallback).
            let s = Conv2dShape::new(2, cin, cout, (1, 2), (3, 3)).with_padding(3, 3);
            conv_matches_reference(&k, &s, 5);
        }
    }
}

#[test]
fn miri_conv_zero_dimensions_give_the_reference() {
    for k in tables() {
        for (b, cin, cout, h, w, pad) in [
            (0, 2, 8, 4, 4, 0), // no image
            (2, 0, 8, 4, 4, 0), // no input channel: the output is the bias
            (2, 2, 0, 4, 4, 0), // no output channel
            (2, 2, 8, 0, 4, 1), // an empty plane, padded to a kernel's size
            (2, 2, 8, 4, 0, 1),
            (1, 0, 16, 3, 3, 0), // channel-path sizes, no input channel
            (0, 0, 0, 0, 0, 1),
        ] {
            let s = Conv2dShape::new(b, cin, cout, (h, w), (2, 2)).with_padding(pad, pad);
            conv_matches_reference(&k, &s, 6);
        }
    }
}

#[test]
fn miri_conv_empty_but_huge_dimensions_return_at_once() {
    // Every slice is empty while the batch, or a plane, is as large as it can be: the result is
    // empty and the call must not loop over the batch.
    for k in tables() {
        let s = Conv2dShape::new(usize::MAX, 0, 0, (3, 3), (2, 2));
        let (x, w) = (Vec::<f32>::new(), Vec::<f32>::new());
        let mut ws = vec![0.0; s.workspace_len()];
        k.conv2d_forward(&s, &x, &w, Some(&[]), &mut [], &mut ws);
        let (mut gw, mut gb) = (Vec::<f32>::new(), Vec::<f32>::new());
        k.conv2d_backward(
            &s,
            &x,
            &w,
            &[],
            Some(&mut []),
            &mut gw,
            Some(&mut gb),
            &mut ws,
        );
        // Output channels but no image of any size: zero gradients, nothing read.
        let s = Conv2dShape::new(0, 3, 8, (5, 5), (3, 3));
        let (x, w) = (vec![], vec![1.0f32; s.weight_len()]);
        let mut ws = vec![0.0; s.workspace_len()];
        let (mut gw, mut gb) = (vec![f32::NAN; s.weight_len()], vec![f32::NAN; 8]);
        k.conv2d_backward(
            &s,
            &x,
            &w,
            &[],
            Some(&mut []),
            &mut gw,
            Some(&mut gb),
            &mut ws,
        );
        assert!(gw.iter().chain(&gb).all(|&v| v == 0.0), "{}", k.isa());
    }
}

#[test]
fn miri_conv_workspace_overflow_is_refused() {
    // Every input and output length fits; the direct path's 16 partial sums per weight do not.
    let s = Conv2dShape::new(0, 1, usize::MAX / 8, (1, 1), (1, 1));
    assert!(s.weight_len() > 0 && s.output_len() == 0);
    let needle = "the direct path's partial sums (weight_len * 16) overflows usize";
    assert!(s.check().unwrap_err().message().contains(needle));
    expect_panic("workspace_len", needle, || {
        s.workspace_len();
    });
}

#[test]
fn miri_pool_batch_wrapping_is_refused() {
    let small = Pool2dShape::new(1, 2, (4, 4), (2, 2), (2, 2));
    let cases: [(Pool2dShape, &str); 4] = [
        (
            Pool2dShape {
                batch: HUGE_ODD,
                ..small
            },
            "planes (batch * channels) overflows usize",
        ),
        (
            Pool2dShape {
                batch: 2,
                channels: HUGE_ODD,
                ..small
            },
            "planes (batch * channels)",
        ),
        // One input plane (2^63 + 1 rows of 4) overflows before any length built on it.
        (
            Pool2dShape {
                in_h: HUGE_ODD,
                ..small
            },
            "an input plane (in_h * in_w) overflows usize",
        ),
        (
            Pool2dShape {
                in_w: HUGE_ODD,
                ..small
            },
            "an input plane (in_h * in_w) overflows usize",
        ),
    ];
    for k in tables() {
        for (s, needle) in &cases {
            pool_refused(&k, s, &small, needle);
            assert!(s.check().unwrap_err().message().contains(needle));
        }
    }
}

#[test]
fn miri_pool_geometry() {
    let base = Pool2dShape::new(1, 2, (4, 4), (2, 2), (2, 2));
    let cases: [(Pool2dShape, &str); 6] = [
        (
            Pool2dShape {
                stride_h: 0,
                ..base
            },
            "pool2d: stride_h must be positive, got 0",
        ),
        (
            Pool2dShape {
                stride_w: 0,
                ..base
            },
            "pool2d: stride_w must be positive, got 0",
        ),
        (
            Pool2dShape {
                kernel_h: 0,
                ..base
            },
            "pool2d: kernel_h must be positive, got 0",
        ),
        (
            Pool2dShape {
                kernel_w: 0,
                ..base
            },
            "pool2d: kernel_w must be positive, got 0",
        ),
        (
            Pool2dShape {
                kernel_h: 5,
                ..base
            },
            "empty output: in_h 4 is smaller than kernel_h 5",
        ),
        (
            Pool2dShape {
                kernel_w: 5,
                ..base
            },
            "empty output: in_w 4 is smaller than kernel_w 5",
        ),
    ];
    for k in tables() {
        for (s, needle) in &cases {
            pool_refused(&k, s, &base, needle);
        }
        // Strides near usize::MAX: one output per axis. A window as large as the input. Zero
        // planes. Each is the reference's result.
        for s in [
            Pool2dShape::new(2, 3, (5, 6), (2, 2), (usize::MAX, usize::MAX)),
            Pool2dShape::new(2, 3, (5, 6), (2, 3), (usize::MAX, 2)),
            Pool2dShape::new(1, 2, (3, 5), (3, 5), (1, 1)),
            Pool2dShape::new(0, 3, (4, 4), (2, 2), (2, 2)),
            Pool2dShape::new(3, 0, (4, 4), (2, 2), (2, 2)),
            Pool2dShape::new(usize::MAX, 0, (4, 4), (2, 2), (2, 2)),
        ] {
            pool_matches_reference(&k, &s, 7);
        }
    }
}

#[test]
fn miri_bias_wrapping_in_each_dimension_is_refused() {
    let needle = "bias: length (batch * channels * spatial) overflows usize";
    for k in tables() {
        // batch * 2 * 3 and 2 * 3 * spatial wrap to 6; a bias of 2^63 + 1 channels cannot be
        // allocated, so channels wraps with batch and spatial only through the other two.
        for (batch, spatial) in [(HUGE_ODD, 3), (2, HUGE_ODD)] {
            let (channels, len) = (2, wrapped(&[batch, 2, spatial]));
            let mut x = vec![0.0; len];
            let bias = vec![1.0; channels];
            expect_panic("bias_add", needle, || {
                k.bias_add(&mut x, &bias, batch, spatial)
            });
            let mut gb = vec![0.0; channels];
            expect_panic("bias_backward", needle, || {
                k.bias_backward(&x, &mut gb, batch, spatial)
            });
        }
    }
}

#[test]
fn miri_bias_zero_dimensions_give_the_reference() {
    use simdnet_kernels::bias::scalar;
    for k in tables() {
        for (batch, channels, spatial) in [
            (0, 3, 4),
            (2, 0, 4),
            (2, 3, 0),
            (usize::MAX, 0, 1),
            (usize::MAX, 3, 0),
            (1, 1, 1),
        ] {
            let len = batch
                .saturating_mul(channels)
                .saturating_mul(spatial)
                .min(64);
            let bias = common::random_vec(channels, 8);
            let mut x = common::random_vec(len, 9);
            let mut want = x.clone();
            k.bias_add(&mut x, &bias, batch, spatial);
            scalar::add(&mut want, &bias, batch, spatial);
            assert_eq!(x, want, "{} bias_add {batch} {channels} {spatial}", k.isa());
            let mut gb = vec![f32::NAN; channels];
            let mut gb_want = vec![f32::NAN; channels];
            k.bias_backward(&x, &mut gb, batch, spatial);
            scalar::backward(&x, &mut gb_want, batch, spatial);
            assert_eq!(
                gb,
                gb_want,
                "{} bias_backward {batch} {channels} {spatial}",
                k.isa()
            );
        }
    }
}

#[test]
fn miri_gemm_spans_near_usize_max_are_refused() {
    use simdnet_kernels::gemm::Transpose::{No, Yes};
    for k in tables() {
        let (a, b, mut c) = (vec![1.0f32; 8], vec![1.0f32; 8], vec![0.0f32; 8]);
        // A leading dimension whose span overflows.
        expect_panic("lda", "sgemm: A: 3x2 with leading dimension", || {
            k.sgemm(
                No,
                No,
                3,
                2,
                2,
                1.0,
                &a,
                usize::MAX,
                &b,
                2,
                0.0,
                &mut c[..6],
                2,
            )
        });
        expect_panic("ldb", "sgemm: B: 2x3 with leading dimension", || {
            k.sgemm(
                No,
                No,
                2,
                3,
                2,
                1.0,
                &a[..4],
                2,
                &b,
                usize::MAX,
                0.0,
                &mut c[..6],
                3,
            )
        });
        expect_panic("ldc", "sgemm: C: 2x2 with leading dimension", || {
            k.sgemm(
                No,
                No,
                2,
                2,
                2,
                1.0,
                &a[..4],
                2,
                &b[..4],
                2,
                0.0,
                &mut c,
                usize::MAX,
            )
        });
        // m * k that wraps, transposed or not: the span needs m rows.
        expect_panic("m wraps", "overflows", || {
            k.sgemm(
                Yes, No, HUGE_ODD, 1, 2, 1.0, &a, HUGE_ODD, &b, 1, 0.0, &mut c, 1,
            )
        });
        // A leading dimension smaller than its row.
        expect_panic(
            "ld < cols",
            "sgemm: A: leading dimension 1 is smaller than the row length 2",
            || {
                k.sgemm(
                    No,
                    No,
                    2,
                    2,
                    2,
                    1.0,
                    &a[..4],
                    1,
                    &b[..4],
                    2,
                    0.0,
                    &mut c[..4],
                    2,
                )
            },
        );
    }
}
