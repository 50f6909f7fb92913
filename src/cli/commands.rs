//! The subcommands, on the library's API.

use super::args::{EvalArgs, TrainArgs, UsageError};
use super::{output_error, Failure};
use simdnet::checkpoint;
use simdnet::data;
use simdnet::gradcheck;
use simdnet::kernels::{cpu_features, Isa, Kernels, ISA_ENV_VAR};
use simdnet::lenet::LeNet5;
use simdnet::outputs::{self, Named};
use simdnet::plot::{evaluation_picture, Mistake};
use simdnet::train::{self, Evaluation, TrainConfig};
use simdnet::Error;
use std::ffi::OsString;
use std::io::{IsTerminal, Write};

/// The kernel table `SIMDNET_ISA` asks for (or the best): an invalid value is a command-line
/// error of `command`.
fn kernels(command: &'static str) -> Result<Kernels, Failure> {
    Kernels::from_env().map_err(|e| {
        Failure::Usage(UsageError::new(
            format!("invalid {ISA_ENV_VAR}: {e}"),
            Some(command),
        ))
    })
}

/// `avx2 (the best this CPU supports)` or `scalar (from SIMDNET_ISA)`.
fn isa_description(k: &Kernels) -> String {
    let forced = std::env::var(ISA_ENV_VAR).is_ok_and(|v| !v.trim().is_empty());
    if forced {
        format!("{} (from {ISA_ENV_VAR})", k.isa())
    } else {
        format!("{} (the best this CPU supports)", k.isa())
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `simdnet info`.
pub fn info(out: &mut dyn Write) -> Result<(), Failure> {
    // `info` is where a bad SIMDNET_ISA gets explained, so it reports it instead of failing.
    let in_use = match Kernels::from_env() {
        Ok(k) => isa_description(&k),
        Err(e) => format!(
            "none: {ISA_ENV_VAR}={:?} is invalid ({e}); the values this CPU supports are {}; \
             every other command refuses to run until it is fixed or unset (unset, the best \
             is {})",
            std::env::var_os(ISA_ENV_VAR).unwrap_or_default(),
            Isa::supported()
                .iter()
                .map(|i| i.name())
                .collect::<Vec<_>>()
                .join(", "),
            Isa::best()
        ),
    };
    let features: Vec<String> = cpu_features()
        .iter()
        .map(|(name, has)| format!("{name} {}", if *has { "yes" } else { "no" }))
        .collect();
    let supported: Vec<&str> = Isa::supported().iter().map(|i| i.name()).collect();
    let data_line = match data::resolve(None, true) {
        Ok(source) => source.to_string(),
        Err(e) => format!("error: {e}"),
    };
    let text = format!(
        "simdnet {} ({})\n\
         CPU features: {}\n\
         Kernel ISAs supported: {}\n\
         Kernel ISA in use: {}\n\
         Threads (train's default): {}\n\
         gzip-compressed IDX files: {}\n\
         Data (train's default): {}\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        if features.is_empty() {
            "none detected".to_string()
        } else {
            features.join(", ")
        },
        supported.join(", "),
        in_use,
        default_threads(),
        if cfg!(feature = "gzip") {
            "supported"
        } else {
            "not supported (built without the `gzip` feature)"
        },
        data_line,
    );
    out.write_all(text.as_bytes()).map_err(output_error)
}

/// The training configuration: the defaults with the command line's values on top.
fn train_config(a: &TrainArgs) -> TrainConfig {
    let mut cfg = TrainConfig::default();
    let TrainArgs {
        data: _,
        epochs,
        batch_size,
        lr,
        momentum,
        dampening,
        weight_decay,
        nesterov,
        threads,
        seed,
        out,
        init,
        no_shuffle,
        max_steps,
        save_last,
        metrics,
        log_interval,
        state,
        resume,
        overwrite,
        plot,
        quiet,
    } = a.clone();
    cfg.epochs = epochs.unwrap_or(cfg.epochs);
    cfg.batch_size = batch_size.unwrap_or(cfg.batch_size);
    cfg.lr = lr.unwrap_or(cfg.lr);
    cfg.momentum = momentum.unwrap_or(cfg.momentum);
    cfg.dampening = dampening.unwrap_or(cfg.dampening);
    cfg.weight_decay = weight_decay.unwrap_or(cfg.weight_decay);
    cfg.nesterov = nesterov;
    cfg.threads = threads.unwrap_or(cfg.threads);
    cfg.seed = seed.unwrap_or(cfg.seed);
    cfg.out = out.unwrap_or(cfg.out);
    cfg.init = init;
    cfg.shuffle = !no_shuffle;
    cfg.max_steps = max_steps;
    cfg.save_last = save_last;
    cfg.metrics = metrics;
    cfg.log_interval = log_interval.unwrap_or(cfg.log_interval);
    cfg.state = state;
    cfg.resume = resume;
    cfg.overwrite = overwrite;
    cfg.plot = plot;
    cfg.quiet = quiet;
    cfg.progress = !quiet && std::io::stderr().is_terminal();
    cfg
}

/// On `--resume`, the settings not given on the command line are the saved run's.
fn fill_from_state(a: &mut TrainArgs, saved: &TrainConfig) {
    a.epochs = a.epochs.or(Some(saved.epochs));
    a.batch_size = a.batch_size.or(Some(saved.batch_size));
    a.lr = a.lr.or(Some(saved.lr));
    a.momentum = a.momentum.or(Some(saved.momentum));
    a.dampening = a.dampening.or(Some(saved.dampening));
    a.weight_decay = a.weight_decay.or(Some(saved.weight_decay));
    a.nesterov |= saved.nesterov;
    a.no_shuffle |= !saved.shuffle;
    a.threads = a.threads.or(Some(saved.threads));
    a.seed = a.seed.or(Some(saved.seed));
    a.out = a.out.take().or_else(|| Some(saved.out.clone()));
    a.save_last = a.save_last.take().or_else(|| saved.save_last.clone());
    a.metrics = a.metrics.take().or_else(|| saved.metrics.clone());
}

/// `simdnet train`; `argv` is the command line after `train` (for the resume command).
pub fn train(mut a: TrainArgs, argv: &[OsString], out: &mut dyn Write) -> Result<(), Failure> {
    if a.resume.is_some() && a.init.is_some() {
        return Err(Failure::Usage(UsageError::new(
            "--init and --resume cannot be combined: a resumed run continues from its state",
            Some("train"),
        )));
    }
    if let Some(path) = &a.resume {
        let saved = simdnet::train::state::RunState::load(path)?;
        fill_from_state(&mut a, &saved.config);
    }
    let cfg = train_config(&a);
    // PyTorch's hyperparameter checks (and positive counts) are command-line errors.
    cfg.validate()
        .map_err(|e| Failure::Usage(UsageError::new(e.to_string(), Some("train"))))?;
    let k = kernels("train")?;
    simdnet::signals::install().map_err(Error::new)?;
    let source = data::resolve(a.data.as_deref(), true)?;
    writeln!(out, "Data: {source}").map_err(output_error)?;
    writeln!(out, "Kernel ISA: {}", isa_description(&k)).map_err(output_error)?;
    let splits = data::load(a.data.as_deref(), true)?;
    let train_len = splits.train.as_ref().map_or(0, |t| t.len());
    if train_len == 0 || splits.test.is_empty() {
        return Err(Error::new(format!(
            "{source}: the training set has {train_len} images and the test set {}: both must \
             have at least one",
            splits.test.len()
        ))
        .into());
    }
    if cfg.batch_size > train_len {
        return Err(Failure::Usage(UsageError::new(
            format!(
                "--batch-size {} is larger than the training set ({train_len} images)",
                cfg.batch_size
            ),
            Some("train"),
        )));
    }
    let cores = default_threads();
    if cfg.threads > cores {
        super::to_stderr(&format!(
            "warning: --threads {} is more than the {cores} core{} this machine has; the run \
             goes on with {} threads, which is usually slower than {cores}\n",
            cfg.threads,
            if cores == 1 { "" } else { "s" },
            cfg.threads
        ));
    }
    let started = std::time::Instant::now();
    writeln!(
        out,
        "Training set: {train_len} images, test set: {} images; threads: {}, batch size: {}, \
         epochs: {}{}",
        splits.test.len(),
        cfg.threads,
        cfg.batch_size,
        cfg.epochs,
        cfg.max_steps
            .map(|n| format!(", at most {n} step{}", if n == 1 { "" } else { "s" }))
            .unwrap_or_default()
    )
    .map_err(output_error)?;
    let summary = train::train(&cfg, &splits, &k, out)?;
    if let Some(stopped) = &summary.stopped {
        if stopped.reason != simdnet::signals::Stop::PipeClosed {
            let _ = out.flush();
            super::to_stderr(&super::stop::message(stopped, &cfg, argv));
        }
        return Err(Failure::Stopped(stopped.reason));
    }
    writeln!(
        out,
        "{}",
        summary_line(&summary, &cfg, started.elapsed().as_secs_f64())
    )
    .map_err(output_error)
}

/// The run's last line: the best model and where it is, the time and the rate.
fn summary_line(s: &train::TrainSummary, cfg: &TrainConfig, wall: f64) -> String {
    let samples: usize = s.epochs.iter().map(|e| e.samples).sum();
    let seconds: f64 = s.epochs.iter().map(|e| e.train_seconds).sum();
    let rate = if seconds > 0.0 {
        samples as f64 / seconds
    } else {
        0.0
    };
    let best = match &s.best {
        Some(b) if b.epoch == 0 => format!(
            "no model of this run beat the existing {} ({:.2}%), which is kept",
            cfg.out.display(),
            100.0 * b.eval.accuracy()
        ),
        Some(b) => format!(
            "best test accuracy {:.2}% at epoch {}, saved in {}",
            100.0 * b.eval.accuracy(),
            b.epoch,
            cfg.out.display()
        ),
        None => "no model was saved".to_string(),
    };
    format!(
        "Done: {best}; {} step{}, {samples} samples trained in {seconds:.1} s ({rate:.0} \
         samples/s), {wall:.1} s in all",
        s.steps,
        if s.steps == 1 { "" } else { "s" }
    )
}

/// `simdnet eval`.
pub fn eval(a: EvalArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let k = kernels("eval")?;
    let source = data::resolve(a.data.as_deref(), false)?;
    if let Some(plot) = &a.plot {
        let inputs: Vec<std::path::PathBuf> = data::input_files(&source, false);
        let mut ins: Vec<Named> = inputs
            .iter()
            .map(|p| Named {
                flag: "--data",
                path: p,
            })
            .collect();
        ins.push(Named {
            flag: "--weights",
            path: &a.weights,
        });
        let outs = [Named {
            flag: "--plot",
            path: plot,
        }];
        outputs::preflight(&outs, &ins, &[])?;
    }
    // The strict load first: a file that is not LeNet-5 fails there, in bounded memory.
    let model = LeNet5::load(&a.weights)?;
    let saved = checkpoint::read(&a.weights)?;
    writeln!(out, "Data: {source}").map_err(output_error)?;
    writeln!(out, "Kernel ISA: {}", isa_description(&k)).map_err(output_error)?;
    writeln!(out, "Weights: {}", a.weights.display()).map_err(output_error)?;
    writeln!(out, "{}", checkpoint_line(&saved)).map_err(output_error)?;
    let splits = data::load(a.data.as_deref(), false)?;
    if splits.test.is_empty() {
        return Err(Error::new(format!("{source}: the test set is empty")).into());
    }
    let threads = a.threads.unwrap_or_else(default_threads);
    let evaluation = train::evaluate(&model, &splits.test, &k, threads);
    writeln!(out, "{}", evaluation.test_line()).map_err(output_error)?;
    writeln!(out).map_err(output_error)?;
    out.write_all(confusion_matrix(&evaluation, splits.class_names).as_bytes())
        .map_err(output_error)?;
    if let Some(plot) = &a.plot {
        let predicted = train::predictions(&model, &splits.test, &k)?;
        let test = &splits.test;
        let mistakes: Vec<Mistake> = (0..test.len())
            .filter(|&i| predicted[i] != test.labels[i])
            .map(|i| Mistake {
                pixels: test.image(i),
                truth: usize::from(test.labels[i]),
                predicted: usize::from(predicted[i]),
            })
            .collect();
        let digits = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
        let names = splits.class_names.unwrap_or(digits);
        let title = format!(
            "{}: {}/{} correct ({:.2}%)",
            a.weights.display(),
            evaluation.correct,
            evaluation.total,
            100.0 * evaluation.accuracy()
        );
        let svg = evaluation_picture(&evaluation.confusion, &names, &mistakes, 60, &title);
        outputs::write_atomically(plot, svg.as_bytes(), "the plot")?;
        writeln!(out, "\nPicture: {}", plot.display()).map_err(output_error)?;
    }
    Ok(())
}

/// What a checkpoint says about itself: `Checkpoint: epoch 3, test accuracy 85.12%, seed 0,
/// ...`, or that it has no simdnet metadata (saved elsewhere, by PyTorch for instance).
fn checkpoint_line(c: &checkpoint::Checkpoint) -> String {
    let shown = |key: &str| !matches!(key, "format");
    let parts: Vec<String> = c
        .metadata
        .iter()
        .filter(|(k, _)| shown(k))
        .map(|(k, v)| match (k.as_str(), v.parse::<f64>()) {
            ("test_accuracy", Ok(x)) if x <= 1.0 => format!("test accuracy {:.2}%", 100.0 * x),
            _ => format!("{} {v}", k.replace('_', " ")),
        })
        .collect();
    if parts.is_empty() {
        "Checkpoint: no simdnet metadata (saved by another program)".to_string()
    } else {
        format!("Checkpoint: {}", parts.join(", "))
    }
}

/// The confusion matrix as text: a row per true class, a column per predicted class, and each
/// class's accuracy (recall) at the end of its row.
pub fn confusion_matrix(e: &Evaluation, names: Option<[&'static str; 10]>) -> String {
    let label = |c: usize| match names {
        Some(n) => format!("{c} {}", n[c]),
        None => c.to_string(),
    };
    let label_width = (0..10).map(|c| label(c).len()).max().unwrap_or(1);
    let count_width = e
        .confusion
        .iter()
        .flatten()
        .map(|v| v.to_string().len())
        .max()
        .unwrap_or(1)
        .max(3);
    let mut s = String::from("Confusion matrix (rows: true class, columns: predicted class)\n");
    s.push_str(&format!("{:label_width$}", ""));
    for c in 0..10 {
        s.push_str(&format!(" {c:>count_width$}"));
    }
    s.push_str("  accuracy\n");
    for (c, row) in e.confusion.iter().enumerate() {
        s.push_str(&format!("{:<label_width$}", label(c)));
        for v in row {
            s.push_str(&format!(" {v:>count_width$}"));
        }
        let total: u64 = row.iter().sum();
        if total == 0 {
            s.push_str("         -\n");
        } else {
            let pct = 100.0 * row[c] as f64 / total as f64;
            s.push_str(&format!("  {pct:>7.2}%\n"));
        }
    }
    s
}

/// `simdnet gradcheck`.
pub fn gradcheck(out: &mut dyn Write) -> Result<(), Failure> {
    let k = kernels("gradcheck")?;
    writeln!(out, "Kernel ISA: {}", isa_description(&k)).map_err(output_error)?;
    writeln!(
        out,
        "Checking every layer's gradients against central differences (about 10 s)..."
    )
    .map_err(output_error)?;
    writeln!(out, "{}", gradcheck::table_header()).map_err(output_error)?;
    let mut rows = Vec::new();
    let mut written = Ok(());
    gradcheck::run_each(&k, |group| {
        for r in group {
            if written.is_ok() {
                written = writeln!(out, "{}", gradcheck::table_row(r)).and_then(|()| out.flush());
            }
        }
        rows.extend_from_slice(group);
    });
    written.map_err(output_error)?;
    writeln!(out, "{}", gradcheck::table_footer(&rows)).map_err(output_error)?;
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{} {} ({})", r.layer, r.tensor, r.precision))
        .collect();
    if failed.is_empty() {
        writeln!(out, "All {} gradient checks passed.", rows.len()).map_err(output_error)
    } else {
        Err(Error::new(format!(
            "{} of {} gradient checks failed: {}",
            failed.len(),
            rows.len(),
            failed.join(", ")
        ))
        .into())
    }
}

/// `simdnet explain`.
pub fn explain(out: &mut dyn Write) -> Result<(), Failure> {
    let k = kernels("explain")?;
    simdnet::explain::explain(&k, out).map_err(output_error)
}

#[cfg(test)]
mod tests {
    use super::super::args::{parse, Command};
    use super::*;
    use std::path::PathBuf;

    fn train_args(args: &str) -> TrainArgs {
        let argv: Vec<std::ffi::OsString> = args.split_whitespace().map(Into::into).collect();
        match parse(&argv) {
            Ok(Command::Train(a)) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_train_flag_reaches_the_config() {
        assert_eq!(train_config(&train_args("train")), TrainConfig::default());
        let cfg = train_config(&train_args(
            "train --epochs 3 --batch-size 7 --lr 0.5 --momentum 0 --dampening 0.25 \
             --weight-decay 0.01 --nesterov --threads 3 --seed 9 --out a --init b --no-shuffle \
             --max-steps 4 --save-last c --metrics d --log-interval 5 --data e --state f \
             --resume g --overwrite",
        ));
        let expected = TrainConfig {
            epochs: 3,
            batch_size: 7,
            lr: 0.5,
            momentum: 0.0,
            dampening: 0.25,
            weight_decay: 0.01,
            nesterov: true,
            threads: 3,
            seed: 9,
            out: PathBuf::from("a"),
            init: Some(PathBuf::from("b")),
            shuffle: false,
            max_steps: Some(4),
            save_last: Some(PathBuf::from("c")),
            metrics: Some(PathBuf::from("d")),
            log_interval: 5,
            state: Some(PathBuf::from("f")),
            resume: Some(PathBuf::from("g")),
            overwrite: true,
            plot: None,
            quiet: false,
            progress: std::io::stderr().is_terminal(),
        };
        assert_eq!(cfg, expected);
    }

    #[test]
    fn confusion_matrix_has_names_counts_and_recall() {
        let mut confusion = [[0u64; 10]; 10];
        confusion[0][0] = 850;
        confusion[0][6] = 150;
        confusion[9][9] = 1000;
        let e = Evaluation {
            loss: 0.5,
            correct: 1850,
            total: 2000,
            confusion,
        };
        let text = confusion_matrix(&e, Some(data::FASHION_MNIST_CLASSES));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 12);
        assert!(lines[2].starts_with("0 T-shirt/top  850"), "{}", lines[2]);
        assert!(lines[2].ends_with("85.00%"), "{}", lines[2]);
        assert!(lines[2].contains(" 150 "));
        assert!(lines[11].starts_with("9 Ankle boot "), "{}", lines[11]);
        assert!(lines[11].ends_with("100.00%"));
        assert!(lines[5].ends_with('-')); // a class with no samples
        let plain = confusion_matrix(&e, None);
        assert!(plain.lines().nth(2).unwrap().starts_with("0  850"));
    }
}
