//! The `simdnet` binary: usage texts, exit codes (0 success, 1 error, 2 invalid command line),
//! `info`, and a tiny training run followed by `eval` of what it wrote.

use simdnet::checkpoint;
use simdnet::lenet::LeNet5;
use std::path::Path;

mod common;
use common::{emulated, expect, scratch as temp_dir, simdnet, SUBSET};

#[test]
fn help_texts() {
    let (stdout, _) = expect(
        &simdnet(&["--help"], &[]),
        0,
        &[
            "Usage: simdnet <command>",
            "train",
            "eval",
            "gradcheck",
            "explain",
            "info",
        ],
    );
    assert!(stdout.contains("SIMDNET_ISA") && stdout.contains("SIMDNET_DATA"));
    expect(
        &simdnet(&["train", "--help"], &[]),
        0,
        &[
            "Usage: simdnet train",
            "--max-steps N",
            "[default: 10]",
            "lenet5-best.safetensors",
        ],
    );
    expect(
        &simdnet(&["help", "eval"], &[]),
        0,
        &["Usage: simdnet eval --weights FILE"],
    );
    for c in ["gradcheck", "explain", "info"] {
        expect(
            &simdnet(&[c, "-h"], &[]),
            0,
            &[&format!("Usage: simdnet {c}")],
        );
    }
    let (stdout, _) = expect(&simdnet(&["--version"], &[]), 0, &["simdnet "]);
    assert!(stdout.trim().ends_with(env!("CARGO_PKG_VERSION")));
}

#[test]
fn invalid_command_lines_exit_2_with_one_line_and_a_help_pointer() {
    let cases: [(&[&str], &str, &str); 12] = [
        (&[], "no command given", "Usage: simdnet <command>"),
        (&["fly"], "unknown command 'fly'", "try 'simdnet --help'"),
        (
            &["train", "--bogus"],
            "unknown option '--bogus'",
            "try 'simdnet train --help'",
        ),
        (
            &["train", "--epochs", "many"],
            "invalid value 'many' for '--epochs'",
            "try 'simdnet train --help'",
        ),
        (
            &["train", "--batch-size=0"],
            "must be at least 1",
            "try 'simdnet train --help'",
        ),
        (
            &["train", "--lr"],
            "option '--lr' needs a value",
            "try 'simdnet train --help'",
        ),
        (
            &["train", "--lr", "-1"],
            "Invalid learning rate: -1",
            "try 'simdnet train --help'",
        ),
        (
            &["train", "--momentum=-0.1"],
            "Invalid momentum value: -0.1",
            "try 'simdnet train --help'",
        ),
        (
            &["train", "--weight-decay", "-1"],
            "Invalid weight_decay value: -1",
            "try 'simdnet train --help'",
        ),
        (
            &["train", "--nesterov", "--momentum", "0"],
            "Nesterov momentum requires a momentum and zero dampening",
            "try 'simdnet train --help'",
        ),
        (
            &["eval"],
            "missing required option '--weights FILE'",
            "try 'simdnet eval --help'",
        ),
        (
            &["eval", "--weights", "w", "--data"],
            "option '--data' needs a value",
            "try 'simdnet eval --help'",
        ),
    ];
    for (args, message, usage) in cases {
        let out = simdnet(args, &[]);
        let (stdout, stderr) = expect(&out, 2, &[message, usage]);
        assert!(stdout.is_empty(), "{args:?} wrote to stdout: {stdout}");
        if !args.is_empty() {
            // One error line and one pointer to --help, not the whole usage.
            assert_eq!(stderr.lines().count(), 2, "{args:?}: {stderr}");
        }
    }
}

#[test]
fn invalid_simdnet_isa_exits_2_except_for_info_which_explains_it() {
    for cmd in [
        &["train", "--max-steps", "1"][..],
        &["gradcheck"],
        &["explain"],
        &["eval", "--weights", "w.safetensors"],
    ] {
        expect(
            &simdnet(cmd, &[("SIMDNET_ISA", "bogus")]),
            2,
            &["invalid SIMDNET_ISA: unknown kernel ISA 'bogus'", "--help'"],
        );
    }
    let (stdout, _) = expect(&simdnet(&["info"], &[("SIMDNET_ISA", "bogus")]), 0, &[]);
    assert!(
        stdout.contains("Kernel ISA in use: none: SIMDNET_ISA=\"bogus\" is invalid"),
        "{stdout}"
    );
    assert!(stdout.contains("every other command refuses"), "{stdout}");
    // An ISA this CPU lacks is invalid too.
    let lacking = if cfg!(target_arch = "x86_64") {
        "neon"
    } else {
        "avx2"
    };
    expect(
        &simdnet(&["explain"], &[("SIMDNET_ISA", lacking)]),
        2,
        &["is not supported by this CPU"],
    );
    let (stdout, _) = expect(&simdnet(&["info"], &[("SIMDNET_ISA", lacking)]), 0, &[]);
    assert!(stdout.contains("is not supported by this CPU"), "{stdout}");
}

