//! One function per kernel family: decode a call, refuse or run it on every table, compare.

use super::*;
use simdnet_kernels::conv::{self, Conv2dShape};
use simdnet_kernels::cross_entropy::{self, CrossEntropyOptions, GradOutput, Reduction, Targets};
use simdnet_kernels::gemm::{self, Transpose};
use simdnet_kernels::maxpool::{self, Pool2dShape};
use simdnet_kernels::sgd::{self, SgdOptions};
use simdnet_kernels::{avgpool, bias, exp, relu, Kernels};

/// Slices of the given lengths, one perturbed: `Some((message, lengths))` when the case is a
/// length mismatch the kernel must refuse with that message.
fn perturbed(input: &mut Input, names: &[&str], lens: &[usize]) -> (Vec<usize>, Option<String>) {
    let p = Perturb::read(input, names.len());
    let got: Vec<usize> = lens.iter().enumerate().map(|(i, &l)| p.len(i, l)).collect();
    let msg = (p.which < names.len()).then(|| {
        format!(
            "{}: expected length {}, got {}",
            names[p.which], lens[p.which], got[p.which]
        )
    });
    (got, msg)
}

fn fits(lens: &[usize]) -> bool {
    lens.iter().all(|&l| l <= MAX_LEN)
}

pub fn conv(input: &mut Input) {
    let s = Conv2dShape::new(
        input.dim(3),
        input.dim(5),
        input.dim(20),
        (input.dim(12), input.dim(12)),
        (input.dim(5), input.dim(5)),
    )
    .with_stride(input.dim(3), input.dim(3))
    .with_padding(input.dim(3), input.dim(3))
    .with_dilation(input.dim(2), input.dim(2));
    let (with_bias, with_gi) = (input.flag(), input.flag());
    if let Err(e) = s.check() {
        // Refused before any slice is looked at: every entry point panics with check's error.
        for k in Kernels::all() {
            expect_panic(
                &format!("{} conv2d_forward {s:?}", k.isa()),
                e.message(),
                || k.conv2d_forward(&s, &[], &[], None, &mut [], &mut []),
            );
            expect_panic(
                &format!("{} conv2d_backward {s:?}", k.isa()),
                e.message(),
                || k.conv2d_backward(&s, &[], &[], &[], None, &mut [], None, &mut []),
            );
        }
        return;
    }
    let (xl, wl, yl, wsl, cout) = (
        s.input_len(),
        s.weight_len(),
        s.output_len(),
        s.workspace_len(),
        s.out_channels,
    );
    let work = yl.saturating_mul(s.col_rows().max(1));
    if !fits(&[xl, wl, yl, wsl, cout]) || work > MAX_WORK {
        return;
    }
    let (x, w, b, dy) = (
        input.values(xl),
        input.values(wl),
        input.values(cout),
        input.values(yl),
    );
    let names = [
        "conv2d_forward: input",
        "conv2d_forward: weight",
        "conv2d_forward: bias",
        "conv2d_forward: output",
        "conv2d_forward: workspace",
    ];
    let (l, msg) = perturbed(input, &names, &[xl, wl, cout, yl, wsl]);
    if let Some(msg) = msg.filter(|_| with_bias || l[2] == cout) {
        for k in Kernels::all() {
            let (x, w, b) = (vec![0.0; l[0]], vec![0.0; l[1]], vec![0.0; l[2]]);
            let (mut y, mut ws) = (vec![0.0; l[3]], vec![0.0; l[4]]);
            let bias = with_bias.then_some(&b[..]);
            expect_panic(&format!("{} {s:?}", k.isa()), &msg, || {
                k.conv2d_forward(&s, &x, &w, bias, &mut y, &mut ws)
            });
        }
        return;
    }
    let (xd, wd, bd, dyd) = (widen(&x), widen(&w), widen(&b), widen(&dy));
    let bias_d = with_bias.then_some(&bd[..]);
    let (mut want, mut mag) = (vec![0.0; yl], vec![0.0; yl]);
    conv::scalar::forward(&s, &xd, &wd, bias_d, &mut want);
    let abias = abs(&bd);
    conv::scalar::forward(
        &s,
        &abs(&xd),
        &abs(&wd),
        with_bias.then_some(&abias[..]),
        &mut mag,
    );
    let (mut gi_want, mut gi_mag) = (vec![0.0; xl], vec![0.0; xl]);
    conv::scalar::backward_input(&s, &wd, &dyd, &mut gi_want);
    conv::scalar::backward_input(&s, &abs(&wd), &abs(&dyd), &mut gi_mag);
    let (mut gw_want, mut gw_mag) = (vec![0.0; wl], vec![0.0; wl]);
    conv::scalar::backward_weight(&s, &xd, &dyd, &mut gw_want);
    conv::scalar::backward_weight(&s, &abs(&xd), &abs(&dyd), &mut gw_mag);
    let (mut gb_want, mut gb_mag) = (vec![0.0; cout], vec![0.0; cout]);
    conv::scalar::backward_bias(&s, &dyd, &mut gb_want);
    conv::scalar::backward_bias(&s, &abs(&dyd), &mut gb_mag);
    let n = s.out_h() * s.out_w();
    let nonfinite = x
        .iter()
        .chain(&w)
        .chain(&b)
        .chain(&dy)
        .any(|v| !v.is_finite());
    let check = |what: &str, got: &[f32], want: &[f64], mag: &[f64], terms: usize| {
        let tol = Tolerance {
            terms,
            floor: 0.0,
            extra_nan: nonfinite,
        };
        assert_sums_with(what, got, want, mag, mag, tol);
    };
    for k in Kernels::all() {
        let what = format!("{} {s:?}", k.isa());
        let (mut y, mut ws) = (vec![f32::NAN; yl], vec![f32::NAN; wsl]);
        k.conv2d_forward(&s, &x, &w, with_bias.then_some(&b[..]), &mut y, &mut ws);
        check(
            &format!("{what} forward"),
            &y,
            &want,
            &mag,
            s.col_rows().saturating_add(1),
        );
        let (mut gi, mut gw, mut gb) =
            (vec![f32::NAN; xl], vec![f32::NAN; wl], vec![f32::NAN; cout]);
        let gi_arg = with_gi.then_some(&mut gi[..]);
        let gb_arg = with_bias.then_some(&mut gb[..]);
        k.conv2d_backward(&s, &x, &w, &dy, gi_arg, &mut gw, gb_arg, &mut ws);
        let taps = cout.saturating_mul(s.kernel_h).saturating_mul(s.kernel_w);
        if with_gi {
            check(&format!("{what} grad_input"), &gi, &gi_want, &gi_mag, taps);
        }
        check(
            &format!("{what} grad_weight"),
            &gw,
            &gw_want,
            &gw_mag,
            s.batch.saturating_mul(n),
        );
        if with_bias {
            check(
                &format!("{what} grad_bias"),
                &gb,
                &gb_want,
                &gb_mag,
                s.batch.saturating_mul(n),
            );
        }
    }
}

