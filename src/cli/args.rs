//! The command line, parsed by hand: subcommands, `--flag value` and `--flag=value`, and the
//! usage texts.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use super::suggest;
pub use super::usage::usage;
#[path = "bench_args.rs"]
pub mod bench_args;

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Print the usage of the program (`None`) or of one subcommand, to stdout.
    Help(Option<&'static str>),
    Version,
    Train(Box<TrainArgs>),
    Eval(EvalArgs),
    Gradcheck,
    Explain,
    Info,
    Bench(bench_args::BenchArgs),
}

/// `simdnet train`'s options, before the hyperparameter checks.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainArgs {
    pub data: Option<PathBuf>,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub lr: Option<f64>,
    pub momentum: Option<f64>,
    pub dampening: Option<f64>,
    pub weight_decay: Option<f64>,
    pub nesterov: bool,
    pub threads: Option<usize>,
    pub seed: Option<u64>,
    pub out: Option<PathBuf>,
    pub init: Option<PathBuf>,
    pub no_shuffle: bool,
    pub max_steps: Option<u64>,
    pub save_last: Option<PathBuf>,
    pub metrics: Option<PathBuf>,
    pub log_interval: Option<usize>,
    pub state: Option<PathBuf>,
    pub resume: Option<PathBuf>,
    pub overwrite: bool,
    /// Draw the training curves into this SVG file.
    pub plot: Option<PathBuf>,
    /// Only the epoch and test lines (no batch lines, no progress line).
    pub quiet: bool,
}

/// `simdnet eval`'s options.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalArgs {
    pub weights: PathBuf,
    pub data: Option<PathBuf>,
    /// Draw the confusion matrix and misclassified images into this SVG file.
    pub plot: Option<PathBuf>,
    pub threads: Option<usize>,
}

/// An invalid command line: the message and the subcommand whose usage to show.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageError {
    pub message: String,
    pub command: Option<&'static str>,
}

impl UsageError {
    pub fn new(message: impl Into<String>, command: Option<&'static str>) -> UsageError {
        UsageError {
            message: message.into(),
            command,
        }
    }
}

pub const COMMANDS: [&str; 6] = ["train", "eval", "gradcheck", "explain", "info", "bench"];

/// The message of an empty command line.
pub const NO_COMMAND: &str = "no command given";

/// Parses the arguments after the program name.
pub fn parse(args: &[OsString]) -> Result<Command, UsageError> {
    let Some(first) = args.first() else {
        return Err(UsageError::new(NO_COMMAND, None));
    };
    let first = first.to_str().unwrap_or("");
    let rest = &args[1..];
    match first {
        "-h" | "--help" => Ok(Command::Help(None)),
        "-V" | "--version" => Ok(Command::Version),
        "help" => match rest.first().and_then(|a| a.to_str()) {
            None => Ok(Command::Help(None)),
            Some(topic) => match COMMANDS.iter().find(|c| **c == topic) {
                Some(c) => Ok(Command::Help(Some(c))),
                None => Err(UsageError::new(unknown_command(topic), None)),
            },
        },
        "train" => parse_train(rest),
        "eval" => parse_eval(rest),
        "gradcheck" => parse_no_options(rest, "gradcheck", Command::Gradcheck),
        "explain" => parse_no_options(rest, "explain", Command::Explain),
        "info" => parse_no_options(rest, "info", Command::Info),
        "bench" => bench_args::parse(rest),
        other if other.starts_with('-') => Err(UsageError::new(
            format!(
                "unknown option '{other}' (options follow the command: 'simdnet train {other}')"
            ),
            None,
        )),
        _ => Err(UsageError::new(
            unknown_command(&args[0].to_string_lossy()),
            None,
        )),
    }
}

/// `unknown command 'trian' (did you mean 'train'?)`.
fn unknown_command(typed: &str) -> String {
    let mut known: Vec<&str> = COMMANDS.to_vec();
    known.push("help");
    match suggest::closest(typed, &known) {
        Some(c) => format!("unknown command '{typed}' (did you mean '{c}'?)"),
        None => format!("unknown command '{typed}'"),
    }
}

/// One `--flag` and its value, if it took one.
struct Flag {
    name: String,
    value: Option<OsString>,
}