#[test]
fn info_shows_cpu_features_and_the_isa_in_use() {
    let (stdout, _) = expect(
        &simdnet(&["info"], &[]),
        0,
        &[
            "CPU features:",
            "Kernel ISAs supported: scalar",
            "Kernel ISA in use: ",
            "Data (train's default): ",
        ],
    );
    let best = simdnet::kernels::Isa::best().name();
    assert!(
        stdout.contains(&format!(
            "Kernel ISA in use: {best} (the best this CPU supports)"
        )),
        "{stdout}"
    );
    if cfg!(target_arch = "x86_64") {
        assert!(
            stdout.contains("avx2 ") && stdout.contains("fma "),
            "{stdout}"
        );
    }
    let (stdout, _) = expect(&simdnet(&["info"], &[("SIMDNET_ISA", "scalar")]), 0, &[]);
    assert!(
        stdout.contains("Kernel ISA in use: scalar (from SIMDNET_ISA)"),
        "{stdout}"
    );
    // SIMDNET_DATA is reported, never silently skipped.
    let (stdout, _) = expect(&simdnet(&["info"], &[("SIMDNET_DATA", SUBSET)]), 0, &[]);
    assert!(
        stdout.contains(&format!("{SUBSET} ($SIMDNET_DATA)")),
        "{stdout}"
    );
}

