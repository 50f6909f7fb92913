//! Small shapes of every kernel path on every table this CPU has, against the scalar
//! reference: the subset Miri runs (`cargo +nightly miri test -p simdnet-kernels miri_`, plain
//! and with `-C target-feature=+avx2,+fma`, where the AVX2 table exists and Miri interprets its
//! intrinsics). Each shape is chosen to reach one path: the convolution's direct, channel and
//! unfolded (im2col + GEMM) paths with their input-gradient variants, GEMM's tails, both
//! pooling paths (2x2 stride 2 and the general loop), bias, ReLU, exp/ln, cross-entropy and
//! SGD; the fused layers. The full property tests cover the same code on many more shapes natively.

mod common;
mod differential;
mod hostile;

use common::{assert_close, random_vec, widen};
use hostile::{conv_matches_reference, pool_matches_reference, tables};
use simdnet_kernels::conv::{rules, Conv2dShape, PooledConv2dShape};
use simdnet_kernels::cross_entropy::{self, CrossEntropyOptions, GradOutput, Targets};
use simdnet_kernels::gemm::{self, Transpose};
use simdnet_kernels::maxpool::Pool2dShape;
use simdnet_kernels::sgd::{self, SgdOptions};
use simdnet_kernels::{Isa, Kernels};

#[test]
fn miri_conv_every_path() {
    // direct: stride 1, K = 2 * 2 * 2 <= 100; with padding below the kernel (the transposed
    // input gradient) and at it (the GEMM fallback).
    let direct = Conv2dShape::new(2, 2, 3, (4, 5), (2, 2)).with_padding(1, 0);
    let direct_wide_pad = Conv2dShape::new(1, 1, 2, (3, 3), (2, 2)).with_padding(2, 2);
    // channel (AVX2, AVX-512): stride 1, Cout >= 8, out_w <= 16, kernels <= 7; a group tail.
    let channel = Conv2dShape::new(2, 2, 9, (4, 4), (3, 3)).with_padding(1, 1);
    // channel with K > 100 (the shape's other path is GEMM) and a 4 x 4 kernel: the row-block
    // input gradient's rows past a one-vector row on AVX2 (and 320 products per value).
    let channel_gemm_dx = Conv2dShape::new(1, 7, 20, (4, 4), (4, 4)).with_padding(1, 1);
    // unfolded: stride 2, dilation 2, several images per tile.
    let unfolded = Conv2dShape::new(3, 2, 3, (5, 6), (2, 3))
        .with_stride(2, 1)
        .with_dilation(1, 2)
        .with_padding(1, 1);
    for k in tables() {
        for s in [direct, direct_wide_pad, channel, channel_gemm_dx, unfolded] {
            conv_matches_reference(&k, &s, 11);
        }
        assert!(rules::is_direct(&direct) && !rules::is_direct(&unfolded));
        if matches!(k.isa(), Isa::Avx2 | Isa::Avx512) {
            assert!(rules::takes_channel_path(&channel, k.isa()));
            assert!(rules::takes_channel_path(&channel_gemm_dx, k.isa()));
        }
    }
}

#[test]
fn miri_gemm_tails_and_transposes() {
    use Transpose::{No, Yes};
    for k in tables() {
        for (ta, tb, m, n, kk) in [
            (No, No, 7, 17, 5),
            (Yes, No, 9, 3, 4),
            (No, Yes, 5, 9, 3),
            (Yes, Yes, 1, 1, 2),
        ] {
            let (ar, ac) = ta.stored_dims(m, kk);
            let (br, bc) = tb.stored_dims(kk, n);
            let (lda, ldb, ldc) = (ac + 1, bc, n + 2);
            let a = random_vec((ar - 1) * lda + ac, 1);
            let b = random_vec((br - 1) * ldb + bc, 2);
            for beta in [0.0f32, 0.5] {
                let mut c = vec![if beta == 0.0 { f32::NAN } else { 0.25 }; (m - 1) * ldc + n];
                let mut want = widen(&c)
                    .iter()
                    .map(|v| if beta == 0.0 { 0.0 } else { *v })
                    .collect::<Vec<_>>();
                gemm::scalar::gemm(
                    ta,
                    tb,
                    m,
                    n,
                    kk,
                    1.5,
                    &widen(&a),
                    lda,
                    &widen(&b),
                    ldb,
                    beta as f64,
                    &mut want,
                    ldc,
                );
                k.sgemm(ta, tb, m, n, kk, 1.5, &a, lda, &b, ldb, beta, &mut c, ldc);
                for i in 0..m {
                    let (g, w) = (&c[i * ldc..][..n], &want[i * ldc..][..n]);
                    assert_close(
                        &format!("{} gemm {ta:?}{tb:?} row {i}", k.isa()),
                        g,
                        w,
                        1e-5,
                        1e-5,
                    );
                }
            }
        }
    }
}