/// Splits the arguments into flags; `takes_value` says which flags take a value.
fn flags(
    args: &[OsString],
    command: &'static str,
    known: &[&str],
    takes_value: impl Fn(&str) -> Option<bool>,
) -> Result<Vec<Flag>, UsageError> {
    let err = |m: String| UsageError::new(m, Some(command));
    let mut out: Vec<Flag> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].to_str().ok_or_else(|| {
            err(format!(
                "unexpected argument '{}'",
                args[i].to_string_lossy()
            ))
        })?;
        i += 1;
        if arg == "-h" || arg == "--help" {
            out.push(Flag {
                name: "--help".to_string(),
                value: None,
            });
            continue;
        }
        if !arg.starts_with("--") || arg == "--" {
            return Err(err(format!("unexpected argument '{arg}'")));
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(OsString::from(v))),
            None => (arg.to_string(), None),
        };
        let Some(wants_value) = takes_value(&name) else {
            let hint = suggest::closest(&name, known)
                .map(|c| format!(" (did you mean '{c}'?)"))
                .unwrap_or_default();
            return Err(err(format!(
                "unknown option '{name}' for '{command}'{hint}"
            )));
        };
        if out.iter().any(|f| f.name == name) {
            return Err(err(format!("option '{name}' is given more than once")));
        }
        let value = match (wants_value, inline) {
            (true, Some(v)) => Some(v),
            (true, None) => {
                // The next argument is the value, even if it starts with '-' (`--lr -1`).
                let v = args
                    .get(i)
                    .ok_or_else(|| err(format!("option '{name}' needs a value")))?;
                i += 1;
                Some(v.clone())
            }
            (false, Some(_)) => return Err(err(format!("option '{name}' takes no value"))),
            (false, None) => None,
        };
        out.push(Flag { name, value });
    }
    Ok(out)
}

fn parse_no_options(
    args: &[OsString],
    command: &'static str,
    cmd: Command,
) -> Result<Command, UsageError> {
    let fl = flags(args, command, &["--help"], |name| {
        (name == "--help").then_some(false)
    })?;
    if fl.iter().any(|f| f.name == "--help") {
        return Ok(Command::Help(Some(command)));
    }
    Ok(cmd)
}

const TRAIN_VALUE_FLAGS: [&str; 18] = [
    "--data",
    "--epochs",
    "--batch-size",
    "--lr",
    "--momentum",
    "--dampening",
    "--weight-decay",
    "--threads",
    "--seed",
    "--out",
    "--init",
    "--max-steps",
    "--save-last",
    "--metrics",
    "--log-interval",
    "--state",
    "--resume",
    "--plot",
];

const TRAIN_SWITCHES: [&str; 5] = [
    "--nesterov",
    "--no-shuffle",
    "--overwrite",
    "--quiet",
    "--help",
];

fn parse_train(args: &[OsString]) -> Result<Command, UsageError> {
    let known: Vec<&str> = TRAIN_VALUE_FLAGS
        .iter()
        .chain(&TRAIN_SWITCHES)
        .copied()
        .collect();
    let fl = flags(args, "train", &known, |name| {
        if TRAIN_VALUE_FLAGS.contains(&name) {
            Some(true)
        } else if TRAIN_SWITCHES.contains(&name) {
            Some(false)
        } else {
            None
        }
    })?;
    if fl.iter().any(|f| f.name == "--help") {
        return Ok(Command::Help(Some("train")));
    }
    let mut a = TrainArgs {
        data: None,
        epochs: None,
        batch_size: None,
        lr: None,
        momentum: None,
        dampening: None,
        weight_decay: None,
        nesterov: false,
        threads: None,
        seed: None,
        out: None,
        init: None,
        no_shuffle: false,
        max_steps: None,
        save_last: None,
        metrics: None,
        log_interval: None,
        state: None,
        resume: None,
        overwrite: false,
        plot: None,
        quiet: false,
    };
    for f in fl {
        let v = f.value.as_deref();
        let n = f.name.as_str();
        match n {
            "--data" => a.data = Some(path(n, v, "train")?),
            "--epochs" => a.epochs = Some(count(n, v, "train")?),
            "--batch-size" => a.batch_size = Some(count(n, v, "train")?),
            "--lr" => a.lr = Some(float(n, v)?),
            "--momentum" => a.momentum = Some(float(n, v)?),
            "--dampening" => a.dampening = Some(float(n, v)?),
            "--weight-decay" => a.weight_decay = Some(float(n, v)?),
            "--nesterov" => a.nesterov = true,
            "--threads" => a.threads = Some(count(n, v, "train")?),
            "--seed" => a.seed = Some(integer::<u64>(n, v, "train")?),
            "--out" => a.out = Some(path(n, v, "train")?),
            "--init" => a.init = Some(path(n, v, "train")?),
            "--no-shuffle" => a.no_shuffle = true,
            "--max-steps" => a.max_steps = Some(count(n, v, "train")? as u64),
            "--save-last" => a.save_last = Some(path(n, v, "train")?),
            "--metrics" => a.metrics = Some(path(n, v, "train")?),
            "--log-interval" => a.log_interval = Some(count(n, v, "train")?),
            "--state" => a.state = Some(path(n, v, "train")?),
            "--resume" => a.resume = Some(path(n, v, "train")?),
            "--overwrite" => a.overwrite = true,
            "--plot" => a.plot = Some(path(n, v, "train")?),
            "--quiet" => a.quiet = true,
            _ => unreachable!("flags() accepts only the names above"),
        }
    }
    Ok(Command::Train(Box::new(a)))
}

