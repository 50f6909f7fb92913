//! Replays the `kernels` fuzz target's minimised corpus (`fuzz/corpus/kernels/`) and every
//! crash input it found (`fuzz/crashes/kernels/`) through the same differential check
//! (`differential/mod.rs`, which the fuzz target includes), on stable Rust and on every table
//! this CPU has (NEON under qemu in CI). A crash input is kept once fixed: it must now pass.

mod differential;

use std::fs;
use std::path::{Path, PathBuf};

fn inputs(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(dir);
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    files.sort();
    files
}

#[test]
fn kernels_fuzz_corpus_replays() {
    let files = inputs("corpus/kernels");
    assert!(
        files.len() >= 50,
        "the kernels corpus has only {} files",
        files.len()
    );
    for (name, bytes) in &files {
        eprintln!("{name}");
        differential::run(bytes);
    }
}

#[test]
fn kernels_fuzz_crashes_replay() {
    for (name, bytes) in &inputs("crashes/kernels") {
        eprintln!("{name}");
        differential::run(bytes);
    }
}

/// A few hand-made cases, one per kernel family, so the differential check runs even on an
/// empty corpus (and under Miri): each family with normal and special values.
#[test]
fn miri_differential_seeds() {
    for op in 0u8..8 {
        for style in [0u8, 9, 100, 200] {
            let case: Vec<u8> = [op]
                .into_iter()
                .chain((0..48u8).map(|i| style.wrapping_add(i.wrapping_mul(7))))
                .collect();
            differential::run(&case);
        }
    }
}
