//! Any bytes as a command line (arguments split at NUL bytes, any bytes in them): the parser
//! gives a command or a usage error with a message and a usage text, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

#[path = "../../src/cli/usage.rs"]
mod usage;
#[path = "../../src/cli/suggest.rs"]
mod suggest;
#[allow(dead_code)]
#[path = "../../src/cli/args.rs"]
mod args;

fuzz_target!(|bytes: &[u8]| {
    let argv: Vec<OsString> = bytes
        .split(|&b| b == 0)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    match args::parse(&argv) {
        Ok(_) => {}
        Err(e) => {
            assert!(!e.message.is_empty());
            assert!(args::usage(e.command).starts_with("simdnet") || args::usage(e.command).starts_with("Usage"));
        }
    }
});