#[test]
fn miri_pooling_both_paths() {
    for k in tables() {
        for s in [
            Pool2dShape::new(2, 3, (4, 18), (2, 2), (2, 2)), // the vector 2x2 stride-2 path, a tail
            Pool2dShape::new(1, 2, (5, 7), (3, 2), (1, 2)),  // the general loop
        ] {
            pool_matches_reference(&k, &s, 12);
        }
    }
}

#[test]
fn miri_elementwise_kernels() {
    use simdnet_kernels::{bias, relu};
    for k in tables() {
        let isa = k.isa();
        // bias on rows of every tail: spatial 1 (the [batch, channels] path) and 13.
        for spatial in [1, 13] {
            let (b, x) = (random_vec(11, 3), random_vec(2 * 11 * spatial, 4));
            let (mut got, mut want) = (x.clone(), x.clone());
            k.bias_add(&mut got, &b, 2, spatial);
            bias::scalar::add(&mut want, &b, 2, spatial);
            assert_eq!(got, want, "{isa} bias_add");
            let (mut gb, mut gb_want) = (vec![0.0f32; 11], vec![0.0f64; 11]);
            k.bias_backward(&x, &mut gb, 2, spatial);
            bias::scalar::backward(&widen(&x), &mut gb_want, 2, spatial);
            assert_close(&format!("{isa} bias_backward"), &gb, &gb_want, 1e-6, 1e-5);
        }
        // ReLU and exp/ln on 19 values (two vectors and a tail), specials included.
        let mut x = random_vec(19, 5);
        x[3] = f32::NAN;
        x[7] = f32::NEG_INFINITY;
        x[11] = -0.0;
        let (mut y, mut want) = (vec![0.0; 19], vec![0.0; 19]);
        k.relu_forward(&x, &mut y);
        relu::scalar::forward(&x, &mut want);
        differential::assert_same(&format!("{isa} relu"), &y, &want);
        let g = random_vec(19, 6);
        let (mut gi, mut gi_want) = (vec![0.0; 19], vec![0.0; 19]);
        k.relu_backward(&y, &g, &mut gi);
        relu::scalar::backward(&want, &g, &mut gi_want);
        differential::assert_same(&format!("{isa} relu backward"), &gi, &gi_want);
        let big: Vec<f32> = x.iter().map(|v| v * 100.0).collect();
        k.exp(&big, &mut y);
        for (&xi, &yi) in big.iter().zip(&y) {
            let ok = if xi.is_nan() {
                yi.is_nan()
            } else if xi < simdnet_kernels::exp::EXP_MIN_INPUT {
                yi == 0.0
            } else if xi > simdnet_kernels::exp::EXP_MAX_INPUT {
                yi == f32::INFINITY
            } else {
                differential::ulps(yi, (xi as f64).exp()) <= differential::EXP_ULPS
            };
            assert!(ok, "{isa} exp({xi}) = {yi}");
        }
        let pos: Vec<f32> = x.iter().map(|v| v.abs() * 10.0).collect();
        k.ln(&pos, &mut y);
        for (&xi, &yi) in pos.iter().zip(&y) {
            let ok = if xi.is_nan() {
                yi.is_nan()
            } else if xi == 0.0 {
                yi == f32::NEG_INFINITY
            } else if xi == f32::INFINITY {
                yi == xi
            } else {
                let w = (xi as f64).ln();
                if w == 0.0 {
                    yi == 0.0
                } else {
                    differential::ulps(yi, w) <= differential::EXP_ULPS
                }
            };
            assert!(ok, "{isa} ln({xi}) = {yi}");
        }
    }
}

#[test]
fn miri_cross_entropy_and_sgd() {
    for k in tables() {
        let isa = k.isa();
        // 5 rows of 19 classes (vector tails), index targets with an ignored row and smoothing.
        let (rows, classes) = (5, 19);
        let logits = random_vec(rows * classes, 7);
        let targets = [3i64, 18, -100, 0, 7];
        let options = CrossEntropyOptions {
            label_smoothing: 0.1,
            ..Default::default()
        };
        let mut g = vec![0.0f32; rows * classes];
        let loss = k
            .cross_entropy_forward_backward(
                &logits,
                classes,
                Targets::Indices(&targets),
                &options,
                GradOutput::Scalar(1.0),
                &mut g,
                None,
            )
            .unwrap();
        let options_d = CrossEntropyOptions {
            label_smoothing: 0.1,
            ..Default::default()
        };
        let mut g_want = vec![0.0f64; rows * classes];
        let want = cross_entropy::scalar::forward_backward(
            &widen(&logits),
            classes,
            Targets::Indices(&targets),
            &options_d,
            GradOutput::Scalar(1.0),
            Some(&mut g_want),
            None,
        )
        .unwrap();
        assert_close(
            &format!("{isa} cross_entropy loss"),
            &[loss],
            &[want],
            1e-6,
            1e-5,
        );
        assert_close(
            &format!("{isa} cross_entropy grad"),
            &g,
            &g_want,
            1e-7,
            1e-5,
        );

        // SGD with momentum, weight decay and Nesterov on 21 values, two steps.
        let options = SgdOptions {
            momentum: 0.9,
            weight_decay: 1e-2,
            nesterov: true,
            ..SgdOptions::new(0.1)
        };
        let (mut p, g, mut buf) = (random_vec(21, 8), random_vec(21, 9), vec![0.0f32; 21]);
        let (mut p_want, mut buf_want) = (p.clone(), buf.clone());
        for first in [true, false] {
            k.sgd_step(&options, &mut p, &g, Some(&mut buf), first);
            sgd::scalar::step(&options, &mut p_want, &g, Some(&mut buf_want), first);
        }
        for (i, (&a, &b)) in p.iter().zip(&p_want).enumerate() {
            assert!(
                differential::ulps(a, b as f64) <= 4.0,
                "{isa} sgd param {i}: {a} vs {b}"
            );
        }
    }
}

