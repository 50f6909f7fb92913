//! `exp` and `ln` on every ISA against f64: the 2-ulp contract over dense sweeps of all f32 bit
//! patterns, every f32 near the edges, the edge rules, and random slices against the scalar
//! reference.

mod common;

use common::{all_kernels, cases};
use proptest::prelude::*;
use simdnet_kernels::exp::{EXP_MAX_INPUT, EXP_MIN_INPUT};
use simdnet_kernels::Kernels;

/// `|got - want|` in units of the f32 ulp at `want`.
fn ulps(got: f32, want: f64) -> f64 {
    let w = (want as f32).abs();
    let ulp = (f32::from_bits(w.to_bits() + 1) - w) as f64;
    ((got as f64) - want).abs() / ulp
}

/// Stride through all 2^32 bit patterns (coarser under qemu).
fn sweep_stride() -> u64 {
    if cfg!(target_arch = "aarch64") {
        8191
    } else {
        191
    }
}

/// Runs `f` over `xs` in chunks on kernel `k`, returning (x, y) pairs to `check`.
fn for_chunks(
    xs: impl Iterator<Item = f32>,
    mut run: impl FnMut(&[f32], &mut [f32]),
    mut check: impl FnMut(f32, f32),
) {
    let mut xbuf = Vec::with_capacity(4096);
    let mut ybuf = vec![0.0f32; 4096];
    let mut flush = |xbuf: &mut Vec<f32>| {
        let y = &mut ybuf[..xbuf.len()];
        run(xbuf, y);
        for (&x, &y) in xbuf.iter().zip(y.iter()) {
            check(x, y);
        }
        xbuf.clear();
    };
    for x in xs {
        xbuf.push(x);
        if xbuf.len() == 4096 {
            flush(&mut xbuf);
        }
    }
    flush(&mut xbuf);
}

/// Checks one exp result against the contract; returns its ulp error (0 outside the range).
fn check_exp(isa: &str, x: f32, y: f32) -> f64 {
    if x.is_nan() {
        assert!(y.is_nan(), "{isa}: exp(NaN) = {y}");
        return 0.0;
    }
    assert!(
        y == 0.0 || !y.is_subnormal(),
        "{isa}: exp({x:e}) = {y:e} is denormal"
    );
    if x < EXP_MIN_INPUT {
        assert_eq!(y, 0.0, "{isa}: exp({x:e}) below the range");
        return 0.0;
    }
    if x > EXP_MAX_INPUT {
        assert_eq!(y, f32::INFINITY, "{isa}: exp({x:e}) above the range");
        return 0.0;
    }
    let e = ulps(y, (x as f64).exp());
    assert!(
        e <= 2.0,
        "{isa}: exp({x:e} = {:#x}) = {y:e}, want {:e} ({e} ulp)",
        x.to_bits(),
        (x as f64).exp()
    );
    e
}

fn check_ln(isa: &str, x: f32, y: f32) -> f64 {
    if x.is_nan() || x < 0.0 {
        assert!(y.is_nan(), "{isa}: ln({x:e}) = {y}");
        return 0.0;
    }
    if x == 0.0 {
        assert_eq!(y, f32::NEG_INFINITY, "{isa}: ln({x:e})");
        return 0.0;
    }
    if x == f32::INFINITY {
        assert_eq!(y, f32::INFINITY, "{isa}: ln(inf)");
        return 0.0;
    }
    let want = (x as f64).ln();
    if want == 0.0 {
        assert_eq!(y, 0.0, "{isa}: ln(1)");
        return 0.0;
    }
    let e = ulps(y, want);
    assert!(
        e <= 2.0,
        "{isa}: ln({x:e} = {:#x}) = {y:e}, want {want:e} ({e} ulp)",
        x.to_bits()
    );
    e
}

fn all_bits_strided() -> impl Iterator<Item = f32> {
    (0..=u32::MAX as u64)
        .step_by(sweep_stride() as usize)
        .map(|b| f32::from_bits(b as u32))
}

