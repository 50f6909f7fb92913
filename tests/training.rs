//! The trainer on the embedded Fashion-MNIST subset (5,000 training and 1,000 test images, so
//! these tests need no files): reproducibility, the NaN stop, the best model
//! kept as a copy, `max_steps`, the log and metrics formats, and the default run's accuracy.

use std::path::PathBuf;

use simdnet::data::{self, Source, Splits};
use simdnet::kernels::Kernels;
use simdnet::lenet::LeNet5;
use simdnet::train::{evaluate, train, BestModel, Evaluation, TrainConfig};

fn embedded() -> Splits {
    let (train, test) = data::embedded::splits().unwrap();
    Splits {
        train: Some(train),
        test,
        source: Source::Embedded,
        class_names: None,
    }
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("simdnet-training-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(dir: &std::path::Path, threads: usize, max_steps: u64) -> TrainConfig {
    TrainConfig {
        epochs: 1,
        threads,
        max_steps: Some(max_steps),
        out: dir.join("best.safetensors"),
        save_last: Some(dir.join("last.safetensors")),
        log_interval: 10,
        ..TrainConfig::default()
    }
}

fn run(cfg: &TrainConfig, data: &Splits) -> (simdnet::train::TrainSummary, String) {
    let mut log = Vec::new();
    let summary = train(cfg, data, Kernels::get(), &mut log).unwrap();
    (summary, String::from_utf8(log).unwrap())
}

#[test]
fn the_same_seed_and_thread_count_give_bit_identical_checkpoints() {
    let data = embedded();
    for threads in [1, 2] {
        let (a, b) = (
            scratch(&format!("same-a{threads}")),
            scratch(&format!("same-b{threads}")),
        );
        run(&config(&a, threads, 25), &data);
        run(&config(&b, threads, 25), &data);
        for file in ["best.safetensors", "last.safetensors"] {
            let (x, y) = (
                std::fs::read(a.join(file)).unwrap(),
                std::fs::read(b.join(file)).unwrap(),
            );
            assert!(x == y, "{threads} threads: {file} differs between two runs");
        }
        let _ = std::fs::remove_dir_all(&a);
        let _ = std::fs::remove_dir_all(&b);
    }
}

#[test]
fn a_nan_loss_stops_the_run_and_leaves_the_best_checkpoint_alone() {
    let data = embedded();
    let dir = scratch("nan");
    let cfg = TrainConfig {
        lr: 1e9,
        max_steps: None,
        ..config(&dir, 2, 0)
    };
    // The best model of an earlier run: kept as the best so far, never replaced by a NaN one.
    simdnet::lenet::LeNet5::new(7).save(&cfg.out, &[]).unwrap();
    let sentinel = std::fs::read(&cfg.out).unwrap();
    let mut log = Vec::new();
    let err = train(&cfg, &data, Kernels::get(), &mut log)
        .unwrap_err()
        .to_string();
    assert!(err.contains("NaN") || err.contains("inf"), "{err}");
    assert!(err.contains("diverged"), "{err}");
    assert_eq!(
        std::fs::read(&cfg.out).unwrap(),
        sentinel,
        "out was touched"
    );
    assert!(
        !cfg.save_last.as_ref().unwrap().exists(),
        "save_last was written"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_best_model_is_a_copy_replaced_only_by_a_strictly_better_one() {
    let eval = |correct| Evaluation {
        loss: 0.5,
        correct,
        total: 1000,
        confusion: [[0; 10]; 10],
    };
    let mut live = LeNet5::new(7);
    let mut best = None;
    assert!(BestModel::offer(&mut best, &live, 1, &eval(700)));
    let kept = live.params().to_vec();
    // Training goes on: the live model changes, the best does not.
    live.params_mut()[0] += 1.0;
    assert_eq!(best.as_ref().unwrap().model.params(), &kept[..]);
    // A tie does not replace it.
    assert!(!BestModel::offer(&mut best, &live, 2, &eval(700)));
    assert_eq!(best.as_ref().unwrap().epoch, 1);
    assert_eq!(best.as_ref().unwrap().model.params(), &kept[..]);
    // Worse does not either; strictly better does.
    assert!(!BestModel::offer(&mut best, &live, 3, &eval(650)));
    assert!(BestModel::offer(&mut best, &live, 4, &eval(701)));
    assert_eq!(best.as_ref().unwrap().epoch, 4);
    assert_eq!(best.as_ref().unwrap().model.params(), live.params());
}

#[test]
fn a_run_saves_the_best_epoch_and_logs_as_pytorchs_example() {
    let data = embedded();
    let dir = scratch("epochs");
    let cfg = TrainConfig {
        epochs: 3,
        max_steps: None,
        metrics: Some(dir.join("metrics.csv")),
        ..config(&dir, 2, 0)
    };
    let (summary, log) = run(&cfg, &data);
    assert_eq!(summary.epochs.len(), 3);
    let batches = 5000usize.div_ceil(64) as u64;
    assert_eq!(summary.steps, 3 * batches);

    // The best epoch: the first with the highest accuracy, as saved to `out`.
    let top = summary.epochs.iter().map(|e| e.test.correct).max().unwrap();
    let first_top = summary
        .epochs
        .iter()
        .find(|e| e.test.correct == top)
        .unwrap()
        .epoch;
    let best = summary.best.as_ref().unwrap();
    assert_eq!((best.epoch, best.eval.correct), (first_top, top));
    let saved = LeNet5::load(&cfg.out).unwrap();
    assert_eq!(saved.params(), best.model.params());
    let ckpt = simdnet::checkpoint::read(&cfg.out).unwrap();
    assert_eq!(ckpt.meta("epoch"), Some(first_top.to_string().as_str()));
    assert_eq!(ckpt.meta("format"), Some("pt"));
    assert!(ckpt.meta("test_accuracy").is_some() && ckpt.meta("version").is_some());
    // Re-evaluating the saved copy gives the accuracy it was saved with.
    let again = evaluate(&saved, &data.test, Kernels::get(), 2);
    assert_eq!(again.correct, top);
    // save_last holds the final weights.
    assert_eq!(
        LeNet5::load(cfg.save_last.as_ref().unwrap())
            .unwrap()
            .params(),
        summary.last.params()
    );

    // The log: PyTorch's MNIST example's lines.
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines[0].starts_with("Train Epoch: 1 [0/5000 (0%)]\tLoss: "),
        "{}",
        lines[0]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Train Epoch: 1 [640/5000 (13%)]\tLoss: ")),
        "{log}"
    );
    let loss_text = lines[0].rsplit(' ').next().unwrap();
    assert_eq!(
        loss_text.split('.').nth(1).unwrap().len(),
        6,
        "six decimals: {}",
        lines[0]
    );
    assert!(
        (loss_text.parse::<f64>().unwrap() - 10f64.ln()).abs() < 0.2,
        "initial loss near ln 10"
    );
    for epoch in 1..=3 {
        let e = &summary.epochs[epoch - 1];
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("Epoch {epoch}: 5000 samples in ")))
            .unwrap();
        assert!(
            line.contains(" samples/s), test set evaluated in "),
            "{line}"
        );
        assert!(line.ends_with(" s"), "{line}");
        let test = format!(
            "Test set: Average loss: {:.4}, Accuracy: {}/1000 ({:.2}%)",
            e.test.loss,
            e.test.correct,
            e.test.correct as f64 / 10.0
        );
        assert!(lines.contains(&test.as_str()), "missing {test:?} in\n{log}");
    }
    assert!(lines
        .iter()
        .any(|l| l.contains("New best") && l.contains("best.safetensors")));

    // The metrics file: the header and a row per epoch.
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "epoch,train_loss,test_loss,test_accuracy,train_seconds,samples_per_sec,test_seconds"
    );
    assert_eq!(rows.len(), 4);
    for (i, row) in rows[1..].iter().enumerate() {
        let cols: Vec<f64> = row.split(',').map(|c| c.parse().unwrap()).collect();
        assert_eq!(cols.len(), 7);
        assert_eq!(cols[0] as usize, i + 1);
        assert!(cols[6] > 0.0 && cols[6].is_finite(), "test_seconds: {row}");
        assert!((cols[3] - summary.epochs[i].test.accuracy()).abs() < 1e-6);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn max_steps_ends_the_run_evaluates_once_and_saves_both() {
    let data = embedded();
    let dir = scratch("max-steps");
    let (summary, log) = run(&config(&dir, 2, 7), &data);
    assert_eq!(summary.steps, 7);
    assert_eq!(summary.epochs.len(), 1);
    assert_eq!(summary.epochs[0].samples, 7 * 64);
    assert_eq!(log.matches("Test set: ").count(), 1);
    assert!(dir.join("best.safetensors").exists() && dir.join("last.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn invalid_settings_are_refused_in_pytorchs_words() {
    let bad = |f: fn(&mut TrainConfig)| {
        let mut cfg = TrainConfig::default();
        f(&mut cfg);
        cfg.validate().unwrap_err().to_string()
    };
    assert_eq!(bad(|c| c.lr = -1.0), "Invalid learning rate: -1");
    assert_eq!(bad(|c| c.momentum = -0.1), "Invalid momentum value: -0.1");
    assert_eq!(
        bad(|c| c.weight_decay = -1.0),
        "Invalid weight_decay value: -1"
    );
    assert_eq!(
        bad(|c| {
            c.nesterov = true;
            c.momentum = 0.0
        }),
        "Nesterov momentum requires a momentum and zero dampening"
    );
    assert!(bad(|c| c.batch_size = 0).contains("batch size"));
    assert!(bad(|c| c.threads = 0).contains("threads"));
    assert!(bad(|c| c.log_interval = 0).contains("log interval"));
    assert!(TrainConfig::default().validate().is_ok());
    // No training set: an error, not a panic.
    let mut data = embedded();
    data.train = None;
    let dir = scratch("no-train");
    let err = train(&config(&dir, 1, 1), &data, Kernels::get(), &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("training set"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn evaluation_does_not_depend_on_the_thread_count() {
    let data = embedded();
    let model = LeNet5::new(3);
    let one = evaluate(&model, &data.test, Kernels::get(), 1);
    let three = evaluate(&model, &data.test, Kernels::get(), 3);
    assert_eq!(
        (one.correct, one.total, one.confusion),
        (three.correct, three.total, three.confusion)
    );
    assert!((one.loss - three.loss).abs() <= 1e-12 * one.loss);
    let confusion_total: u64 = one.confusion.iter().flatten().sum();
    assert_eq!(confusion_total, 1000);
    let diagonal: u64 = (0..10).map(|i| one.confusion[i][i]).sum();
    assert_eq!(diagonal as usize, one.correct);
}

/// The README's quick start: the default recipe (10 epochs, batch 64, lr 0.01, momentum 0.9)
/// on the embedded subset reaches at least 70% test accuracy.
#[test]
fn the_default_run_on_the_embedded_subset_reaches_70_percent() {
    let data = embedded();
    let dir = scratch("default");
    let cfg = TrainConfig {
        out: dir.join("best.safetensors"),
        threads: 2,
        ..TrainConfig::default()
    };
    let (summary, _) = run(&cfg, &data);
    let best = summary.best.unwrap();
    assert!(
        best.eval.accuracy() >= 0.70,
        "best test accuracy {:.2}%",
        100.0 * best.eval.accuracy()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