pub fn pool(input: &mut Input) {
    let s = Pool2dShape::new(
        input.dim(3),
        input.dim(4),
        (input.dim(12), input.dim(12)),
        (input.dim(4), input.dim(4)),
        (input.dim(4), input.dim(4)),
    );
    if let Err(e) = s.check() {
        for k in Kernels::all() {
            let what = format!("{} {s:?}", k.isa());
            expect_panic(&what, e.message(), || {
                k.maxpool2d_forward(&s, &[], &mut [], &mut [])
            });
            expect_panic(&what, e.message(), || {
                k.maxpool2d_backward(&s, &[], &[], &mut [])
            });
            expect_panic(&what, e.message(), || k.avgpool2d_forward(&s, &[], &mut []));
            expect_panic(&what, e.message(), || {
                k.avgpool2d_backward(&s, &[], &mut [])
            });
        }
        return;
    }
    let (xl, yl) = (s.input_len(), s.output_len());
    if s.in_h
        .checked_mul(s.in_w)
        .is_none_or(|p| p > i32::MAX as usize)
    {
        // Valid lengths, but a plane the u32 argmax (computed in i32 lanes) cannot index.
        let needle = "is too large for a u32 argmax";
        for k in Kernels::all() {
            let what = format!("{} {s:?}", k.isa());
            let (x, mut y, mut am) = (
                vec![0.0; xl.min(MAX_LEN)],
                vec![0.0; yl.min(MAX_LEN)],
                vec![0; yl.min(MAX_LEN)],
            );
            if x.len() == xl && y.len() == yl {
                expect_panic(&what, needle, || {
                    k.maxpool2d_forward(&s, &x, &mut y, &mut am)
                });
            }
        }
        return;
    }
    if !fits(&[xl, yl]) {
        return;
    }
    let (x, dy) = (input.values(xl), input.values(yl));
    let names = ["avgpool2d_forward: input", "avgpool2d_forward: output"];
    let (l, msg) = perturbed(input, &names, &[xl, yl]);
    if let Some(msg) = msg {
        for k in Kernels::all() {
            let (x, mut y) = (vec![0.0; l[0]], vec![0.0; l[1]]);
            expect_panic(&format!("{} {s:?}", k.isa()), &msg, || {
                k.avgpool2d_forward(&s, &x, &mut y)
            });
        }
        return;
    }
    let (mut y_want, mut am_want) = (vec![0.0f32; yl], vec![0u32; yl]);
    maxpool::scalar::forward(&s, &x, &mut y_want, &mut am_want);
    let (mut gi_want, mut gi_mag) = (vec![0.0f64; xl], vec![0.0f64; xl]);
    maxpool::scalar::backward(&s, &widen(&dy), &am_want, &mut gi_want);
    maxpool::scalar::backward(&s, &abs(&widen(&dy)), &am_want, &mut gi_mag);
    let (mut a_want, mut a_mag) = (vec![0.0f64; yl], vec![0.0f64; yl]);
    avgpool::scalar::forward(&s, &widen(&x), &mut a_want);
    avgpool::scalar::forward(&s, &abs(&widen(&x)), &mut a_mag);
    let (mut ab_want, mut ab_mag) = (vec![0.0f64; xl], vec![0.0f64; xl]);
    avgpool::scalar::backward(&s, &widen(&dy), &mut ab_want);
    avgpool::scalar::backward(&s, &abs(&widen(&dy)), &mut ab_mag);
    let window = s.kernel_h.saturating_mul(s.kernel_w);
    for k in Kernels::all() {
        let what = format!("{} {s:?}", k.isa());
        let (mut y, mut am) = (vec![f32::NAN; yl], vec![u32::MAX; yl]);
        k.maxpool2d_forward(&s, &x, &mut y, &mut am);
        assert_same(&format!("{what} maxpool"), &y, &y_want);
        assert_eq!(am, am_want, "{what} argmax");
        let mut gi = vec![f32::NAN; xl];
        k.maxpool2d_backward(&s, &dy, &am, &mut gi);
        assert_sums(
            &format!("{what} maxpool backward"),
            &gi,
            &gi_want,
            &gi_mag,
            window,
        );
        // The window's sum before the division reaches `window` times the mean's magnitude.
        let reach = |m: &[f64]| m.iter().map(|v| v * window as f64).collect::<Vec<_>>();
        k.avgpool2d_forward(&s, &x, &mut y);
        let what_f = format!("{what} avgpool");
        assert_sums_reach(
            &what_f,
            &y,
            &a_want,
            &a_mag,
            &reach(&a_mag),
            window.saturating_add(1),
        );
        k.avgpool2d_backward(&s, &dy, &mut gi);
        let what_b = format!("{what} avgpool backward");
        assert_sums_reach(
            &what_b,
            &gi,
            &ab_want,
            &ab_mag,
            &reach(&ab_mag),
            window.saturating_add(1),
        );
    }
}

