//! The command as a new user meets it: "did you mean", `--data builtin` and torchvision's
//! layout, `--quiet` and the closing summary, a PyTorch `.pth` file, the pictures, and the
//! checks of threads and batch size against the machine and the data.

mod common;
use common::{expect, scratch as temp_dir, simdnet, SUBSET};
use simdnet::plot::svg::well_formed;
use std::path::Path;

const TRAIN_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

#[test]
fn near_misses_are_suggested_in_one_line() {
    let (_, stderr) = expect(&simdnet(&["trian"], &[]), 2, &["did you mean 'train'?"]);
    assert_eq!(
        stderr,
        "error: unknown command 'trian' (did you mean 'train'?)\n\
         For more information, try 'simdnet --help'.\n"
    );
    let (_, stderr) = expect(
        &simdnet(&["train", "--learning-rate", "0.1"], &[]),
        2,
        &["unknown option '--learning-rate' for 'train'"],
    );
    assert!(!stderr.contains("did you mean"), "{stderr}");
    expect(
        &simdnet(&["eval", "--weight", "x"], &[]),
        2,
        &["did you mean '--weights'?", "try 'simdnet eval --help'"],
    );
    expect(
        &simdnet(&["train", "--epochs", "x"], &[]),
        2,
        &["expected a whole number of at least 1"],
    );
}

