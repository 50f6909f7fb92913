//! The SIMD vocabulary: one trait for a vector of f32 lanes, implemented once per instruction
//! set (`avx2.rs`: `__m256`, `avx512.rs`: `__m512`, `neon.rs`: `float32x4_t`). Kernel bodies
//! are written once, generic over [`F32x`], and instantiated by thin `#[target_feature]`
//! wrappers in each kernel folder's ISA files, declared with [`isa_fns!`]; [`isa_table!`]
//! declares the folder's `table` from them.
//!
//! # Contract
//!
//! Every method is an `unsafe fn` with one shared precondition: the CPU supports the ISA of the
//! implementing type. Calling one from a function compiled with that ISA's target features
//! (the wrappers) or from an `#[inline(always)]` body inlined into such a function meets it.
//! The loads and stores also need their pointers valid for the lanes they touch: all
//! `LANES` for [`F32x::load`] / [`F32x::store`], the first `n` for the `_first` forms, which
//! never touch a lane at or past `n` (AVX2 `vmaskmov`, AVX-512 lane masks, a stack buffer on
//! NEON), so a tail never needs a scalar loop and never reads past a slice.
//!
//! # Semantics the bodies rely on
//!
//! - Arithmetic is IEEE single precision; `mul_add` and friends round once (FMA on every ISA).
//! - `a.max(b)` / `a.min(b)`: when `b` is NaN the result is NaN; when only `a` is NaN it may
//!   be `b` (x86 returns the second operand). Bodies put the value that may be NaN second.
//! - Comparisons are ordered (false when either side is NaN); a mask is per lane.
//! - `sum` / `max_lane` reduce in an ISA-specific order: bodies that need the same bits on
//!   every ISA do not use them (they are for row reductions whose order is not promised).
//! - `scale_pow2_or_zero(p, n, zero)` is `p * 2^n` for `p` in `[0.5, 2)` and integer-valued
//!   `n` in `[-126, 128]` whenever the result is normal; AVX-512's `vscalefps` also handles
//!   any other `n` (saturating to 0 or infinity), which [`F32x::SCALE_ANY_EXPONENT`] states so
//!   `exp` can skip its clamp there.
//!
//! # Why a trait on the raw register types
//!
//! Methods inline into the body, and the body into the wrapper, so one instantiation compiles
//! to the same instructions a hand-written per-ISA loop would (the benchmarks and `objdump`
//! of the bench binaries check that no `call` is left in a hot loop). Closures would not
//! inherit the wrapper's target features, so bodies take types and traits, not closures.
//! The in-register transposes (`transpose8`, `transpose16`) are free functions in the x86
//! files (their width is the ISA's); [`F32x::store_transposed`] is their generic form.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;

/// A vector of `LANES` f32 (see the module docs for the shared safety precondition).
#[allow(clippy::missing_safety_doc)]
pub(crate) trait F32x: Copy {
    /// One flag per lane, from a comparison.
    type Mask: Copy;
    /// `LANES` unsigned 32-bit integers (element positions, as max pooling's argmax).
    type Index: Copy;
    /// The first `n` lanes, made once for a loop of `load_tail`s (a lane mask where the ISA
    /// loads through one, else `n`).
    type Tail: Copy;
    /// f32 lanes per vector.
    const LANES: usize;
    /// Whether `scale_pow2_or_zero` is exact for any `n` (no clamp needed before it).
    const SCALE_ANY_EXPONENT: bool;

    unsafe fn splat(v: f32) -> Self;
    unsafe fn zero() -> Self;
    /// `LANES` floats from `src` (any alignment).
    unsafe fn load(src: *const f32) -> Self;
    /// `LANES` floats to `dst` (any alignment).
    unsafe fn store(self, dst: *mut f32);
    /// The first `n` floats from `src` (`n <= LANES`); the other lanes are 0.
    unsafe fn load_first(src: *const f32, n: usize) -> Self;
    /// The first `n` lanes to `dst` (`n <= LANES`); nothing else is written.
    unsafe fn store_first(self, dst: *mut f32, n: usize);
    /// The tail of `n <= LANES` lanes for [`F32x::load_tail`].
    unsafe fn tail(n: usize) -> Self::Tail;
    /// [`F32x::load_first`] with the `n` of `tail`.
    unsafe fn load_tail(src: *const f32, tail: Self::Tail) -> Self;