fn parse_eval(args: &[OsString]) -> Result<Command, UsageError> {
    let known = ["--weights", "--data", "--plot", "--threads", "--help"];
    let fl = flags(args, "eval", &known, |name| match name {
        "--weights" | "--data" | "--plot" | "--threads" => Some(true),
        "--help" => Some(false),
        _ => None,
    })?;
    if fl.iter().any(|f| f.name == "--help") {
        return Ok(Command::Help(Some("eval")));
    }
    let (mut weights, mut data, mut plot, mut threads) = (None, None, None, None);
    for f in fl {
        let v = f.value.as_deref();
        match f.name.as_str() {
            "--weights" => weights = Some(path("--weights", v, "eval")?),
            "--data" => data = Some(path("--data", v, "eval")?),
            "--plot" => plot = Some(path("--plot", v, "eval")?),
            "--threads" => threads = Some(count("--threads", v, "eval")?),
            _ => unreachable!("flags() accepts only the names above"),
        }
    }
    let weights = weights
        .ok_or_else(|| UsageError::new("missing required option '--weights FILE'", Some("eval")))?;
    Ok(Command::Eval(EvalArgs {
        weights,
        data,
        plot,
        threads,
    }))
}

fn path(name: &str, v: Option<&OsStr>, command: &'static str) -> Result<PathBuf, UsageError> {
    let v = v.expect("value flags always carry a value");
    if v.is_empty() {
        return Err(UsageError::new(
            format!("option '{name}' needs a non-empty path"),
            Some(command),
        ));
    }
    Ok(PathBuf::from(v))
}

fn text<'a>(
    name: &str,
    v: Option<&'a OsStr>,
    command: &'static str,
) -> Result<&'a str, UsageError> {
    let v = v.expect("value flags always carry a value");
    v.to_str().ok_or_else(|| {
        UsageError::new(
            format!("invalid value '{}' for '{name}'", v.to_string_lossy()),
            Some(command),
        )
    })
}

fn integer<T: std::str::FromStr>(
    name: &str,
    v: Option<&OsStr>,
    command: &'static str,
) -> Result<T, UsageError> {
    let s = text(name, v, command)?;
    s.parse::<T>().map_err(|_| {
        UsageError::new(
            format!("invalid value '{s}' for '{name}': expected a non-negative whole number"),
            Some(command),
        )
    })
}

/// A whole number of at least 1.
fn count(name: &str, v: Option<&OsStr>, command: &'static str) -> Result<usize, UsageError> {
    let s = text(name, v, command)?;
    let n = s.parse::<usize>().map_err(|_| {
        UsageError::new(
            format!("invalid value '{s}' for '{name}': expected a whole number of at least 1"),
            Some(command),
        )
    })?;
    if n == 0 {
        return Err(UsageError::new(
            format!("invalid value '0' for '{name}': must be at least 1"),
            Some(command),
        ));
    }
    Ok(n)
}

