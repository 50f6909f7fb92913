//! The command line, parsed by hand: subcommands, `--flag value` and `--flag=value`, and the
//! usage texts.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

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
}

/// `simdnet eval`'s options.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalArgs {
    pub weights: PathBuf,
    pub data: Option<PathBuf>,
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

pub const COMMANDS: [&str; 5] = ["train", "eval", "gradcheck", "explain", "info"];

/// Parses the arguments after the program name.
pub fn parse(args: &[OsString]) -> Result<Command, UsageError> {
    let Some(first) = args.first() else {
        return Err(UsageError::new("no command given", None));
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
                None => Err(UsageError::new(format!("unknown command '{topic}'"), None)),
            },
        },
        "train" => parse_train(rest),
        "eval" => parse_eval(rest),
        "gradcheck" => parse_no_options(rest, "gradcheck", Command::Gradcheck),
        "explain" => parse_no_options(rest, "explain", Command::Explain),
        "info" => parse_no_options(rest, "info", Command::Info),
        other if other.starts_with('-') => Err(UsageError::new(
            format!("unknown option '{other}' (options follow the command)"),
            None,
        )),
        _ => Err(UsageError::new(
            format!("unknown command '{}'", args[0].to_string_lossy()),
            None,
        )),
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
            return Err(err(format!("unknown option '{name}' for '{command}'")));
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
    let fl = flags(args, command, |name| (name == "--help").then_some(false))?;
    if fl.iter().any(|f| f.name == "--help") {
        return Ok(Command::Help(Some(command)));
    }
    Ok(cmd)
}

const TRAIN_VALUE_FLAGS: [&str; 15] = [
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
];

