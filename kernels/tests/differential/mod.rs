//! The differential check shared by the `kernels` fuzz target (`fuzz/fuzz_targets/kernels.rs`)
//! and its stable replay (`kernels/tests/fuzz_replay.rs`): bytes become one kernel call (a
//! shape, hostile dimensions included, and values: NaN, infinities, denormals, huge, empty),
//! run on every table this CPU has and compared with the scalar reference.
//!
//! - A shape the kernels must refuse (its `check` fails, a slice one element short or long, a
//!   GEMM span that overflows) must panic with the expected message: that panic is caught and
//!   is the clean outcome. Any other panic, a missing panic, or a result outside the bounds
//!   below fails (the fuzzer aborts; the replay test fails).
//! - Bounds are the property tests': `gamma(terms) * magnitude + f32::MIN_POSITIVE` for sums
//!   (magnitude: the reference on absolute values, in f64), bit equality for ReLU, bias add and
//!   max pooling, 2 ulp for SGD, the 2-ulp contract for exp and ln, `1e-6 + 1e-5 |x|`-style
//!   bounds for cross-entropy. Where a magnitude exceeds `f32::MAX` (huge or infinite inputs)
//!   f32 may overflow in any order, so only NaN is checked: a NaN in the reference must be NaN.
//! - Every buffer is at most [`MAX_LEN`] elements and every reference at most [`MAX_WORK`]
//!   multiplies; a shape beyond that is skipped (its lengths are still computed, checked).
#![allow(dead_code)]

mod ops;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Largest buffer a case allocates.
pub const MAX_LEN: usize = 1 << 14;
/// Most multiply-adds a case's reference may do.
pub const MAX_WORK: usize = 1 << 21;

/// Runs one case: decodes `data` and checks it on every table.
pub fn run(data: &[u8]) {
    quiet_expected_panics();
    let mut input = Input::new(data);
    match input.below(8) {
        0 => ops::conv(&mut input),
        1 => ops::pool(&mut input),
        2 => ops::bias(&mut input),
        3 => ops::gemm(&mut input),
        4 => ops::relu(&mut input),
        5 => ops::exp_ln(&mut input),
        6 => ops::cross_entropy(&mut input),
        _ => ops::sgd(&mut input),
    }
}

/// The bytes of a case, read front to back; past their end, a deterministic stream.
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
    state: u64,
}

/// Dimensions a hostile byte (248..=255) stands for.
const HOSTILE: [usize; 8] = [
    0,
    1,
    (1 << 63) + 1,
    usize::MAX,
    1 << 62,
    1 << 63,
    usize::MAX / 2,
    1 << 32,
];

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input {
            data,
            pos: 0,
            state: data.len() as u64 ^ 0x9E37_79B9_7F4A_7C15,
        }
    }

    pub fn byte(&mut self) -> u8 {
        if let Some(&b) = self.data.get(self.pos) {
            self.pos += 1;
            return b;
        }
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as u8
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.byte() as usize % n
    }

    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A dimension in `0..=max`, or (bytes 248..=255, only while the case's own bytes last) a
    /// hostile one: 0, 1, 2^63 + 1, usize::MAX, 2^62, 2^63, usize::MAX / 2, 2^32.
    pub fn dim(&mut self, max: usize) -> usize {
        let own = self.pos < self.data.len();
        let b = self.byte();
        if own && b >= 248 {
            HOSTILE[(b - 248) as usize]
        } else {
            b as usize % (max + 1)
        }
    }

    /// A value: NaN, ±inf, denormals, huge, -0, the smallest normal, or one in [-2, 2).
    pub fn value(&mut self) -> f32 {
        let own = self.pos < self.data.len();
        match self.byte() {
            0 if own => f32::NAN,
            1 if own => f32::INFINITY,
            2 if own => f32::NEG_INFINITY,
            3 if own => 1e-40,
            4 if own => -3e-42,
            5 if own => 3e38,
            6 if own => -1e30,
            7 if own => -0.0,
            8 if own => f32::MIN_POSITIVE,
            b => (b as f32 - 128.0) / 64.0,
        }
    }

    pub fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.value()).collect()
    }
}

thread_local! {
    static EXPECTING: Cell<bool> = const { Cell::new(false) };
}

/// Installs (once) a panic hook that is silent while [`expect_panic`] runs and otherwise does
/// what the previous hook did (libfuzzer-sys's aborts, the test harness's reports).
fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !EXPECTING.with(|e| e.get()) {
                previous(info);
            }
        }));
    });
}

/// The message of a caught panic.
fn message(err: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = err.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = err.downcast_ref::<&str>() {
        s.to_string()
    } else {
        String::new()
    }
}

