//! # simdnet-kernels
//!
//! Hand-written `std::arch` kernels for AVX2+FMA and AVX-512 (x86-64) and NEON (aarch64), each
//! beside a plain scalar reference, chosen at run time. No dependencies.
//!
//! ```
//! use simdnet_kernels::{Isa, Kernels};
//!
//! let k = Kernels::get(); // the best ISA this CPU has, cached
//! let chosen = Kernels::from_env(); // SIMDNET_ISA's table (an error if invalid), else the best
//! assert!(chosen.is_ok() || std::env::var_os("SIMDNET_ISA").is_some());
//! println!("using {}", k.isa());
//! for isa in Isa::supported() {
//!     let table = Kernels::for_isa(isa).unwrap(); // any ISA the CPU supports, for tests/benches
//!     assert_eq!(table.isa(), isa);
//! }
//! ```
//!
//! ## Layout
//!
//! `simd/` is the SIMD vocabulary: one trait for a vector of f32 lanes, implemented once per
//! instruction set. One folder per kernel; in it `mod.rs` (the safe entry points: methods on
//! [`Kernels`] that check every length against the shape before any SIMD code runs, and the
//! kernel's `table`), `scalar.rs` (the reference, generic over `f32` and `f64`, public so other
//! crates can use it as an oracle), `vector.rs` (the algorithm, written once over the
//! vocabulary) and one thin file per instruction set (`avx2.rs`, `avx512.rs`, `neon.rs`) that
//! fixes the vector type under `#[target_feature]`. A kernel without an `avx512.rs` runs its
//! AVX2 code in the AVX-512 table. Larger kernels split the algorithm by job instead of one
//! `vector.rs` (conv: `plan.rs` picks the path, `direct.rs`, `channel.rs`, `rows.rs`,
//! `unfold.rs` and `unfolded.rs` hold the paths; gemm: `driver.rs`, `pack.rs`, `tile.rs`);
//! register blocks whose layout differs per ISA (GEMM microkernels, the conv channel path's
//! blocks) stay in the ISA's file. Every path choice is made in one plan per kernel from the
//! shape and what the table holds, and every ISA function is reached through the table.
//! Adding an ISA means one vocabulary implementation, one file per folder and one arm in each
//! `table` function; the tests iterate over [`Isa::supported`] and cover it.
//!
//! ## Fused layers
//!
//! [`Kernels::conv2d_relu_maxpool2d_forward`] (a convolution block's forward, writing only the
//! pooled output and its argmax), [`Kernels::maxpool2d_relu_backward`] (ReLU and max-pool
//! backward in one pass, from the pooled output) and [`Kernels::sgemm_with`] (bias and ReLU in
//! the GEMM's store) are bit-identical to the unfused kernels one after the other on the same
//! table; the unfused kernels stay public as their reference.
//!
//! ## Panics
//!
//! A slice whose length disagrees with the shape passed with it is a programmer error: the kernel
//! panics with a message naming the argument, the expected and the actual length. Bad *data*
//! (a class index out of range, an invalid learning rate) is an `Err` instead.
//!
//! ## Stability
//!
//! Items marked `#[doc(hidden)]` exist for this crate's own tests and benchmarks; they are
//! outside the semver promise and may change in any release.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod dispatch;
pub mod gradcheck;
mod real;

pub mod avgpool;
pub mod bias;
pub mod conv;
pub mod cross_entropy;
pub mod exp;
pub mod gemm;
pub mod maxpool;
pub mod relu;
pub mod sgd;
pub(crate) mod simd;

pub use dispatch::{cpu_features, Isa, IsaError, ISA_ENV_VAR};
pub use real::Real;

use std::sync::OnceLock;

