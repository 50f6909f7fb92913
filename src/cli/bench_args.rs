//! `simdnet bench`'s options. A child of `args` (it uses the flag splitter there); the files
//! that compile `args.rs` on its own (the fuzz target and its corpus test) compile this too.

use super::{count, flags, Command, UsageError};
use simdnet::kernels::Isa;
use std::ffi::OsString;

/// `simdnet bench`'s options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchArgs {
    /// Measure only this ISA (checked against the CPU).
    pub isa: Option<Isa>,
    pub threads: Option<usize>,
    pub json: bool,
    pub quick: bool,
}

const VALUE_FLAGS: [&str; 2] = ["--isa", "--threads"];
const SWITCHES: [&str; 3] = ["--json", "--quick", "--help"];

/// Parses the arguments after `bench`.
pub fn parse(args: &[OsString]) -> Result<Command, UsageError> {
    let known: Vec<&str> = VALUE_FLAGS.iter().chain(&SWITCHES).copied().collect();
    let fl = flags(args, "bench", &known, |name| {
        if VALUE_FLAGS.contains(&name) {
            Some(true)
        } else if SWITCHES.contains(&name) {
            Some(false)
        } else {
            None
        }
    })?;
    if fl.iter().any(|f| f.name == "--help") {
        return Ok(Command::Help(Some("bench")));
    }
    let mut a = BenchArgs {
        isa: None,
        threads: None,
        json: false,
        quick: false,
    };
    for f in fl {
        let v = f.value.as_deref();
        match f.name.as_str() {
            "--isa" => {
                let name = v.map(|v| v.to_string_lossy()).unwrap_or_default();
                let isa = Isa::select(&name)
                    .map_err(|e| UsageError::new(format!("invalid --isa: {e}"), Some("bench")))?;
                a.isa = Some(isa);
            }
            "--threads" => a.threads = Some(count("--threads", v, "bench")?),
            "--json" => a.json = true,
            "--quick" => a.quick = true,
            _ => unreachable!("flags() accepts only the names above"),
        }
    }
    Ok(Command::Bench(a))
}

#[cfg(test)]
mod tests {
    use super::super::parse as parse_all;
    use super::*;

    fn p(args: &[&str]) -> Result<Command, UsageError> {
        let v: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse_all(&v)
    }

    #[test]
    fn options_and_their_errors() {
        assert_eq!(
            p(&[
                "bench",
                "--json",
                "--threads=3",
                "--isa",
                "scalar",
                "--quick"
            ]),
            Ok(Command::Bench(BenchArgs {
                isa: Some(Isa::Scalar),
                threads: Some(3),
                json: true,
                quick: true,
            }))
        );
        assert_eq!(p(&["bench", "-h"]), Ok(Command::Help(Some("bench"))));
        let cases: [(&[&str], &str); 5] = [
            (
                &["bench", "--isa", "bogus"],
                "invalid --isa: unknown kernel ISA 'bogus': expected one of scalar, avx2, \
                 avx512, neon",
            ),
            (
                &["bench", "--threads", "0"],
                "invalid value '0' for '--threads': must be at least 1",
            ),
            (&["bench", "--isa"], "option '--isa' needs a value"),
            (
                &["bench", "--jsn"],
                "unknown option '--jsn' for 'bench' (did you mean '--json'?)",
            ),
            (
                &["bnech"],
                "unknown command 'bnech' (did you mean 'bench'?)",
            ),
        ];
        for (args, message) in cases {
            let e = p(args).expect_err(message);
            assert_eq!(e.message, message);
            let command = if args[0] == "bench" {
                Some("bench")
            } else {
                None
            };
            assert_eq!(e.command, command, "{args:?}");
        }
    }
}