/// Runs `f`, which must panic with a message containing `needle` (the clean rejection).
#[track_caller]
pub fn expect_panic(what: &str, needle: &str, f: impl FnOnce()) {
    EXPECTING.with(|e| e.set(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    EXPECTING.with(|e| e.set(false));
    match r {
        Ok(()) => panic!("{what}: returned; expected a panic containing {needle:?}"),
        Err(err) => {
            let msg = message(&*err);
            assert!(
                msg.contains(needle),
                "{what}: panicked with {msg:?}, expected {needle:?}"
            );
        }
    }
}

/// The error bound of a sum of `n` f32 terms: `n u / (1 - n u)`.
pub fn gamma(n: usize) -> f64 {
    let nu = n.max(1) as f64 * f32::EPSILON as f64 / 2.0;
    nu / (1.0 - nu)
}

/// `got` within `gamma(terms) * mag + MIN_POSITIVE` of `want`, NaN where `want` is NaN, and
/// (where `mag` exceeds `f32::MAX / 2`, so f32 may overflow in any order) only that.
#[track_caller]
pub fn assert_sums(what: &str, got: &[f32], want: &[f64], mag: &[f64], terms: usize) {
    assert_sums_reach(what, got, want, mag, mag, terms);
}

/// As [`assert_sums`], with `reach` the largest magnitude an intermediate may have (a sum
/// before it is scaled down): where it exceeds `f32::MAX / 2` only NaN is checked.
#[track_caller]
pub fn assert_sums_reach(
    what: &str,
    got: &[f32],
    want: &[f64],
    mag: &[f64],
    reach: &[f64],
    terms: usize,
) {
    let tol = Tolerance {
        terms,
        floor: 0.0,
        extra_nan: false,
    };
    assert_sums_with(what, got, want, mag, reach, tol);
}

/// How far a sum may be from the reference.
#[derive(Clone, Copy)]
pub struct Tolerance {
    /// Terms of the sum: the bound is `gamma(terms) * magnitude`.
    pub terms: usize,
    /// An absolute term added to the bound (underflow in scaled products, see `ops::gemm`).
    pub floor: f64,
    /// Whether a NaN is accepted where the reference is not NaN: where an input is not finite
    /// and a path multiplies it by a zero the reference skips (the unfolded convolution
    /// multiplies the padding's zeros by the weight; `0 * inf` is NaN).
    pub extra_nan: bool,
}

/// The general comparison behind [`assert_sums`] and [`assert_sums_reach`].
#[track_caller]
pub fn assert_sums_with(
    what: &str,
    got: &[f32],
    want: &[f64],
    mag: &[f64],
    reach: &[f64],
    tol: Tolerance,
) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let g = gamma(tol.terms);
    for (i, ((&x, &w), (&m, &r))) in got.iter().zip(want).zip(mag.iter().zip(reach)).enumerate() {
        if w.is_nan() {
            assert!(x.is_nan(), "{what}: index {i}: got {x:e}, want NaN");
            continue;
        }
        let overflows = m.is_nan() || r.is_nan() || m.max(r) > f32::MAX as f64 / 2.0;
        if overflows || (tol.extra_nan && x.is_nan()) {
            continue;
        }
        let bound = g * m + f32::MIN_POSITIVE as f64 + tol.floor;
        let err = (x as f64 - w).abs();
        assert!(
            err <= bound,
            "{what}: index {i}: got {x:e}, want {w:e}, |diff| {err:e} > {bound:e}"
        );
    }
}

/// Bit equality, any NaN matching any NaN.
#[track_caller]
pub fn assert_same(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&x, &w)) in got.iter().zip(want).enumerate() {
        let same = x.to_bits() == w.to_bits() || (x.is_nan() && w.is_nan());
        assert!(same, "{what}: index {i}: got {x:e}, want {w:e}");
    }
}

/// `|got - want|` in f32 ulps at `want`.
pub fn ulps(got: f32, want: f64) -> f64 {
    let w = want as f32;
    let next = f32::from_bits(w.abs().to_bits() + 1) - w.abs();
    ((got as f64) - want).abs() / next as f64
}

pub fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

pub fn abs(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| x.abs()).collect()
}

/// Lengths `len` and `len ± 1`: which slice (if any) a case makes one short or one long.
pub struct Perturb {
    /// Index of the slice to perturb (none when beyond the slices).
    pub which: usize,
    pub longer: bool,
}

impl Perturb {
    pub fn read(input: &mut Input, slices: usize) -> Perturb {
        // Mostly none: a quarter of the cases perturb one slice.
        let b = input.below(4 * slices);
        Perturb {
            which: if b < slices { b } else { usize::MAX },
            longer: input.flag(),
        }
    }

    /// The length slice `i` gets: `len`, or one off when perturbed (never below 0).
    pub fn len(&self, i: usize, len: usize) -> usize {
        match (self.which == i, self.longer) {
            (false, _) => len,
            (true, true) => len + 1,
            (true, false) => len.saturating_sub(1).max(if len == 0 { 1 } else { 0 }),
        }
    }

    pub fn active(&self, i: usize, len: usize) -> bool {
        self.len(i, len) != len
    }

    /// The message the kernel must panic with when slice `i` named `name` is perturbed.
    pub fn message(&self, name: &str, len: usize) -> Option<String> {
        let i = self.which;
        (i != usize::MAX)
            .then(|| format!("{name}: expected length {len}, got {}", self.len(i, len)))
    }
}