/// Declares a per-ISA table of kernel function pointers and lists its entries, so tests can
/// prove which implementation each entry is (for example that no NEON entry is the scalar one).
/// Entries in the `optional` block are kernels only some tables have (`None` elsewhere); a
/// kernel's plan reads whether they are there.
macro_rules! kernel_table {
    ($(#[$meta:meta])* $vis:vis struct $name:ident {
        $($field:ident : $ty:ty),* $(,)?
    } $(optional { $($ofield:ident : $oty:ty),* $(,)? })?) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug)]
        $vis struct $name {
            $(pub(crate) $field: $ty,)*
            $($(pub(crate) $ofield: Option<$oty>,)*)?
        }

        impl $name {
            /// `(entry name, function address)` for every entry the table has.
            #[allow(dead_code)]
            pub(crate) fn entries(&self) -> Vec<(&'static str, usize)> {
                #[allow(unused_mut)]
                let mut entries = vec![$((stringify!($field), self.$field as usize)),*];
                $($(if let Some(f) = self.$ofield {
                    entries.push((stringify!($ofield), f as usize));
                })*)?
                entries
            }
        }
    };
}
pub(crate) use kernel_table;

/// Panics unless a slice has the length its shape implies. The message names the argument.
#[inline]
#[track_caller]
pub(crate) fn check_len(what: &str, expected: usize, actual: usize) {
    if expected != actual {
        panic!("{what}: expected length {expected}, got {actual}");
    }
}

/// A shape no kernel can run: a length or an intermediate size that overflows `usize`, or an
/// impossible geometry (a zero stride, dilation or kernel size, a kernel larger than the padded
/// input). The message names the quantity and the shape. The kernels' entry points and the
/// shapes' length methods panic with it; `check` methods on the shapes return it, so a caller
/// that takes shapes from users can report it as an error instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError(String);

impl ShapeError {
    pub(crate) fn new(message: String) -> ShapeError {
        ShapeError(message)
    }