#[test]
fn builtin_data_wins_over_the_environment_and_torchvision_roots_are_found() {
    let dir = temp_dir("torchvision");
    let out = dir.join("best.safetensors");
    let o = out.to_str().unwrap();
    let run = |data: &str, env: &[(&str, &str)]| {
        let args = ["train", "--data", data, "--max-steps", "1", "--out", o];
        let (stdout, _) = expect(&simdnet(&args, env), 0, &[]);
        std::fs::remove_file(&out).unwrap();
        stdout
    };
    let stdout = run("builtin", &[("SIMDNET_DATA", "/nonexistent")]);
    assert!(
        stdout.contains("Data: the embedded Fashion-MNIST subset (5000 training, 1000 test"),
        "{stdout}"
    );
    let raw = dir.join("root").join("FashionMNIST").join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    for f in TRAIN_FILES {
        std::fs::copy(Path::new(SUBSET).join(f), raw.join(f)).unwrap();
    }
    let root = dir.join("root");
    let stdout = run(root.to_str().unwrap(), &[]);
    assert!(
        stdout.contains(&format!("Data: {} (--data)", raw.display())),
        "{stdout}"
    );
    // Fashion-MNIST's class names are recognised from torchvision's folder name.
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn quiet_keeps_the_epoch_and_test_lines_and_the_summary_says_where_the_model_is() {
    let dir = temp_dir("quiet");
    let out = dir.join("best.safetensors");
    let o = out.to_str().unwrap();
    let args = [
        "train",
        "--data",
        "builtin",
        "--epochs",
        "2",
        "--out",
        o,
        "--quiet",
        "--threads",
        "1",
    ];
    let (stdout, stderr) = expect(&simdnet(&args, &[]), 0, &[]);
    assert!(!stdout.contains("Train Epoch"), "{stdout}");
    assert_eq!(
        stdout.matches("Test set: Average loss: ").count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("Epoch 2: 5000 samples in "), "{stdout}");
    let last = stdout.lines().last().unwrap();
    assert!(last.starts_with("Done: best test accuracy "), "{last}");
    assert!(last.contains(&format!("saved in {o}")), "{last}");
    assert!(
        last.contains("158 steps, 10000 samples trained in "),
        "{last}"
    );
    // Not a terminal: no progress line; an optimised build: no debug-build note.
    assert!(stderr.is_empty(), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn too_large_a_batch_is_refused_and_too_many_threads_warned_about() {
    let (_, stderr) = expect(
        &simdnet(&["train", "--data", "builtin", "--batch-size", "5001"], &[]),
        2,
        &["--batch-size 5001 is larger than the training set (5000 images)"],
    );
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    let dir = temp_dir("threads");
    let out = dir.join("best.safetensors");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let many = (cores + 3).to_string();
    let args = [
        "train",
        "--data",
        "builtin",
        "--max-steps",
        "1",
        "--threads",
        &many,
        "--out",
        out.to_str().unwrap(),
    ];
    let (stdout, stderr) = expect(&simdnet(&args, &[]), 0, &[]);
    assert!(
        stderr.contains(&format!(
            "warning: --threads {many} is more than the {cores} core"
        )),
        "{stderr}"
    );
    assert!(stdout.contains(&format!("threads: {many}")), "{stdout}");
    assert!(stdout.contains("at most 1 step\n") || stdout.contains("at most 1 step;"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_pytorch_pth_file_gets_told_how_to_convert_it() {
    let dir = temp_dir("pth");
    for (name, head) in [
        (
            "zip.pth",
            &b"PK\x03\x04\x14\x00\x00\x00archive/data.pkl"[..],
        ),
        ("pickle.pth", &b"\x80\x02\x8a\x0alegacy torch.save"[..]),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, head).unwrap();
        let p = path.to_str().unwrap();
        expect(
            &simdnet(&["eval", "--weights", p, "--data", "builtin"], &[]),
            1,
            &[
                p,
                "PyTorch's",
                "torch.save",
                "not safetensors",
                "save_file(model.state_dict(), \"model.safetensors\")",
            ],
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn train_and_eval_draw_well_formed_pictures_under_the_output_rules() {
    let dir = temp_dir("plots");
    let out = dir.join("best.safetensors");
    let curves = dir.join("curves.svg");
    let (o, c) = (out.to_str().unwrap(), curves.to_str().unwrap());
    let args = [
        "train",
        "--data",
        "builtin",
        "--epochs",
        "2",
        "--out",
        o,
        "--plot",
        c,
        "--log-interval",
        "20",
    ];
    expect(&simdnet(&args, &[]), 0, &[]);
    let svg = std::fs::read_to_string(&curves).unwrap();
    assert_eq!(well_formed(&svg), Ok(()));
    assert_eq!(svg.matches("class=\"train-loss\"").count(), 1);
    assert_eq!(svg.matches("class=\"test-loss-point\"").count(), 2);
    assert_eq!(svg.matches("class=\"test-accuracy-point\"").count(), 2);
    for label in [">epoch<", ">cross-entropy loss<", ">test accuracy (%)<"] {
        assert!(svg.contains(label), "{label}");
    }
    // Batches 0, 20, ..., 60 of each 79-batch epoch: 4 points an epoch, 8 in all.
    let points = svg.split("class=\"train-loss\"").nth(1).unwrap();
    let points = points.split("points=\"").nth(1).unwrap();
    let points = points.split('"').next().unwrap();
    assert_eq!(points.split(' ').count(), 8, "{points}");

    let picture = dir.join("eval.svg");
    let p = picture.to_str().unwrap();
    let args = ["eval", "--weights", o, "--data", "builtin", "--plot", p];
    let (stdout, _) = expect(&simdnet(&args, &[]), 0, &[]);
    assert!(stdout.contains("Checkpoint: "), "{stdout}");
    assert!(
        stdout.contains("epoch 2") || stdout.contains("epoch 1"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("Picture: {p}")), "{stdout}");
    let svg = std::fs::read_to_string(&picture).unwrap();
    assert_eq!(well_formed(&svg), Ok(()));
    assert_eq!(svg.matches("<rect x=").count(), 100);
    for name in ["T-shirt/top", "Ankle boot", "Sneaker"] {
        assert!(svg.contains(&format!(">{name}<")), "{name}");
    }
    let wrong: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Test set: "))
        .and_then(|l| l.split("Accuracy: ").nth(1))
        .and_then(|l| l.split_once('/'))
        .map(|(right, _)| 1000 - right.parse::<usize>().unwrap())
        .unwrap();
    assert!(svg.contains(&format!("{wrong} misclassified test images")));
    assert_eq!(svg.matches("data:image/png;base64,").count(), wrong.min(60));

    // A picture is an output like any other: never one of the inputs.
    let before = std::fs::read(&out).unwrap();
    expect(
        &simdnet(
            &["eval", "--weights", o, "--data", "builtin", "--plot", o],
            &[],
        ),
        2,
        &["--plot", o],
    );
    assert_eq!(std::fs::read(&out).unwrap(), before);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn gradcheck_rows_fit_in_100_columns() {
    let (stdout, _) = expect(&simdnet(&["gradcheck"], &[]), 0, &["checks passed"]);
    for line in stdout.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} columns: {line}",
            line.len()
        );
    }
    assert!(stdout.contains("LeNet-5 + CrossEntropyLoss"), "{stdout}");
}