#[test]
fn exp_within_2_ulp_of_f64_over_a_dense_sweep_of_all_f32() {
    for k in all_kernels() {
        let isa = k.isa().name();
        let mut worst = 0.0f64;
        let mut count = 0usize;
        for_chunks(
            all_bits_strided(),
            |x, y| k.exp(x, y),
            |x, y| {
                worst = worst.max(check_exp(isa, x, y));
                count += 1;
            },
        );
        println!("exp {isa}: {count} inputs, worst {worst:.3} ulp");
        assert!(count > 500_000, "{count} inputs");
    }
}

#[test]
fn exp_every_f32_near_both_edges_and_in_minus_1_to_1_at_a_stride() {
    // Every f32 in [-88, -86] and [86, 89] (the scaling edges), and [-1, 1] at stride 1021
    // (about a million values each side).
    let range = |lo: f32, hi: f32, step: usize| {
        let (a, b) = (lo.to_bits(), hi.to_bits());
        let (a, b) = (a.min(b), a.max(b));
        (a..=b).step_by(step).map(f32::from_bits)
    };
    let step = if cfg!(target_arch = "aarch64") { 16 } else { 1 };
    for k in all_kernels() {
        let isa = k.isa().name();
        let mut worst = 0.0f64;
        let xs = range(-88.0, -86.0, step)
            .chain(range(86.0, 89.0, step))
            .chain(range(0.0, 1.0, 1021 * step))
            .chain(range(-0.0, -1.0, 1021 * step));
        for_chunks(
            xs,
            |x, y| k.exp(x, y),
            |x, y| worst = worst.max(check_exp(isa, x, y)),
        );
        println!("exp edges {isa}: worst {worst:.3} ulp");
    }
}

#[test]
fn exp_edge_values() {
    let xs = [
        f32::NEG_INFINITY,
        f32::INFINITY,
        f32::NAN,
        -f32::NAN,
        0.0,
        -0.0,
        EXP_MIN_INPUT,
        f32::from_bits(EXP_MIN_INPUT.to_bits() + 1),
        EXP_MAX_INPUT,
        f32::from_bits(EXP_MAX_INPUT.to_bits() + 1),
        -1e30,
        1e30,
        -104.0,
        f32::MIN_POSITIVE,
    ];
    for k in all_kernels() {
        let mut y = vec![7.0; xs.len()];
        k.exp(&xs, &mut y);
        let isa = k.isa().name();
        assert_eq!(y[0], 0.0, "{isa}: exp(-inf)");
        assert_eq!(y[1], f32::INFINITY, "{isa}: exp(inf)");
        assert!(y[2].is_nan() && y[3].is_nan(), "{isa}: exp(NaN)");
        assert_eq!((y[4], y[5]), (1.0, 1.0), "{isa}: exp(0)");
        assert!(
            y[6] >= f32::MIN_POSITIVE,
            "{isa}: exp(EXP_MIN_INPUT) = {:e}",
            y[6]
        );
        assert_eq!(y[7], 0.0, "{isa}: just below EXP_MIN_INPUT");
        assert!(
            y[8].is_finite() && y[8] > 3.4e38,
            "{isa}: exp(EXP_MAX_INPUT)"
        );
        assert_eq!(y[9], f32::INFINITY, "{isa}: just above EXP_MAX_INPUT");
        assert_eq!((y[10], y[11], y[12]), (0.0, f32::INFINITY, 0.0), "{isa}");
        assert_eq!(y[13], 1.0, "{isa}: exp(FLT_MIN)");
    }
}

#[test]
fn ln_within_2_ulp_of_f64_over_a_dense_sweep_of_all_f32() {
    for k in all_kernels() {
        let isa = k.isa().name();
        let mut worst = 0.0f64;
        for_chunks(
            all_bits_strided(),
            |x, y| k.ln(x, y),
            |x, y| worst = worst.max(check_ln(isa, x, y)),
        );
        println!("ln {isa}: worst {worst:.3} ulp");
    }
}

