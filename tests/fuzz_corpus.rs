//! Replays the fuzz corpora (fuzz/corpus/<target>/) through the public parsers on stable Rust:
//! every file gives `Ok` or `Err`, never a panic. Seeds named `valid-*` must be accepted and
//! `bad-*` rejected (fuzz/make_corpus.py writes them, and fuzz/corpus/cli's seeds are command
//! lines split at NUL bytes); files a fuzzer adds need only not panic.

use simdnet::checkpoint;
use simdnet::data::{parse_images, parse_labels};
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

// The command-line parser lives in the binary; the test compiles the same files.
#[allow(dead_code)]
#[path = "../src/cli/args.rs"]
mod args;
#[allow(dead_code)]
#[path = "../src/cli/suggest.rs"]
mod suggest;
#[allow(dead_code)]
#[path = "../src/cli/usage.rs"]
mod usage;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn idx_corpus_parses_or_errs_as_named() {
    let files = corpus("idx");
    assert!(
        files.len() >= 10,
        "the idx corpus has only {} files",
        files.len()
    );
    for (name, bytes) in &files {
        let images = parse_images(bytes);
        let labels = parse_labels(bytes);
        if let Ok(i) = &images {
            assert_eq!(i.pixels.len(), i.count * i.rows * i.cols, "{name}");
        }
        if let Ok(l) = &labels {
            assert!(l.iter().all(|&v| v < 10), "{name}");
        }
        let needs_gzip = name.ends_with(".gz") && !cfg!(feature = "gzip");
        if name.starts_with("valid-images") && !needs_gzip {
            assert!(images.is_ok(), "{name}: {:?}", images.err());
        } else if name.starts_with("valid-labels") && !needs_gzip {
            assert!(labels.is_ok(), "{name}: {:?}", labels.err());
        } else if name.starts_with("bad-") || needs_gzip {
            assert!(images.is_err() && labels.is_err(), "{name} was accepted");
        }
    }
}

#[test]
fn safetensors_corpus_parses_or_errs_as_named() {
    let files = corpus("safetensors");
    assert!(
        files.len() >= 10,
        "the safetensors corpus has only {} files",
        files.len()
    );
    for (name, bytes) in &files {
        let parsed = checkpoint::parse(bytes);
        if name.starts_with("valid-") {
            assert!(parsed.is_ok(), "{name}: {:?}", parsed.as_ref().err());
        } else if name.starts_with("bad-") {
            assert!(parsed.is_err(), "{name} was accepted");
        }
        let Ok(c) = parsed else { continue };
        // What is accepted is consistent and survives the writer (as the fuzz target checks).
        for t in &c.tensors {
            assert_eq!(t.data.len(), t.shape.iter().product::<usize>(), "{name}");
        }
        if c.meta("format").is_some_and(|f| f != "pt")
            || c.tensors.iter().any(|t| t.name.is_empty())
        {
            continue;
        }
        let tensors: Vec<(&str, &[usize], &[f32])> = c
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice(), t.data.as_slice()))
            .collect();
        let meta: Vec<(&str, &str)> = c
            .metadata
            .iter()
            .filter(|(k, _)| k != "format")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let again = checkpoint::parse(&checkpoint::encode(&tensors, &meta).unwrap()).unwrap();
        assert_eq!(again.tensors.len(), c.tensors.len(), "{name}");
        for (a, b) in again.tensors.iter().zip(&c.tensors) {
            assert_eq!((&a.name, &a.shape), (&b.name, &b.shape), "{name}");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.data), bits(&b.data), "{name}: {}", a.name);
        }
    }
}

#[test]
fn cli_corpus_parses_or_errs_as_named() {
    let files = corpus("cli");
    assert!(
        files.len() >= 10,
        "the cli corpus has only {} files",
        files.len()
    );
    for (name, bytes) in &files {
        let argv: Vec<OsString> = bytes
            .split(|&b| b == 0)
            .map(|a| OsString::from_vec(a.to_vec()))
            .collect();
        let parsed = args::parse(&argv);
        if name.starts_with("valid-") {
            assert!(parsed.is_ok(), "{name}: {:?}", parsed.as_ref().err());
        } else if name.starts_with("bad-") {
            assert!(parsed.is_err(), "{name} was accepted");
        }
        if let Err(e) = parsed {
            assert!(!e.message.is_empty(), "{name}");
            assert!(!args::usage(e.command).is_empty(), "{name}");
        }
    }
}