pub fn bias(input: &mut Input) {
    let (batch, channels, spatial) = (input.dim(5), input.dim(20), input.dim(40));
    let len = batch
        .checked_mul(channels)
        .and_then(|v| v.checked_mul(spatial));
    let Some(len) = len.or(if [batch, channels, spatial].contains(&0) {
        Some(0)
    } else {
        None
    }) else {
        let needle = "bias: length (batch * channels * spatial) overflows usize";
        for k in Kernels::all() {
            let b = vec![0.0; channels.min(MAX_LEN)];
            if b.len() != channels {
                return;
            }
            expect_panic("bias_add", needle, || {
                k.bias_add(&mut [], &b, batch, spatial)
            });
            let mut gb = b.clone();
            expect_panic("bias_backward", needle, || {
                k.bias_backward(&[], &mut gb, batch, spatial)
            });
        }
        return;
    };
    if !fits(&[len, channels]) {
        return;
    }
    let (x, b) = (input.values(len), input.values(channels));
    let (l, msg) = perturbed(input, &["bias_add: x"], &[len]);
    if let Some(msg) = msg {
        for k in Kernels::all() {
            let mut x = vec![0.0; l[0]];
            expect_panic(&format!("{}", k.isa()), &msg, || {
                k.bias_add(&mut x, &b, batch, spatial)
            });
        }
        return;
    }
    let mut want = x.clone();
    bias::scalar::add(&mut want, &b, batch, spatial);
    let (mut gb_want, mut gb_mag) = (vec![0.0f64; channels], vec![0.0f64; channels]);
    bias::scalar::backward(&widen(&x), &mut gb_want, batch, spatial);
    bias::scalar::backward(&abs(&widen(&x)), &mut gb_mag, batch, spatial);
    for k in Kernels::all() {
        let what = format!("{} bias [{batch}, {channels}, {spatial}]", k.isa());
        let mut y = x.clone();
        k.bias_add(&mut y, &b, batch, spatial);
        assert_same(&what, &y, &want);
        let mut gb = vec![f32::NAN; channels];
        k.bias_backward(&x, &mut gb, batch, spatial);
        assert_sums(
            &format!("{what} backward"),
            &gb,
            &gb_want,
            &gb_mag,
            batch.saturating_mul(spatial),
        );
    }
}