#[test]
fn ln_edges_and_denormals() {
    let xs = [
        0.0,
        -0.0,
        -1.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1.0,
        f32::from_bits(1),
        f32::MIN_POSITIVE,
        f32::MIN_POSITIVE / 3.0,
        f32::MAX,
        std::f32::consts::E,
    ];
    for k in all_kernels() {
        let mut y = vec![0.0; xs.len()];
        k.ln(&xs, &mut y);
        for (&x, &y) in xs.iter().zip(&y) {
            check_ln(k.isa().name(), x, y);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// Random slices of any bit pattern (every tail length): each ISA within 2 ulp of f64 and
    /// agreeing with the scalar reference on every special value.
    #[test]
    fn exp_and_ln_random_slices_match_the_reference(
        bits in prop::collection::vec(any::<u32>(), 0..40),
        scale in prop::sample::select(vec![1.0f32, 10.0, 100.0]),
    ) {
        let xs: Vec<f32> = bits
            .iter()
            .map(|&b| {
                let v = f32::from_bits(b);
                // Mostly moderate values, some raw bit patterns.
                if b % 4 == 0 { v } else { ((b >> 2) as f32 / (1u32 << 30) as f32 - 0.5) * 2.0 * scale }
            })
            .collect();
        let reference = Kernels::for_isa(simdnet_kernels::Isa::Scalar).unwrap();
        let mut want = vec![0.0; xs.len()];
        reference.exp(&xs, &mut want);
        for k in all_kernels() {
            let mut y = vec![f32::NAN; xs.len()];
            k.exp(&xs, &mut y);
            for i in 0..xs.len() {
                check_exp(k.isa().name(), xs[i], y[i]);
                prop_assert!(ulps(y[i], want[i] as f64) <= 2.0 || (y[i].is_nan() && want[i].is_nan()) || y[i] == want[i],
                    "{}: exp({:e}) = {:e}, reference {:e}", k.isa(), xs[i], y[i], want[i]);
            }
            let mut l = vec![0.0; xs.len()];
            k.ln(&xs, &mut l);
            for i in 0..xs.len() {
                check_ln(k.isa().name(), xs[i], l[i]);
            }
        }
    }
}

/// Every length up to 70 (every tail of every vector width, one to four whole vectors) and
/// around 1024: each ISA agrees with the contract element by element, and writes nothing
/// outside its output slice (the output is a slice of a larger buffer of sentinels).
#[test]
fn every_length_writes_only_its_slice() {
    const SENTINEL: f32 = 12345.0;
    const PAD: usize = 21;
    for k in all_kernels() {
        let isa = k.isa().name();
        for n in (0..=70).chain([1023, 1024, 1025]) {
            let xs: Vec<f32> = common::random_vec(n, n as u64)
                .iter()
                .map(|v| v * 90.0)
                .collect();
            for op in ["exp", "ln"] {
                let mut buf = vec![SENTINEL; n + 2 * PAD];
                let y = &mut buf[PAD..PAD + n];
                if op == "exp" {
                    k.exp(&xs, y);
                } else {
                    k.ln(&xs, y);
                }
                for (&x, &y) in xs.iter().zip(y.iter()) {
                    if op == "exp" {
                        check_exp(isa, x, y);
                    } else {
                        check_ln(isa, x, y);
                    }
                }
                let untouched = |b: &[f32]| b.iter().all(|&v| v == SENTINEL);
                assert!(
                    untouched(&buf[..PAD]) && untouched(&buf[PAD + n..]),
                    "{isa}: {op} of {n} wrote outside its slice"
                );
            }
        }
    }
}

#[test]
#[should_panic(expected = "exp: y: expected length 3, got 2")]
fn exp_length_mismatch_panics_naming_both_lengths() {
    Kernels::get().exp(&[1.0, 2.0, 3.0], &mut [0.0; 2]);
}

#[test]
#[should_panic(expected = "ln: y: expected length 1, got 0")]
fn ln_length_mismatch_panics_naming_both_lengths() {
    Kernels::get().ln(&[1.0], &mut []);
}
