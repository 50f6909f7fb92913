//! The `simdnet` command: parse the command line, run a subcommand, map the outcome to an exit
//! status (0 success, 1 error, 2 invalid command line) and never show a panic trace.

pub mod args;
mod commands;

use args::{usage, Command, UsageError};
use simdnet::Error;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

/// Why a command did not succeed.
pub enum Failure {
    /// An invalid command line (exit 2, with the usage).
    Usage(UsageError),
    /// Anything else (exit 1).
    Run(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Run(e)
    }
}

impl From<UsageError> for Failure {
    fn from(e: UsageError) -> Failure {
        Failure::Usage(e)
    }
}

/// An error writing to standard output (a closed pipe, a full disk).
pub fn output_error(e: std::io::Error) -> Failure {
    Failure::Run(Error::new(format!("cannot write the output: {e}")))
}

/// The program: arguments from the environment, exit status out.
pub fn main() -> ExitCode {
    // A panic is a bug, but the user still gets one line, not a trace.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error (a bug in simdnet): {what}{place}");
    }));
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match std::panic::catch_unwind(|| run(&args)) {
        Ok(code) => code,
        Err(_) => ExitCode::from(1),
    }
}

/// Runs the command line `args` (without the program name) and returns its exit status.
pub fn run(args: &[OsString]) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match execute(args, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            let _ = out.flush();
            eprintln!("error: {}\n", e.message);
            eprint!("{}", usage(e.command));
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            let _ = out.flush();
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn execute(args: &[OsString], out: &mut dyn Write) -> Result<(), Failure> {
    let command = args::parse(args)?;
    match command {
        Command::Help(topic) => out.write_all(usage(topic).as_bytes()).map_err(output_error),
        Command::Version => {
            writeln!(out, "simdnet {}", env!("CARGO_PKG_VERSION")).map_err(output_error)
        }
        Command::Info => commands::info(out),
        Command::Train(a) => commands::train(*a, out),
        Command::Eval(a) => commands::eval(a, out),
        Command::Gradcheck => commands::gradcheck(out),
        Command::Explain => commands::explain(out),
    }
}