pub fn gemm(input: &mut Input) {
    let t = |b: bool| if b { Transpose::Yes } else { Transpose::No };
    let (ta, tb) = (t(input.flag()), t(input.flag()));
    let (m, n, k) = (input.dim(40), input.dim(40), input.dim(40));
    let (ea, eb, ec) = (input.dim(3), input.dim(3), input.dim(3));
    // alpha and beta finite: with a NaN or infinite scalar the result where the sum is 0 (k = 0
    // and the like) is a matter of convention (BLAS returns beta * C without reading A and B).
    let finite = |v: f32| if v.is_finite() { v } else { 0.75 };
    let (alpha, beta) = (
        finite(input.value()),
        if input.below(3) == 0 {
            0.0
        } else {
            finite(input.value())
        },
    );
    let (ar, ac) = ta.stored_dims(m, k);
    let (br, bc) = tb.stored_dims(k, n);
    // Leading dimensions: the row length plus a little, saturating (the kernel gets the same).
    let lds = [
        ac.saturating_add(ea),
        bc.saturating_add(eb),
        n.saturating_add(ec),
    ];
    let spans = [(ar, ac, lds[0]), (br, bc, lds[1]), (m, n, lds[2])].map(|(r, c, ld)| {
        if r == 0 || c == 0 {
            Some((0, ld))
        } else {
            (r - 1)
                .checked_mul(ld)
                .and_then(|v| v.checked_add(c))
                .map(|s| (s, ld))
        }
    });
    let [Some((sa, lda)), Some((sb, ldb)), Some((sc, ldc))] = spans else {
        // A span that overflows: refused. The matrices are checked A, B, C, with empty
        // slices here, so an earlier non-empty span is a length mismatch first.
        let needle = spans
            .iter()
            .find_map(|s| match s {
                None => Some("overflows"),
                Some((0, _)) => None,
                Some(_) => Some("expected length"),
            })
            .expect("a span overflowed");
        let ld = |i: usize| lds[i];
        for kt in Kernels::all() {
            expect_panic(&format!("{} sgemm {m}x{n}x{k}", kt.isa()), needle, || {
                kt.sgemm(
                    ta,
                    tb,
                    m,
                    n,
                    k,
                    alpha,
                    &[],
                    ld(0),
                    &[],
                    ld(1),
                    beta,
                    &mut [],
                    ld(2),
                )
            });
        }
        return;
    };
    if !fits(&[sa, sb, sc]) || m.saturating_mul(n).saturating_mul(k) > MAX_WORK {
        return;
    }
    let (a, b) = (input.values(sa), input.values(sb));
    let c0 = if beta == 0.0 {
        vec![f32::NAN; sc]
    } else {
        input.values(sc)
    };
    let p = Perturb::read(input, 3);
    if p.which < 3 {
        let l = [sa, sb, sc].map(|s| s);
        let got: Vec<usize> = l.iter().enumerate().map(|(i, &v)| p.len(i, v)).collect();
        // A longer slice may still be within the row-padded bound: only a shorter one, or one
        // beyond `rows * ld`, is refused.
        let rows = [ar, br, m][p.which];
        let padded = rows.saturating_mul([lda, ldb, ldc][p.which]);
        if got[p.which] < l[p.which] || got[p.which] > padded.max(l[p.which]) {
            let needle = format!("got {}", got[p.which]);
            for kt in Kernels::all() {
                let (a, b, mut c) = (vec![0.0; got[0]], vec![0.0; got[1]], vec![0.0; got[2]]);
                expect_panic(&format!("{} sgemm", kt.isa()), &needle, || {
                    kt.sgemm(ta, tb, m, n, k, alpha, &a, lda, &b, ldb, beta, &mut c, ldc)
                });
            }
            return;
        }
    }
    let cd = if beta == 0.0 {
        vec![0.0; sc]
    } else {
        widen(&c0)
    };
    let (mut want, mut mag) = (cd.clone(), abs(&cd));
    let (ad, bd) = (widen(&a), widen(&b));
    gemm::scalar::gemm(
        ta,
        tb,
        m,
        n,
        k,
        alpha as f64,
        &ad,
        lda,
        &bd,
        ldb,
        beta as f64,
        &mut want,
        ldc,
    );
    let (aa, ab) = (abs(&ad), abs(&bd));
    let (alpha_abs, beta_abs) = ((alpha as f64).abs(), (beta as f64).abs());
    gemm::scalar::gemm(
        ta, tb, m, n, k, alpha_abs, &aa, lda, &ab, ldb, beta_abs, &mut mag, ldc,
    );
    // The unscaled sums and C: what an order that scales last reaches.
    let mut reach = abs(&cd);
    gemm::scalar::gemm(
        ta, tb, m, n, k, 1.0, &aa, lda, &ab, ldb, 1.0, &mut reach, ldc,
    );
    for kt in Kernels::all() {
        let mut c = c0.clone();
        kt.sgemm(ta, tb, m, n, k, alpha, &a, lda, &b, ldb, beta, &mut c, ldc);
        let what = format!(
            "{} sgemm {ta:?}{tb:?} {m}x{n}x{k} ld {lda} {ldb} {ldc} beta {beta}",
            kt.isa()
        );
        // Only C's elements inside the m x n matrix are defined; the padding is left as it was.
        let inside: Vec<usize> = (0..m)
            .flat_map(|i| (0..n).map(move |j| i * ldc + j))
            .collect();
        let pick = |v: &[f32]| inside.iter().map(|&i| v[i]).collect::<Vec<_>>();
        let pick_d = |v: &[f64]| inside.iter().map(|&i| v[i]).collect::<Vec<_>>();
        let (w, m) = (pick_d(&want), pick_d(&mag));
        // An order that scales a factor first (alpha * a, then * b) may underflow to a
        // denormal and lose bits, which the next factor scales back up: at most 2^-149 times
        // the largest other factor per product.
        let largest = a.iter().chain(&b).fold(1.0f64, |m, v| {
            if v.is_finite() {
                m.max(v.abs() as f64)
            } else {
                m
            }
        });
        let floor = (k as f64 + 2.0) * 2f64.powi(-149) * largest * (alpha.abs() as f64).max(1.0);
        let tol = Tolerance {
            terms: k.saturating_add(2),
            floor,
            extra_nan: false,
        };
        assert_sums_with(&what, &pick(&c), &w, &m, &pick_d(&reach), tol);
        for (i, (&x, &y)) in c.iter().zip(&c0).enumerate() {
            if i % ldc.max(1) >= n {
                assert!(x.to_bits() == y.to_bits(), "{what}: padding {i} written");
            }
        }
    }
}