/// The fused layers on a shape of each convolution path, against the unfused chain on the same
/// table (bit for bit): conv + bias + ReLU + max pooling, ReLU + max-pool backward, and the
/// GEMM's bias + ReLU epilogue on a shape with edge tiles.
#[test]
fn miri_fused_layers() {
    let direct = Conv2dShape::new(2, 2, 3, (4, 6), (2, 2)).with_padding(1, 0);
    let channel = Conv2dShape::new(2, 2, 9, (4, 4), (3, 3)).with_padding(1, 1);
    let unfolded = Conv2dShape::new(3, 2, 3, (7, 7), (3, 3)).with_stride(2, 2);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for conv in [direct, channel, unfolded] {
        let s = PooledConv2dShape::new(conv, (2, 2), (2, 2));
        let (x, w) = (
            random_vec(conv.input_len(), 1),
            random_vec(conv.weight_len(), 2),
        );
        let b = random_vec(conv.out_channels, 3);
        let g = random_vec(s.pool.output_len(), 4);
        for k in tables() {
            let mut z = vec![0.0; conv.output_len()];
            let mut ws = vec![0.0; conv.workspace_len()];
            k.conv2d_forward(&conv, &x, &w, Some(&b), &mut z, &mut ws);
            k.relu_forward_in_place(&mut z);
            let n = s.pool.output_len();
            let (mut want, mut want_at) = (vec![0.0; n], vec![0; n]);
            k.maxpool2d_forward(&s.pool, &z, &mut want, &mut want_at);
            let (mut y, mut at) = (vec![0.0; n], vec![0; n]);
            let mut ws = vec![0.0; s.workspace_len()];
            k.conv2d_relu_maxpool2d_forward(&s, &x, &w, Some(&b), &mut y, &mut at, &mut ws);
            assert_eq!(
                (bits(&y), &at),
                (bits(&want), &want_at),
                "{} {conv:?}",
                k.isa()
            );
            let mut gz = vec![0.0; conv.output_len()];
            k.maxpool2d_backward(&s.pool, &g, &at, &mut gz);
            let mut want_gz = vec![0.0; conv.output_len()];
            k.relu_backward(&z, &gz, &mut want_gz);
            k.maxpool2d_relu_backward(&s.pool, &g, &at, &y, &mut gz);
            assert_eq!(bits(&gz), bits(&want_gz), "backward {} {conv:?}", k.isa());
        }
    }
    let (m, n, kk) = (5, 19, 7);
    let (a, bm) = (random_vec(m * kk, 5), random_vec(kk * n, 6));
    let bias = random_vec(n, 7);
    for k in tables() {
        let mut want = vec![0.0; m * n];
        k.sgemm(
            Transpose::No,
            Transpose::No,
            m,
            n,
            kk,
            1.0,
            &a,
            kk,
            &bm,
            n,
            0.0,
            &mut want,
            n,
        );
        k.bias_add(&mut want, &bias, m, 1);
        k.relu_forward_in_place(&mut want);
        let mut c = vec![f32::NAN; m * n];
        let e = gemm::Epilogue {
            bias: Some(&bias),
            relu: true,
        };
        k.sgemm_with(
            Transpose::No,
            Transpose::No,
            m,
            n,
            kk,
            1.0,
            &a,
            kk,
            &bm,
            n,
            0.0,
            &mut c,
            n,
            &e,
        );
        assert_eq!(bits(&c), bits(&want), "gemm epilogue {}", k.isa());
    }
}

#[test]
fn miri_tables_exist() {
    let all = Kernels::all();
    assert_eq!(all[0].isa(), Isa::Scalar);
    assert!(all.iter().all(|k| !k.entries().is_empty()));
    // Built with AVX2 and FMA enabled (the second Miri run), the AVX2 table is there, so every
    // test above ran its kernels too.
    if cfg!(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )) {
        assert!(all.iter().any(|k| k.isa() == Isa::Avx2), "no AVX2 table");
    }
}