    unsafe fn add(self, b: Self) -> Self;
    unsafe fn sub(self, b: Self) -> Self;
    unsafe fn mul(self, b: Self) -> Self;
    unsafe fn div(self, b: Self) -> Self;
    /// `self * b + c`, rounded once.
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    /// `c - self * b`, rounded once.
    unsafe fn neg_mul_add(self, b: Self, c: Self) -> Self;
    /// `self * b - c`, rounded once.
    unsafe fn mul_sub(self, b: Self, c: Self) -> Self;
    /// The larger lane; NaN when `b` is NaN.
    unsafe fn max(self, b: Self) -> Self;
    /// The smaller lane; NaN when `b` is NaN.
    unsafe fn min(self, b: Self) -> Self;
    /// Bitwise exclusive or (flips sign bits when `b` holds `-0.0`).
    unsafe fn xor(self, b: Self) -> Self;

    unsafe fn lt(self, b: Self) -> Self::Mask;
    unsafe fn le(self, b: Self) -> Self::Mask;
    unsafe fn gt(self, b: Self) -> Self::Mask;
    unsafe fn ge(self, b: Self) -> Self::Mask;
    unsafe fn eq(self, b: Self) -> Self::Mask;
    /// `m ? a : b` per lane.
    unsafe fn select(m: Self::Mask, a: Self, b: Self) -> Self;
    /// `m ? +0.0 : self` per lane (clears the bits).
    unsafe fn clear_where(self, m: Self::Mask) -> Self;
    /// `m ? self : +0.0` per lane.
    unsafe fn keep_where(self, m: Self::Mask) -> Self;
    /// Lanes that are NaN.
    unsafe fn is_nan(self) -> Self::Mask;
    unsafe fn mask_or(a: Self::Mask, b: Self::Mask) -> Self::Mask;
    /// Whether every lane below `n` is set (`n <= LANES`).
    unsafe fn mask_all_first(m: Self::Mask, n: usize) -> bool;
    /// Whether any lane is set.
    unsafe fn mask_any(m: Self::Mask) -> bool;
    /// The lanes below `n` set (all when `n >= LANES`).
    unsafe fn first_lanes(n: usize) -> Self::Mask;
    /// A hint to fetch the cache line holding `p` into every cache level (never faults): the
    /// same SSE instruction on both x86 vocabularies; nothing on NEON, whose prefetch
    /// intrinsic is not stable.
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE is part of x86-64, and a prefetch is a hint that never faults.
        unsafe {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(p.cast())
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }

    /// The first `n <= 2 LANES` floats at `src`, split into even and odd positions:
    /// `([s0, s2, ..], [s1, s3, ..])`; lanes past `n` are 0.
    unsafe fn load_pairs(src: *const f32, n: usize) -> (Self, Self);
    /// The inverse of `load_pairs`: `[e0, o0, e1, o1, ..]`, its first `n <= 2 LANES` floats.
    unsafe fn store_pairs(even: Self, odd: Self, dst: *mut f32, n: usize);

    /// `[start, start + 2, start + 4, ..]`.
    unsafe fn index_ramp2(start: u32) -> Self::Index;
    /// `a + k` per lane (wrapping).
    unsafe fn index_add(a: Self::Index, k: u32) -> Self::Index;
    unsafe fn index_eq(a: Self::Index, b: Self::Index) -> Self::Mask;
    /// `m ? a : b` per lane.
    unsafe fn index_select(m: Self::Mask, a: Self::Index, b: Self::Index) -> Self::Index;
    /// The first `n <= LANES` indices at `src`; lanes past `n` are 0.
    unsafe fn index_load_first(src: *const u32, n: usize) -> Self::Index;
    /// The first `n <= LANES` lanes to `dst`; nothing else is written.
    unsafe fn index_store_first(a: Self::Index, dst: *mut u32, n: usize);