pub fn relu(input: &mut Input) {
    let len = input.dim(100).min(MAX_LEN);
    let (x, g) = (input.values(len), input.values(len));
    let (l, msg) = perturbed(input, &["relu_forward: output"], &[len]);
    if let Some(msg) = msg {
        for k in Kernels::all() {
            let mut y = vec![0.0; l[0]];
            expect_panic(&format!("{}", k.isa()), &msg, || k.relu_forward(&x, &mut y));
        }
        return;
    }
    let mut want = vec![0.0; len];
    relu::scalar::forward(&x, &mut want);
    let mut gi_want = vec![0.0; len];
    relu::scalar::backward(&want, &g, &mut gi_want);
    for k in Kernels::all() {
        let mut y = vec![f32::NAN; len];
        k.relu_forward(&x, &mut y);
        assert_same(&format!("{} relu", k.isa()), &y, &want);
        let mut z = x.clone();
        k.relu_forward_in_place(&mut z);
        assert_same(&format!("{} relu in place", k.isa()), &z, &want);
        let mut gi = vec![f32::NAN; len];
        k.relu_backward(&y, &g, &mut gi);
        assert_same(&format!("{} relu backward", k.isa()), &gi, &gi_want);
    }
}

/// exp's contract: NaN stays NaN, below ln(FLT_MIN) 0, above 88.72 +inf, within 2 ulp between.
fn check_exp(what: &str, x: f32, y: f32) {
    if x.is_nan() {
        assert!(y.is_nan(), "{what}: exp(NaN) = {y}");
    } else if x < exp::EXP_MIN_INPUT {
        assert_eq!(y, 0.0, "{what}: exp({x:e})");
    } else if x > exp::EXP_MAX_INPUT {
        assert_eq!(y, f32::INFINITY, "{what}: exp({x:e})");
    } else {
        let e = ulps(y, (x as f64).exp());
        assert!(e <= 2.0, "{what}: exp({x:e}) = {y:e} ({e} ulp)");
    }
}

