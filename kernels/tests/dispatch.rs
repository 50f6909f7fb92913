//! Dispatch: ISA names, selection errors, and proof that a SIMD table holds no scalar fallback.

use simdnet_kernels::{Isa, IsaError, Kernels};

/// Folders every table must fill (one or more entries each).
const FOLDERS: [&str; 9] = [
    "gemm",
    "bias",
    "relu",
    "maxpool",
    "avgpool",
    "exp",
    "cross_entropy",
    "sgd",
    "conv",
];

#[test]
fn miri_dispatch_names_round_trip_and_unknown_names_are_errors() {
    for isa in Isa::ALL {
        assert_eq!(Isa::parse(isa.name()), Ok(isa));
        assert_eq!(Isa::parse(&isa.name().to_uppercase()), Ok(isa));
    }
    assert_eq!(
        Isa::parse("sse9"),
        Err(IsaError::Unknown("sse9".to_string()))
    );
    let msg = Kernels::select("sse9").unwrap_err().to_string();
    assert!(
        msg.contains("sse9") && msg.contains("scalar, avx2, avx512, neon"),
        "{msg}"
    );
}

#[test]
fn miri_dispatch_unsupported_isa_is_an_error_naming_it() {
    let missing = if cfg!(target_arch = "aarch64") {
        Isa::Avx2
    } else {
        Isa::Neon
    };
    assert_eq!(
        Kernels::for_isa(missing).unwrap_err(),
        IsaError::Unsupported(missing)
    );
    let msg = Kernels::select(missing.name()).unwrap_err().to_string();
    assert!(
        msg.contains(missing.name()) && msg.contains("not supported"),
        "{msg}"
    );
}

#[test]
fn miri_dispatch_scalar_is_always_available_and_listed_first() {
    let all = Kernels::all();
    assert_eq!(all[0].isa(), Isa::Scalar);
    assert_eq!(all.len(), Isa::supported().len());
}

#[test]
fn miri_dispatch_every_folder_has_entries() {
    let entries = Kernels::for_isa(Isa::Scalar).unwrap().entries();
    for folder in FOLDERS {
        assert!(
            entries
                .iter()
                .any(|(n, _)| n.starts_with(&format!("{folder}."))),
            "kernel folder {folder} has no table entries"
        );
    }
}

/// Every entry of a SIMD table is a different function from the scalar table's entry: the
/// SIMD table has every entry the scalar one has, and none of its entries (including the
/// optional kernels only some tables have) is a scalar function.
fn assert_no_scalar_fallback(k: &Kernels) {
    let scalar = Kernels::for_isa(Isa::Scalar).unwrap().entries();
    let simd = k.entries();
    for (name, _) in &scalar {
        assert!(
            simd.iter().any(|(n, _)| n == name),
            "{name} is missing from the {} table",
            k.isa()
        );
    }
    for (name, v) in &simd {
        assert!(
            scalar.iter().all(|(_, s)| s != v),
            "{name} of the {} table is a scalar function",
            k.isa()
        );
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn miri_dispatch_avx2_table_has_no_scalar_entry() {
    if Isa::Avx2.is_supported() {
        if !Isa::Avx512.is_supported() {
            assert_eq!(Isa::best(), Isa::Avx2);
        }
        assert_no_scalar_fallback(&Kernels::for_isa(Isa::Avx2).unwrap());
    }
}

/// Folders with AVX-512 kernels of their own; the avx512 table runs the AVX2 code elsewhere.
#[cfg(target_arch = "x86_64")]
const AVX512_FOLDERS: [&str; 6] = ["gemm", "conv", "exp", "cross_entropy", "sgd", "maxpool"];

/// On a CPU with AVX-512 it is the best ISA, the default table (unless `SIMDNET_ISA` says
/// otherwise) and free of scalar entries, and the folders in `AVX512_FOLDERS` hold AVX-512
/// kernels, not AVX2's.
#[cfg(target_arch = "x86_64")]
#[test]
fn miri_dispatch_avx512_is_the_default_where_the_cpu_has_it() {
    if !Isa::Avx512.is_supported() {
        assert!(Kernels::for_isa(Isa::Avx512).is_err());
        return;
    }
    assert!(Isa::Avx2.is_supported(), "AVX-512 implies the AVX2 table");
    assert_eq!(Isa::best(), Isa::Avx512);
    let avx512 = Kernels::for_isa(Isa::Avx512).unwrap();
    if std::env::var("SIMDNET_ISA").is_err() {
        assert_eq!(Kernels::get().isa(), Isa::Avx512);
        assert_eq!(Kernels::get().entries(), avx512.entries());
    }
    assert_no_scalar_fallback(&avx512);
    let avx2 = Kernels::for_isa(Isa::Avx2).unwrap().entries();
    let avx512 = avx512.entries();
    for (name, a2) in &avx2 {
        let (_, a5) = avx512
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} is missing from the avx512 table"));
        let folder = name.split('.').next().unwrap_or_default();
        if AVX512_FOLDERS.contains(&folder) {
            assert_ne!(a2, a5, "{name} of the avx512 table is the AVX2 function");
        } else {
            assert_eq!(
                a2, a5,
                "{name}: expected the AVX2 function in the avx512 table"
            );
        }
    }
}

/// AVX-512 ISA is not offered on aarch64.
#[cfg(target_arch = "aarch64")]
#[test]
fn miri_dispatch_avx512_is_unsupported_on_aarch64() {
    assert!(!Isa::Avx512.is_supported());
    assert_eq!(
        Kernels::for_isa(Isa::Avx512).unwrap_err(),
        IsaError::Unsupported(Isa::Avx512)
    );
}

/// On aarch64 the default table must be NEON in every entry: a run that silently fell back to
/// scalar cannot pass. (CI runs this under qemu.)
#[cfg(target_arch = "aarch64")]
#[test]
fn miri_dispatch_default_table_on_aarch64_is_neon_everywhere() {
    assert!(Isa::Neon.is_supported());
    assert_eq!(Isa::best(), Isa::Neon);
    let default = Kernels::get();
    if std::env::var("SIMDNET_ISA").is_err() {
        assert_eq!(default.isa(), Isa::Neon);
    }
    let neon = Kernels::for_isa(Isa::Neon).unwrap();
    assert_eq!(
        Kernels::from_env().unwrap().entries().len(),
        neon.entries().len()
    );
    assert_no_scalar_fallback(&neon);
    if default.isa() == Isa::Neon {
        assert_eq!(default.entries(), neon.entries());
    }
}