    /// Lane 0.
    unsafe fn lane0(self) -> f32;
    /// Sum of the lanes (ISA-specific order).
    unsafe fn sum(self) -> f32;
    /// Largest lane (NaN lanes may be skipped).
    unsafe fn max_lane(self) -> f32;

    /// `self * 2^n` where `zero` is false, `+0.0` where it is true (module docs for the range).
    unsafe fn scale_pow2_or_zero(self, n: Self, zero: Self::Mask) -> Self;
    /// For positive normal lanes, `(k, m)` with `self = 2^k * m`, `m` in `[sqrt(2)/2, sqrt(2))`
    /// and `k` an integer-valued float (the reduction of `ln`).
    unsafe fn exponent_mantissa(self) -> (Self, Self);

    /// `k` in every lane.
    unsafe fn index_splat(k: u32) -> Self::Index;
    /// `[0, step, 2 step, ..]` (wrapping).
    unsafe fn index_stride(step: u32) -> Self::Index;
    /// `a + b` per lane (wrapping).
    unsafe fn index_add_lanes(a: Self::Index, b: Self::Index) -> Self::Index;
    /// Lane `i` is `src[idx[i]]`: every lane's float must be readable, and `idx[i] < 2^31`.
    unsafe fn gather(src: *const f32, idx: Self::Index) -> Self;
    /// Transposes the `LANES` vectors at `columns` (lane `r` of vector `k` is element `k` of
    /// row `r`) and writes elements `0..n` of each row `r` to `dst + r * stride`
    /// (`n <= LANES`; nothing else is written).
    unsafe fn store_transposed(columns: *const Self, dst: *mut f32, stride: usize, n: usize);
}

/// Bits of `sqrt(2)/2`: `exponent_mantissa` moves mantissas into `[sqrt(2)/2, sqrt(2))`.
pub(crate) const SQRT_HALF_BITS: u32 = 0x3f35_04f3;

/// Declares the entry points of a kernel folder's ISA file. Each `fn name(args) -> R { body }`
/// becomes a `pub(super) unsafe fn` compiled with the target features `$features`, in whose
/// body `V` names the ISA's vector type `$vector`. Its contract is its table entry's: the CPU
/// has the features, and the arguments meet what the kernel's `Kernels` method checks.
macro_rules! isa_fns {
    ($features:literal, $vector:ty;
     $(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block)*) => {$(
        #[doc = concat!("# Safety\nThe CPU has `", $features, "`; the arguments meet the checks of the kernel's `Kernels` method.")]
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
            #[allow(dead_code)]
            type V = $vector;
            // SAFETY: compiled with the features, which the caller promises the CPU has; the
            // arguments meet the body's contract (the caller's, as above).
            #[allow(unused_unsafe)]
            unsafe { $body }
        }
    )*};
}
pub(crate) use isa_fns;

/// Declares a kernel folder's `table(isa)`: the scalar table's entries as listed, each SIMD
/// table's the functions of the same names in an ISA file (`avx512: avx2` where the AVX-512
/// table runs the AVX2 code).
macro_rules! isa_table {
    ($table:ident { $($field:ident: $scalar:path),* $(,)? },
     avx2: $avx2:ident, avx512: $avx512:ident, neon: $neon:ident) => {
        pub(crate) fn table(isa: crate::Isa) -> $table {
            match isa {
                crate::Isa::Scalar => $table { $($field: $scalar),* },
                #[cfg(target_arch = "x86_64")]
                crate::Isa::Avx2 => $table { $($field: $avx2::$field),* },
                #[cfg(target_arch = "x86_64")]
                crate::Isa::Avx512 => $table { $($field: $avx512::$field),* },
                #[cfg(target_arch = "aarch64")]
                crate::Isa::Neon => $table { $($field: $neon::$field),* },
                #[allow(unreachable_patterns)]
                _ => unreachable!("{isa} is not an ISA of this architecture"),
            }
        }
    };
}
pub(crate) use isa_table;