#[test]
fn missing_or_invalid_data_exits_1_naming_the_path() {
    let dir = temp_dir("nodata");
    let missing = dir.join("no-such-dir");
    let m = missing.to_str().unwrap();
    expect(
        &simdnet(&["train", "--data", m, "--max-steps", "1"], &[]),
        1,
        &[m, "does not exist"],
    );
    expect(
        &simdnet(&["train", "--max-steps", "1"], &[("SIMDNET_DATA", m)]),
        1,
        &[m, "$SIMDNET_DATA"],
    );
    // A directory with only the test files is enough for eval, not for train.
    let d = dir.to_str().unwrap();
    for f in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        std::fs::copy(Path::new(SUBSET).join(f), dir.join(f)).unwrap();
    }
    expect(
        &simdnet(&["train", "--data", d], &[]),
        1,
        &[d, "lacks train-images-idx3-ubyte, train-labels-idx1-ubyte"],
    );
    // A malformed data file: exit 1, naming it.
    std::fs::write(
        dir.join("t10k-labels-idx1-ubyte"),
        [0, 0, 8, 1, 0, 0, 3, 232, 1],
    )
    .unwrap();
    let pytorch = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pytorch_written.safetensors"
    );
    expect(
        &simdnet(&["eval", "--weights", pytorch, "--data", d], &[]),
        1,
        &["t10k-labels-idx1-ubyte", "file is truncated"],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_or_malformed_weights_exit_1_naming_the_file() {
    let dir = temp_dir("weights");
    let missing = dir.join("missing.safetensors");
    let m = missing.to_str().unwrap();
    expect(
        &simdnet(&["eval", "--weights", m, "--data", SUBSET], &[]),
        1,
        &[m, "cannot read"],
    );

    let garbage = dir.join("garbage.safetensors");
    std::fs::write(
        &garbage,
        b"\xff\xff\xff\xff\xff\xff\xff\xffnot a checkpoint",
    )
    .unwrap();
    let g = garbage.to_str().unwrap();
    expect(
        &simdnet(&["eval", "--weights", g, "--data", SUBSET], &[]),
        1,
        &[g, "header too large"],
    );

    // Valid safetensors, wrong model: every problem named.
    let wrong = dir.join("wrong.safetensors");
    checkpoint::write(&wrong, &[("fc1.weight", &[2], &[1.0, 2.0])], &[]).unwrap();
    let w = wrong.to_str().unwrap();
    expect(
        &simdnet(&["eval", "--weights", w, "--data", SUBSET], &[]),
        1,
        &[
            w,
            "missing tensors: conv1.weight",
            "wrong shapes: fc1.weight has shape [2]",
        ],
    );
    // --init reads the same way.
    expect(
        &simdnet(
            &["train", "--init", w, "--data", SUBSET, "--max-steps", "1"],
            &[],
        ),
        1,
        &[w, "missing tensors"],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn eval_reads_a_checkpoint_pytorch_wrote() {
    let pytorch = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pytorch_written.safetensors"
    );
    let (stdout, _) = expect(
        &simdnet(&["eval", "--weights", pytorch, "--data", SUBSET], &[]),
        0,
        &[
            "Confusion matrix (rows: true class, columns: predicted class)",
            "9 Ankle boot",
        ],
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("Data: {SUBSET} (--data)")),
        "{stdout}"
    );
    assert!(lines[1].starts_with("Kernel ISA: "), "{stdout}");
    let test_line = lines
        .iter()
        .find(|l| l.starts_with("Test set: Average loss: "))
        .expect("a Test set line");
    assert!(
        test_line.contains("/1000 (") && test_line.ends_with("%)"),
        "{test_line}"
    );
    // The matrix's rows add up to the test set: 100 images of each class.
    let start = lines
        .iter()
        .position(|l| l.starts_with("Confusion"))
        .unwrap();
    for row in &lines[start + 2..start + 12] {
        let counts: u64 = row
            .split_whitespace()
            .filter_map(|w| w.parse::<u64>().ok())
            .skip(1) // the class index
            .sum();
        assert_eq!(counts, 100, "{row}");
    }
}

#[test]
fn tiny_training_run_writes_checkpoints_and_metrics() {
    let dir = temp_dir("train");
    let best = dir.join("best.safetensors");
    let last = dir.join("last.safetensors");
    let metrics = dir.join("metrics.csv");
    let out = simdnet(
        &[
            "train",
            &format!("--data={SUBSET}"),
            "--max-steps",
            "5",
            "--epochs",
            "1",
            "--threads=1",
            "--log-interval",
            "2",
            "--out",
            best.to_str().unwrap(),
            "--save-last",
            last.to_str().unwrap(),
            "--metrics",
            metrics.to_str().unwrap(),
        ],
        &[("SIMDNET_ISA", "scalar")],
    );
    let (stdout, _) = expect(
        &out,
        0,
        &[
            "Train Epoch: 1 [0/5000 (0%)]\tLoss: ",
            "Test set: Average loss: ",
        ],
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], format!("Data: {SUBSET} (--data)"));
    assert_eq!(lines[1], "Kernel ISA: scalar (from SIMDNET_ISA)");
    assert!(
        stdout.contains("Train Epoch: 1 [128/5000 (3%)]\tLoss: "),
        "{stdout}"
    );
    for path in [&best, &last] {
        let c = checkpoint::read_expected(path, &LeNet5::PARAMS).unwrap();
        assert_eq!(c.meta("format"), Some("pt"));
        assert!(c
            .tensors
            .iter()
            .all(|t| t.data.iter().all(|v| v.is_finite())));
    }
    let csv = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        csv.starts_with(
            "epoch,train_loss,test_loss,test_accuracy,train_seconds,samples_per_sec,test_seconds\n"
        ),
        "{csv}"
    );
    // The checkpoint it wrote evaluates to the same test line.
    let test_line = lines.iter().find(|l| l.starts_with("Test set:")).unwrap();
    let (eval_out, _) = expect(
        &simdnet(
            &[
                "eval",
                "--weights",
                last.to_str().unwrap(),
                "--data",
                SUBSET,
            ],
            &[("SIMDNET_ISA", "scalar")],
        ),
        0,
        &[],
    );
    assert!(
        eval_out.contains(test_line),
        "train said {test_line}, eval said:\n{eval_out}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn diverging_training_stops_with_exit_1_and_writes_nothing() {
    let dir = temp_dir("nan");
    let best = dir.join("best.safetensors");
    let last = dir.join("last.safetensors");
    let (_, stderr) = expect(
        &simdnet(
            &[
                "train",
                "--data",
                SUBSET,
                "--lr",
                "1e20",
                "--max-steps",
                "3",
                "--out",
                best.to_str().unwrap(),
                "--save-last",
                last.to_str().unwrap(),
            ],
            &[],
        ),
        1,
        &["the loss is"],
    );
    assert!(stderr.contains("NaN") || stderr.contains("inf"), "{stderr}");
    assert!(!best.exists() && !last.exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn gradcheck_and_explain_run_and_exit_0() {
    expect(
        &simdnet(&["explain"], &[("SIMDNET_ISA", "scalar")]),
        0,
        &["softmax", "(scalar)"],
    );
    if emulated() {
        // The f64 LeNet-5 checks take minutes under qemu; the library's own gradient-check
        // tests cover NEON there.
        return;
    }
    let (stdout, _) = expect(&simdnet(&["gradcheck"], &[]), 0, &["Kernel ISA: "]);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("All ") && last.ends_with(" gradient checks passed."),
        "{stdout}"
    );
    for layer in ["conv", "linear", "LeNet-5"] {
        assert!(
            stdout.to_lowercase().contains(&layer.to_lowercase()),
            "no {layer} rows:\n{stdout}"
        );
    }
}

/// Without --data or $SIMDNET_DATA the default source is Debian's files when installed (and
/// readable: `.gz` needs the gzip feature), else the embedded subset. (`info` reports it without
/// training: evaluating the full test set would make this test slow.)
#[test]
fn default_data_source_is_named() {
    let expected = if cfg!(feature = "gzip")
        && Path::new(simdnet::data::DEBIAN_DIR)
            .join("train-images-idx3-ubyte.gz")
            .is_file()
    {
        format!(
            "Data (train's default): {} (Debian's dataset-fashion-mnist)",
            simdnet::data::DEBIAN_DIR
        )
    } else {
        "Data (train's default): the embedded Fashion-MNIST subset (5000 training, 1000 test \
         images)"
            .to_string()
    };
    let (stdout, _) = expect(&simdnet(&["info"], &[]), 0, &[]);
    assert!(stdout.lines().any(|l| l == expected), "{stdout}");
}
