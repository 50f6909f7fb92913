//! The `simdnet` command: parse the command line, run a subcommand, map the outcome to an exit
//! status and never show a panic trace or abort.
//!
//! Exit statuses: 0 success; 1 an error while working; 2 an invalid command line (with the
//! usage) or a refusal (the files given cannot be used safely; nothing was touched); 128 + the
//! signal when a stop request ended the run: 130 SIGINT, 143 SIGTERM, 141 a closed standard
//! output or error (silently). Writes to standard error never panic: a failed write there is a
//! closed pipe too.

pub mod args;
mod bench;
mod commands;
mod stop;
mod suggest;
mod usage;

use args::{usage, Command, UsageError};
use simdnet::signals::Stop;
use simdnet::Error;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

/// Why a command did not succeed.
pub enum Failure {
    /// An invalid command line (exit 2, with the usage).
    Usage(UsageError),
    /// Files that cannot be used safely (exit 2, without the usage).
    Refused(Error),
    /// Anything else (exit 1).
    Run(Error),
    /// A stop request (exit 128 + signal); the message, if any, was already written.
    Stopped(Stop),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        if e.is_refusal() {
            Failure::Refused(e)
        } else {
            Failure::Run(e)
        }
    }
}

impl From<UsageError> for Failure {
    fn from(e: UsageError) -> Failure {
        Failure::Usage(e)
    }
}

/// An error writing to standard output: a closed pipe ends the program quietly (141), anything
/// else (a full disk) is an error.
pub fn output_error(e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Failure::Stopped(Stop::PipeClosed)
    } else {
        Failure::Run(Error::new(format!("cannot write the output: {e}")))
    }
}

/// Writes `text` to standard error; `false` if that failed (a closed pipe).
pub fn to_stderr(text: &str) -> bool {
    let mut err = std::io::stderr().lock();
    err.write_all(text.as_bytes())
        .and_then(|()| err.flush())
        .is_ok()
}

/// The program: arguments from the environment, exit status out.
pub fn main() -> ExitCode {
    // A panic is a bug, but the user still gets one line, not a trace, and the hook itself
    // never panics (stderr may be closed).
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
        to_stderr(&format!(
            "error: internal error (a bug in simdnet): {what}{place}\n"
        ));
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
    let result = execute(args, &mut out);
    let flushed = out.flush();
    let closed = ExitCode::from(Stop::PipeClosed.exit_status());
    match result {
        Ok(()) => match flushed {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => closed,
            Err(e) => {
                to_stderr(&format!("error: cannot write the output: {e}\n"));
                ExitCode::from(1)
            }
            Ok(()) => ExitCode::SUCCESS,
        },
        Err(Failure::Usage(e)) => {
            if !to_stderr(&usage_error_text(&e)) {
                return closed;
            }
            ExitCode::from(2)
        }
        Err(Failure::Refused(e)) => {
            if !to_stderr(&format!("error: {e}\n")) {
                return closed;
            }
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            if !to_stderr(&format!("error: {e}\n")) {
                return closed;
            }
            ExitCode::from(1)
        }
        Err(Failure::Stopped(stop)) => ExitCode::from(stop.exit_status()),
    }
}

/// A command-line mistake: the error on one line and where to read more on the next. With no
/// command at all, the whole usage (it is what `simdnet` alone is asking for).
fn usage_error_text(e: &UsageError) -> String {
    if e.message == args::NO_COMMAND {
        return format!("error: {}\n\n{}", e.message, usage(None));
    }
    let help = match e.command {
        Some(c) => format!("simdnet {c} --help"),
        None => "simdnet --help".to_string(),
    };
    format!(
        "error: {}\nFor more information, try '{help}'.\n",
        e.message
    )
}

/// The first line of a command run from an unoptimised build.
pub const DEBUG_BUILD_NOTE: &str = "note: this simdnet is a debug build (built without \
optimisation), about 100 times slower than a release build: use `cargo run --release -- ...` \
or install it with `cargo install --path .`\n";

fn execute(args: &[OsString], out: &mut dyn Write) -> Result<(), Failure> {
    let command = args::parse(args)?;
    let works = !matches!(command, Command::Help(_) | Command::Version);
    if cfg!(simdnet_unoptimized) && works && !to_stderr(DEBUG_BUILD_NOTE) {
        return Err(Failure::Stopped(Stop::PipeClosed));
    }
    match command {
        Command::Help(topic) => out.write_all(usage(topic).as_bytes()).map_err(output_error),
        Command::Version => {
            writeln!(out, "simdnet {}", env!("CARGO_PKG_VERSION")).map_err(output_error)
        }
        Command::Info => commands::info(out),
        Command::Train(a) => commands::train(*a, &args[1..], out),
        Command::Eval(a) => commands::eval(a, out),
        Command::Gradcheck => commands::gradcheck(out),
        Command::Explain => commands::explain(out),
        Command::Bench(a) => bench::run(a, out),
    }
}