/// ln's contract: NaN for NaN and negatives, -inf at 0, +inf at +inf, within 2 ulp elsewhere.
fn check_ln(what: &str, x: f32, y: f32) {
    if x.is_nan() || x < 0.0 {
        assert!(y.is_nan(), "{what}: ln({x:e}) = {y}");
    } else if x == 0.0 {
        assert_eq!(y, f32::NEG_INFINITY, "{what}: ln({x:e})");
    } else if x == f32::INFINITY {
        assert_eq!(y, f32::INFINITY, "{what}: ln(inf)");
    } else {
        let want = (x as f64).ln();
        let ok = if want == 0.0 {
            y == 0.0
        } else {
            ulps(y, want) <= 2.0
        };
        assert!(ok, "{what}: ln({x:e}) = {y:e}, want {want:e}");
    }
}

pub fn exp_ln(input: &mut Input) {
    let len = input.dim(100).min(MAX_LEN);
    let scale = [1.0f32, 50.0, 1e-3][input.below(3)];
    let x: Vec<f32> = input.values(len).iter().map(|v| v * scale).collect();
    let (l, msg) = perturbed(input, &["exp: y"], &[len]);
    if let Some(msg) = msg {
        for k in Kernels::all() {
            let mut y = vec![0.0; l[0]];
            expect_panic(&format!("{}", k.isa()), &msg, || k.exp(&x, &mut y));
        }
        return;
    }
    for k in Kernels::all() {
        let mut y = vec![f32::NAN; len];
        k.exp(&x, &mut y);
        for (&xi, &yi) in x.iter().zip(&y) {
            check_exp(&format!("{}", k.isa()), xi, yi);
        }
        k.ln(&x, &mut y);
        for (&xi, &yi) in x.iter().zip(&y) {
            check_ln(&format!("{}", k.isa()), xi, yi);
        }
    }
}