    /// The message, as the panics print it.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeError {}

/// Defines `name(&self) -> T` as `try_name`'s value, or a panic with its [`ShapeError`]: the
/// checked lengths in their programmer-error form (ISA bodies and entry points use these, the
/// shapes' `check` the fallible ones).
macro_rules! or_panic_fns {
    ($($(#[$meta:meta])* $vis:vis fn $name:ident = $try:ident -> $ty:ty;)*) => {$(
        $(#[$meta])*
        #[track_caller]
        $vis fn $name(&self) -> $ty {
            crate::or_panic(self.$try())
        }
    )*};
}
pub(crate) use or_panic_fns;

/// The value, or a panic with the shape error's message (the programmer-error path).
#[inline]
#[track_caller]
pub(crate) fn or_panic<T>(r: Result<T, ShapeError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => shape_panic(e),
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn shape_panic(e: ShapeError) -> ! {
    panic!("{e}")
}

/// The exact product of `factors` (0 when one of them is 0), or an error naming `quantity` and
/// the `shape` it belongs to when it does not fit in `usize`. Every length a shape reports goes
/// through here (or [`checked_sum`]): a wrapped length would pass the slice-length checks with
/// a small value while the kernels loop over the real, huge dimensions.
#[inline]
pub(crate) fn checked_product(
    shape: &dyn std::fmt::Debug,
    quantity: &str,
    factors: &[usize],
) -> Result<usize, ShapeError> {
    if factors.contains(&0) {
        return Ok(0);
    }
    factors
        .iter()
        .try_fold(1usize, |product, &f| product.checked_mul(f))
        .ok_or_else(|| overflow(shape, quantity))
}

/// The sum of `terms`, or an error naming `quantity` and `shape` when it does not fit in `usize`.
#[inline]
pub(crate) fn checked_sum(
    shape: &dyn std::fmt::Debug,
    quantity: &str,
    terms: &[usize],
) -> Result<usize, ShapeError> {
    terms
        .iter()
        .try_fold(0usize, |sum, &t| sum.checked_add(t))
        .ok_or_else(|| overflow(shape, quantity))
}

#[cold]
#[inline(never)]
fn overflow(shape: &dyn std::fmt::Debug, quantity: &str) -> ShapeError {
    ShapeError::new(format!("{quantity} overflows usize in {shape:?}"))
}

/// The kernels of one instruction set. Obtain the best one for this CPU with [`Kernels::get`]
/// (cached), one for a named ISA with [`Kernels::for_isa`] or [`Kernels::select`], every
/// supported one with [`Kernels::all`], and the one `SIMDNET_ISA` names with
/// [`Kernels::from_env`] (for programs that offer the override). Cheap to copy: it is a table of function
/// pointers. Holding a `Kernels` of a SIMD ISA proves the CPU was checked for it, which is what
/// makes its safe methods sound.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    isa: Isa,
    pub(crate) gemm: gemm::Table,
    pub(crate) bias: bias::Table,
    pub(crate) relu: relu::Table,
    pub(crate) maxpool: maxpool::Table,
    pub(crate) avgpool: avgpool::Table,
    pub(crate) exp: exp::Table,
    pub(crate) cross_entropy: cross_entropy::Table,
    pub(crate) sgd: sgd::Table,
    pub(crate) conv: conv::Table,
}

impl Kernels {
    /// The table of `isa`, or an error if this CPU lacks it.
    pub fn for_isa(isa: Isa) -> Result<Kernels, IsaError> {
        if !isa.is_supported() {
            return Err(IsaError::Unsupported(isa));
        }
        Ok(Kernels {
            isa,
            gemm: gemm::table(isa),
            bias: bias::table(isa),
            relu: relu::table(isa),
            maxpool: maxpool::table(isa),
            avgpool: avgpool::table(isa),
            exp: exp::table(isa),
            cross_entropy: cross_entropy::table(isa),
            sgd: sgd::table(isa),
            conv: conv::table(isa),
        })
    }

    /// The table for an ISA name (`scalar`, `avx2`, `avx512`, `neon`): an error for an unknown
    /// name or an ISA this CPU lacks.
    pub fn select(name: &str) -> Result<Kernels, IsaError> {
        Kernels::for_isa(Isa::select(name)?)
    }

    /// The table `SIMDNET_ISA` asks for, or the best one when it is unset; an error when it is
    /// set to something invalid. Programs use this to report a bad override instead of
    /// silently ignoring it.
    ///
    /// This is the one function of the crate that reads the environment.
    pub fn from_env() -> Result<Kernels, IsaError> {
        Kernels::for_isa(dispatch::isa_from_env()?.unwrap_or_else(Isa::best))
    }

    /// The table of the best ISA this CPU supports ([`Isa::best`]), built once per process.
    pub fn get() -> &'static Kernels {
        static BEST: OnceLock<Kernels> = OnceLock::new();
        BEST.get_or_init(|| Kernels::for_isa(Isa::best()).expect("the best ISA is supported"))
    }

    /// One table per ISA this CPU supports, scalar first (for tests and benchmarks).
    pub fn all() -> Vec<Kernels> {
        Isa::supported()
            .into_iter()
            .map(|isa| Kernels::for_isa(isa).expect("supported ISA"))
            .collect()
    }

    /// The instruction set of this table.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// `("folder.entry", function address)` for every kernel in the table. Tests use it to prove
    /// that a SIMD table contains no scalar fallback.
    #[doc(hidden)]
    pub fn entries(&self) -> Vec<(String, usize)> {
        let folders: [(&str, Vec<(&'static str, usize)>); 9] = [
            ("gemm", self.gemm.entries()),
            ("bias", self.bias.entries()),
            ("relu", self.relu.entries()),
            ("maxpool", self.maxpool.entries()),
            ("avgpool", self.avgpool.entries()),
            ("exp", self.exp.entries()),
            ("cross_entropy", self.cross_entropy.entries()),
            ("sgd", self.sgd.entries()),
            ("conv", self.conv.entries()),
        ];
        folders
            .into_iter()
            .flat_map(|(folder, entries)| {
                entries
                    .into_iter()
                    .map(move |(name, addr)| (format!("{folder}.{name}"), addr))
            })
            .collect()
    }
}