/// A finite number; ranges are PyTorch's checks, done later with its messages.
fn float(name: &str, v: Option<&OsStr>) -> Result<f64, UsageError> {
    let s = text(name, v, "train")?;
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(UsageError::new(
            format!("invalid value '{s}' for '{name}': expected a finite number"),
            Some("train"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{super::usage::TRAIN_USAGE, *};

    fn p(args: &[&str]) -> Result<Command, UsageError> {
        let v: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&v)
    }

    fn train(args: &[&str]) -> TrainArgs {
        let mut v = vec!["train"];
        v.extend_from_slice(args);
        match p(&v) {
            Ok(Command::Train(a)) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn both_value_forms_and_negative_values() {
        let a = train(&[
            "--lr",
            "-1",
            "--epochs=3",
            "--out=x=y.safetensors",
            "--nesterov",
        ]);
        assert_eq!(a.lr, Some(-1.0));
        assert_eq!(a.epochs, Some(3));
        assert_eq!(a.out, Some(PathBuf::from("x=y.safetensors")));
        assert!(a.nesterov && !a.no_shuffle);
        assert_eq!(a.batch_size, None);
        let a = train(&[
            "--momentum=0",
            "--seed",
            "18446744073709551615",
            "--no-shuffle",
        ]);
        assert_eq!(
            (a.momentum, a.seed, a.no_shuffle),
            (Some(0.0), Some(u64::MAX), true)
        );
    }

    #[test]
    fn errors_name_the_problem_and_the_command() {
        let cases: [(&[&str], &str, Option<&str>); 14] = [
            (&[], "no command given", None),
            (&["fly"], "unknown command 'fly'", None),
            (&["--epochs", "3"], "unknown option '--epochs'", None),
            (
                &["train", "--bogus"],
                "unknown option '--bogus' for 'train'",
                Some("train"),
            ),
            (
                &["train", "--epochs"],
                "option '--epochs' needs a value",
                Some("train"),
            ),
            (
                &["train", "--epochs", "x"],
                "invalid value 'x' for '--epochs'",
                Some("train"),
            ),
            (
                &["train", "--epochs", "0"],
                "invalid value '0' for '--epochs': must be at least 1",
                Some("train"),
            ),
            (
                &["train", "--batch-size=-5"],
                "invalid value '-5' for '--batch-size'",
                Some("train"),
            ),
            (
                &["train", "--lr", "nan"],
                "invalid value 'nan' for '--lr': expected a finite number",
                Some("train"),
            ),
            (
                &["train", "--nesterov=1"],
                "option '--nesterov' takes no value",
                Some("train"),
            ),
            (
                &["train", "--seed", "1", "--seed", "2"],
                "given more than once",
                Some("train"),
            ),
            (
                &["train", "extra"],
                "unexpected argument 'extra'",
                Some("train"),
            ),
            (
                &["eval"],
                "missing required option '--weights FILE'",
                Some("eval"),
            ),
            (
                &["info", "--verbose"],
                "unknown option '--verbose' for 'info'",
                Some("info"),
            ),
        ];
        for (args, message, command) in cases {
            let e = p(args).expect_err(&format!("{args:?}"));
            assert!(e.message.contains(message), "{args:?}: {}", e.message);
            assert_eq!(e.command, command, "{args:?}");
        }
    }

    #[test]
    fn near_misses_get_a_suggestion() {
        let cases: [(&[&str], &str); 6] = [
            (
                &["trian"],
                "unknown command 'trian' (did you mean 'train'?)",
            ),
            (
                &["help", "evl"],
                "unknown command 'evl' (did you mean 'eval'?)",
            ),
            (&["fly"], "unknown command 'fly'"),
            (
                &["train", "--epoch", "3"],
                "unknown option '--epoch' for 'train' (did you mean '--epochs'?)",
            ),
            (
                &["eval", "--weight", "w"],
                "unknown option '--weight' for 'eval' (did you mean '--weights'?)",
            ),
            (
                &["train", "--learning-rate", "1"],
                "unknown option '--learning-rate' for 'train'",
            ),
        ];
        for (args, message) in cases {
            assert_eq!(p(args).expect_err(message).message, message);
        }
        let e = p(&["train", "--epochs", "x"]).unwrap_err();
        assert!(e.message.ends_with("expected a whole number of at least 1"));
        let e = p(&["train", "--seed", "x"]).unwrap_err();
        assert!(e.message.ends_with("expected a non-negative whole number"));
    }

    #[test]
    fn help_and_commands() {
        assert_eq!(p(&["--help"]), Ok(Command::Help(None)));
        assert_eq!(p(&["help"]), Ok(Command::Help(None)));
        assert_eq!(p(&["help", "eval"]), Ok(Command::Help(Some("eval"))));
        assert_eq!(
            p(&["train", "--lr", "5", "-h"]),
            Ok(Command::Help(Some("train")))
        );
        assert_eq!(
            p(&["gradcheck", "--help"]),
            Ok(Command::Help(Some("gradcheck")))
        );
        assert_eq!(p(&["explain"]), Ok(Command::Explain));
        assert_eq!(p(&["info"]), Ok(Command::Info));
        assert_eq!(p(&["--version"]), Ok(Command::Version));
        assert_eq!(
            p(&["eval", "--data=d", "--weights", "w.safetensors"]),
            Ok(Command::Eval(EvalArgs {
                weights: PathBuf::from("w.safetensors"),
                data: Some(PathBuf::from("d")),
                plot: None,
                threads: None,
            }))
        );
        for c in COMMANDS {
            assert!(usage(Some(c)).starts_with(&format!("Usage: simdnet {c}")));
        }
        // Every train flag is documented in the usage text.
        for f in TRAIN_VALUE_FLAGS
            .iter()
            .chain(TRAIN_SWITCHES.iter().filter(|f| **f != "--help"))
        {
            assert!(TRAIN_USAGE.contains(&format!("  {f}")), "{f} undocumented");
        }
    }
}