pub fn cross_entropy(input: &mut Input) {
    let (rows, classes) = (input.dim(9), input.dim(12));
    let probabilities = input.below(4) == 0;
    let reduction = [Reduction::Mean, Reduction::Sum, Reduction::None][input.below(3)];
    let with_weight = input.flag();
    let ignore_index = if input.flag() {
        -100
    } else {
        input.below(4) as i64
    };
    let label_smoothing = [0.0f32, 0.0, 0.1, 0.5, 1.0, 1.5][input.below(6)];
    let Some(len) = rows
        .checked_mul(classes)
        .filter(|&l| l <= MAX_LEN && classes <= MAX_LEN)
    else {
        return;
    };
    if classes == 0 {
        for k in Kernels::all() {
            expect_panic(
                "classes 0",
                "cross_entropy: classes must be at least 1",
                || {
                    let o = CrossEntropyOptions::default();
                    let _ = k.cross_entropy_forward(&[], 0, Targets::Indices(&[]), &o, None);
                },
            );
        }
        return;
    }
    let logits = input.values(len);
    let weight: Vec<f32> = input.values(classes).iter().map(|v| v.abs()).collect();
    let indices: Vec<i64> = (0..rows)
        .map(|_| input.below(classes + 2) as i64 - 1)
        .collect();
    let probs: Vec<f32> = input.values(len).iter().map(|v| v.abs()).collect();
    let grad_scale = input.value();
    let targets = if probabilities {
        Targets::Probabilities(&probs[..])
    } else {
        Targets::Indices(&indices[..])
    };
    let options = CrossEntropyOptions {
        reduction,
        weight: with_weight.then_some(&weight[..]),
        ignore_index,
        label_smoothing,
    };
    let (wd, pd) = (widen(&weight), widen(&probs));
    let options_d = CrossEntropyOptions {
        reduction,
        weight: with_weight.then_some(&wd[..]),
        ignore_index,
        label_smoothing: label_smoothing as f64,
    };
    let targets_d = if probabilities {
        Targets::Probabilities(&pd[..])
    } else {
        Targets::Indices(&indices)
    };
    let (mut g_want, mut r_want) = (vec![0.0f64; len], vec![0.0f64; rows]);
    let grad_d = GradOutput::Scalar(grad_scale as f64);
    let want = cross_entropy::scalar::forward_backward(
        &widen(&logits),
        classes,
        targets_d,
        &options_d,
        grad_d,
        Some(&mut g_want),
        Some(&mut r_want),
    );
    let finite = logits
        .iter()
        .chain(&weight)
        .chain(&probs)
        .all(|v| v.is_finite() && v.abs() < 1e4)
        && grad_scale.is_finite();
    let big = logits.iter().fold(1.0f64, |m, v| m.max(v.abs() as f64));
    let wmax =
        weight.iter().fold(1.0f64, |m, v| m.max(*v as f64)) * (grad_scale.abs() as f64).max(1.0);
    for k in Kernels::all() {
        let what = format!(
            "{} cross_entropy rows {rows} classes {classes} {reduction:?} p {probabilities}",
            k.isa()
        );
        let (mut g, mut r) = (vec![f32::NAN; len], vec![f32::NAN; rows]);
        let got = k.cross_entropy_forward_backward(
            &logits,
            classes,
            targets,
            &options,
            GradOutput::Scalar(grad_scale),
            &mut g,
            Some(&mut r),
        );
        match (&got, &want) {
            (Err(a), Err(b)) => assert_eq!(a, b, "{what}"),
            (Ok(loss), Ok(want_loss)) => {
                let rows_f = rows as f64 + 1.0;
                // NaN where the reference has NaN (a 'mean' over no kept row divides by 0).
                let nan_ok = |a: f32, b: f64| !b.is_nan() || a.is_nan();
                assert!(nan_ok(*loss, *want_loss), "{what}: loss {loss}, want NaN");
                if finite && want_loss.abs() > f32::MAX as f64 {
                    // The loss itself overflows f32.
                    assert!(
                        loss.is_infinite() || loss.abs() > f32::MAX / 2.0,
                        "{what}: loss {loss} vs {want_loss}"
                    );
                } else if finite && want_loss.is_finite() {
                    for (i, (&a, &b)) in g.iter().zip(&g_want).enumerate() {
                        assert!(nan_ok(a, b), "{what}: grad {i}: {a}, want NaN");
                    }
                    let tol = 4e-7 * big * wmax * (classes as f64).sqrt() * rows_f;
                    let err = (*loss as f64 - want_loss).abs();
                    assert!(
                        err <= tol + 1e-5 * want_loss.abs(),
                        "{what}: loss {loss} vs {want_loss}"
                    );
                    for (i, (&a, &b)) in g.iter().zip(&g_want).enumerate() {
                        let bound = 2e-6 * wmax * big + 1e-4 * b.abs();
                        assert!(
                            b.is_nan() || (a as f64 - b).abs() <= bound,
                            "{what}: grad {i}: {a} vs {b}"
                        );
                    }
                }
            }
            _ => panic!("{what}: {got:?} but the reference gives {want:?}"),
        }
    }
}

