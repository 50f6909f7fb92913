//! Run-time CPU detection and the choice of kernel table.
//!
//! Detection happens once and is cached. A binary built on one machine runs on any x86-64 or
//! aarch64 CPU: SIMD code is only reached through a table that was built after checking the CPU.

use std::fmt;
#[cfg(target_arch = "x86_64")]
use std::sync::OnceLock;

/// An instruction set a kernel table can be built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust loops: the reference every other table is tested against. Runs everywhere.
    Scalar,
    /// x86-64 with AVX2 and FMA (256-bit vectors, 16 registers).
    Avx2,
    /// x86-64 with AVX-512F as well as AVX2 and FMA (512-bit vectors, 32 registers, lane
    /// masks). Kernels without an AVX-512 version of their own run the AVX2 code.
    Avx512,
    /// aarch64 Advanced SIMD (128-bit vectors, 32 registers).
    Neon,
}

/// Why an ISA could not be selected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IsaError {
    /// A name that is none of `scalar`, `avx2`, `avx512`, `neon`.
    Unknown(String),
    /// A known ISA this CPU lacks.
    Unsupported(Isa),
}

impl fmt::Display for IsaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IsaError::Unknown(name) => write!(
                f,
                "unknown kernel ISA '{name}': expected one of scalar, avx2, avx512, neon"
            ),
            IsaError::Unsupported(isa) => write!(
                f,
                "kernel ISA '{isa}' is not supported by this CPU (supported: {})",
                Isa::supported()
                    .iter()
                    .map(|i| i.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

impl std::error::Error for IsaError {}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The environment variable that forces one ISA for a whole program.
pub const ISA_ENV_VAR: &str = "SIMDNET_ISA";

impl Isa {
    /// Every ISA this crate knows, whether or not the CPU has it.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon];

    /// The lower-case name used by `SIMDNET_ISA` and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parses `scalar`, `avx2`, `avx512` or `neon` (case-insensitive), without checking the CPU.
    pub fn parse(name: &str) -> Result<Isa, IsaError> {
        let lower = name.trim().to_ascii_lowercase();
        Isa::ALL
            .into_iter()
            .find(|isa| isa.name() == lower)
            .ok_or_else(|| IsaError::Unknown(name.to_string()))
    }

    /// Whether this CPU can run kernels of this ISA (detected at run time).
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => avx2_fma_detected(),
            Isa::Avx512 => avx512_detected(),
            Isa::Neon => neon_detected(),
        }
    }

    /// Whether this crate builds a table of this ISA on this architecture (whatever the CPU).
    pub(crate) fn of_this_arch(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 | Isa::Avx512 => cfg!(target_arch = "x86_64"),
            Isa::Neon => cfg!(target_arch = "aarch64"),
        }
    }

    /// The fastest ISA this CPU supports.
    pub fn best() -> Isa {
        if Isa::Avx512.is_supported() {
            Isa::Avx512
        } else if Isa::Avx2.is_supported() {
            Isa::Avx2
        } else if Isa::Neon.is_supported() {
            Isa::Neon
        } else {
            Isa::Scalar
        }
    }

    /// Every ISA this CPU supports, scalar first.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// Parses a name and checks the CPU has it.
    pub fn select(name: &str) -> Result<Isa, IsaError> {
        let isa = Isa::parse(name)?;
        if isa.is_supported() {
            Ok(isa)
        } else {
            Err(IsaError::Unsupported(isa))
        }
    }
}

/// The ISA `SIMDNET_ISA` asks for: `Ok(None)` when unset or empty, an error when it names an
/// unknown ISA or one this CPU lacks. Only [`Kernels::from_env`](crate::Kernels::from_env)
/// calls it: no other function of this crate reads the environment.
pub(crate) fn isa_from_env() -> Result<Option<Isa>, IsaError> {
    match std::env::var(ISA_ENV_VAR) {
        Ok(v) if !v.trim().is_empty() => Isa::select(&v).map(Some),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => {
            Err(IsaError::Unknown(v.to_string_lossy().into_owned()))
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_fma_detected() -> bool {
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_fma_detected() -> bool {
    false
}

/// AVX-512F plus AVX2 and FMA: the AVX-512 table also runs AVX2 kernels.
#[cfg(target_arch = "x86_64")]
fn avx512_detected() -> bool {
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| avx2_fma_detected() && is_x86_feature_detected!("avx512f"))
}

#[cfg(not(target_arch = "x86_64"))]
fn avx512_detected() -> bool {
    false
}

#[cfg(target_arch = "aarch64")]
fn neon_detected() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}

#[cfg(not(target_arch = "aarch64"))]
fn neon_detected() -> bool {
    false
}

/// The CPU features simdnet looks at, and whether this CPU has each (for `simdnet info`).
pub fn cpu_features() -> Vec<(&'static str, bool)> {
    #[allow(unused_mut)]
    let mut features = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        features.push(("sse4.2", is_x86_feature_detected!("sse4.2")));
        features.push(("avx", is_x86_feature_detected!("avx")));
        features.push(("avx2", is_x86_feature_detected!("avx2")));
        features.push(("fma", is_x86_feature_detected!("fma")));
        features.push(("avx512f", is_x86_feature_detected!("avx512f")));
    }
    #[cfg(target_arch = "aarch64")]
    {
        features.push(("neon", std::arch::is_aarch64_feature_detected!("neon")));
        features.push(("sve", std::arch::is_aarch64_feature_detected!("sve")));
    }
    features
}