fn parse_train(args: &[OsString]) -> Result<Command, UsageError> {
    let fl = flags(args, "train", |name| {
        if TRAIN_VALUE_FLAGS.contains(&name) {
            Some(true)
        } else if matches!(name, "--nesterov" | "--no-shuffle" | "--help") {
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
            _ => unreachable!("flags() accepts only the names above"),
        }
    }
    Ok(Command::Train(Box::new(a)))
}

fn parse_eval(args: &[OsString]) -> Result<Command, UsageError> {
    let fl = flags(args, "eval", |name| match name {
        "--weights" | "--data" => Some(true),
        "--help" => Some(false),
        _ => None,
    })?;
    if fl.iter().any(|f| f.name == "--help") {
        return Ok(Command::Help(Some("eval")));
    }
    let mut weights = None;
    let mut data = None;
    for f in fl {
        let v = f.value.as_deref();
        match f.name.as_str() {
            "--weights" => weights = Some(path("--weights", v, "eval")?),
            "--data" => data = Some(path("--data", v, "eval")?),
            _ => unreachable!("flags() accepts only the names above"),
        }
    }
    let weights = weights
        .ok_or_else(|| UsageError::new("missing required option '--weights FILE'", Some("eval")))?;
    Ok(Command::Eval(EvalArgs { weights, data }))
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
    let n = integer::<usize>(name, v, command)?;
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

pub const MAIN_USAGE: &str = "\
simdnet: LeNet-5 on hand-written SIMD kernels, with PyTorch-exact CrossEntropyLoss and SGD

Usage: simdnet <command> [options]

Commands:
  train      train LeNet-5, keeping the best checkpoint by test accuracy
  eval       evaluate a checkpoint: test loss, accuracy and confusion matrix
  gradcheck  check the gradients of every layer and of LeNet-5 (f64, and f32 on the SIMD path)
  explain    the tutorial's worked example (softmax, loss, gradient, SGD-momentum), step by step
  info       the CPU features found and the kernel ISA in use

Run `simdnet <command> --help` (or `simdnet help <command>`) for a command's options.

Data (train, eval): --data DIR, else $SIMDNET_DATA, else /usr/share/datasets/fashion-mnist
(Debian's dataset-fashion-mnist), else a Fashion-MNIST subset built into the program.

Environment:
  SIMDNET_ISA=scalar|avx2|avx512|neon  use that kernel ISA (an error if this CPU lacks it)
  SIMDNET_DATA=DIR                     the data directory when --data is not given

Exit status: 0 success, 1 error (files, data, a NaN loss, a failed check), 2 invalid command line.
";

pub const TRAIN_USAGE: &str = "\
Usage: simdnet train [options]

Trains LeNet-5 with minibatch SGD (momentum) and cross-entropy, data-parallel across threads.
After each epoch it evaluates on the test set and writes the model to --out when the test
accuracy is strictly higher than the best so far.

Options:
  --data DIR           directory with the four IDX files, raw or .gz (train-images-idx3-ubyte,
                       train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte)
  --epochs N           passes over the training set [default: 10]
  --batch-size N       samples per optimizer step [default: 64]
  --lr F               learning rate [default: 0.01]
  --momentum F         SGD momentum [default: 0.9]
  --dampening F        SGD dampening [default: 0]
  --weight-decay F     L2 penalty added to the gradient [default: 0]
  --nesterov           Nesterov momentum (needs momentum > 0 and dampening 0)
  --threads N          worker threads [default: the number of cores]
  --seed N             seed of the initialisation and the shuffling [default: 0]
  --out FILE           the best checkpoint (safetensors) [default: lenet5-best.safetensors]
  --init FILE          start from this checkpoint (e.g. saved from PyTorch) instead of a fresh init
  --no-shuffle         take the training set in file order
  --max-steps N        stop after N optimizer steps (then evaluate once, write --out if it is a
                       new best, and --save-last)
  --save-last FILE     also write the final weights here
  --metrics FILE       write a CSV: epoch,train_loss,test_loss,test_accuracy,train_seconds,
                       samples_per_sec (a row per epoch)
  --log-interval N     print the training loss every N batches, batch 0 included [default: 100]
  -h, --help           this text

Values are given as `--flag value` or `--flag=value`.
";

pub const EVAL_USAGE: &str = "\
Usage: simdnet eval --weights FILE [--data DIR]

Evaluates a LeNet-5 checkpoint (safetensors, PyTorch's state_dict names and shapes; F32, F64,
F16 or BF16) on the test set: average loss, accuracy, and the confusion matrix (rows: the true
class, columns: the predicted class).

Options:
  --weights FILE   the checkpoint to evaluate (required)
  --data DIR       directory with t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (raw or .gz)
  -h, --help       this text
";

pub const GRADCHECK_USAGE: &str = "\
Usage: simdnet gradcheck

Checks the gradients of every layer and of the whole LeNet-5 on a small batch against central
differences in f64, and the f32 SIMD path against the f64 one. Prints a table (layer, tensor,
max abs error, max rel error, pass); exits with status 1 if any check fails.
";

pub const EXPLAIN_USAGE: &str = "\
Usage: simdnet explain

The tutorial's worked example, computed by the library step by step: logits, softmax, loss, the
gradient softmax - onehot, then two SGD-momentum steps on a few parameters (showing how the
momentum buffer starts), each beside the textbook formula.
";

pub const INFO_USAGE: &str = "\
Usage: simdnet info

Prints the CPU features simdnet looks for, the kernel ISAs this CPU supports, the one in use
(SIMDNET_ISA overrides the choice), and where `simdnet train` would take its data from.
";

/// The usage text of `command` (`None`: the program's).
pub fn usage(command: Option<&str>) -> &'static str {
    match command {
        Some("train") => TRAIN_USAGE,
        Some("eval") => EVAL_USAGE,
        Some("gradcheck") => GRADCHECK_USAGE,
        Some("explain") => EXPLAIN_USAGE,
        Some("info") => INFO_USAGE,
        _ => MAIN_USAGE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                data: Some(PathBuf::from("d"))
            }))
        );
        for c in COMMANDS {
            assert!(usage(Some(c)).starts_with(&format!("Usage: simdnet {c}")));
        }
        // Every train flag is documented in the usage text.
        for f in TRAIN_VALUE_FLAGS
            .iter()
            .chain(&["--nesterov", "--no-shuffle"])
        {
            assert!(TRAIN_USAGE.contains(&format!("  {f}")), "{f} undocumented");
        }
    }
}