pub fn sgd(input: &mut Input) {
    let len = input.dim(100).min(MAX_LEN);
    let pick = |input: &mut Input, v: &[f64]| v[input.below(v.len())];
    let options = SgdOptions {
        lr: pick(input, &[0.1, 0.01, 1.0, 0.0, -1.0]),
        momentum: pick(input, &[0.0, 0.9, 0.5, -0.5]),
        dampening: pick(input, &[0.0, 0.1, 0.5]),
        weight_decay: pick(input, &[0.0, 1e-4, 0.1, -1.0]),
        nesterov: input.below(4) == 0,
        maximize: input.flag(),
    };
    if options.validate().is_err() {
        return; // the data error is the caller's to report (tested in sgd.rs)
    }
    let first = input.flag();
    let (p0, g, b0) = (input.values(len), input.values(len), input.values(len));
    let with_buffer = options.momentum != 0.0;
    let names = ["sgd_step: grad", "sgd_step: momentum_buffer"];
    let (l, msg) = perturbed(input, &names, &[len, len]);
    if let Some(msg) = msg.filter(|_| with_buffer || l[1] == len) {
        for k in Kernels::all() {
            let (mut p, g, mut b) = (p0.clone(), vec![0.0; l[0]], vec![0.0; l[1]]);
            expect_panic(&format!("{}", k.isa()), &msg, || {
                k.sgd_step(
                    &options,
                    &mut p,
                    &g,
                    with_buffer.then_some(&mut b[..]),
                    first,
                )
            });
        }
        return;
    }
    let (mut p_want, mut b_want) = (p0.clone(), b0.clone());
    sgd::scalar::step(
        &options,
        &mut p_want,
        &g,
        with_buffer.then_some(&mut b_want[..]),
        first,
    );
    for k in Kernels::all() {
        let (mut p, mut b) = (p0.clone(), b0.clone());
        k.sgd_step(
            &options,
            &mut p,
            &g,
            with_buffer.then_some(&mut b[..]),
            first,
        );
        let what = format!("{} sgd {options:?} first {first}", k.isa());
        for (name, got, want) in [("param", &p, &p_want), ("buffer", &b, &b_want)] {
            for (i, (&x, &w)) in got.iter().zip(want.iter()).enumerate() {
                let ok = x.to_bits() == w.to_bits()
                    || (x.is_nan() && w.is_nan())
                    || (w.is_finite() && ulps(x, w as f64) <= 2.0);
                assert!(ok, "{what}: {name}[{i}] = {x:e}, reference {w:e}");
            }
        }
    }
}
