//! The trainer's guarantees about files, through the `simdnet` binary: every refusal (exit 2,
//! the flag and the file named, the file untouched, nothing trained), an existing better `--out`
//! kept, temporary files, a divergence on the last step never saved, paths that would block or
//! balloon (a FIFO, /dev/zero) refused at once, a closed pipe ending the program quietly, and
//! the checkpoint metadata and its format version.
#![cfg(unix)]

mod common;

use common::{command, expect, p, run, scratch, tiny_data, wait_with_limit};
use simdnet::checkpoint;
use simdnet::lenet::LeNet5;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

#[test]
fn each_refusal_exits_2_names_flag_and_file_and_touches_nothing() {
    let dir = scratch("refusals");
    let data = tiny_data(&dir, 64, 20);
    let init = dir.join("init.safetensors");
    LeNet5::new(3).save(&init, &[]).unwrap();
    let init_bytes = std::fs::read(&init).unwrap();
    let images = data.join("train-images-idx3-ubyte");
    let images_bytes = std::fs::read(&images).unwrap();
    let out = dir.join("best.safetensors");
    let link = dir.join("link.safetensors");
    std::os::unix::fs::symlink(&init, &link).unwrap();
    let hard = dir.join("hard.safetensors");
    std::fs::hard_link(&init, &hard).unwrap();
    let not_ckpt = dir.join("notes.txt");
    std::fs::write(&not_ckpt, b"my notes, not a model").unwrap();
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let subdir = dir.join("adir");
    std::fs::create_dir(&subdir).unwrap();
    let long = dir.join("x".repeat(300));
    let missing = dir.join("no-such-dir").join("best.safetensors");
    let base = [
        "train",
        "--data",
        p(&data),
        "--max-steps",
        "1",
        "--threads",
        "1",
    ];
    type Case<'a> = (Vec<&'a str>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            vec!["--out", p(&out), "--init", p(&init), "--metrics", p(&init)],
            vec!["--metrics", "is the same file as --init", p(&init)],
        ),
        (
            vec![
                "--out",
                p(&out),
                "--init",
                p(&init),
                "--save-last",
                p(&link),
            ],
            vec!["--save-last", "same file as --init"],
        ),
        (
            vec!["--out", p(&hard), "--init", p(&init)],
            vec!["--out", p(&hard), "same file as --init"],
        ),
        (
            vec!["--out", p(&images)],
            vec!["--out", "same file as --data", "train-images-idx3-ubyte"],
        ),
        (
            vec!["--out", p(&out), "--metrics", p(&out)],
            vec!["--metrics", "same file as --out", "two outputs"],
        ),
        (
            vec!["--out", "/dev/null"],
            vec![
                "--out /dev/null",
                "a character device",
                "refusing to replace it",
            ],
        ),
        (vec!["--out", p(&subdir)], vec!["--out", "a directory"]),
        (
            vec!["--out", p(&out), "--state", p(&fifo)],
            vec!["--state", "a FIFO"],
        ),
        (
            vec!["--out", p(&missing)],
            vec!["--out", "no-such-dir", "does not exist"],
        ),
        (vec!["--out", p(&long)], vec!["--out", "300 bytes long"]),
        (
            vec!["--out", p(&not_ckpt)],
            vec![
                "--out",
                p(&not_ckpt),
                "is not a LeNet-5 checkpoint",
                "refusing",
            ],
        ),
        (
            vec!["--out", p(&not_ckpt), "--overwrite"],
            vec!["is not a LeNet-5 checkpoint"],
        ),
    ];
    for (extra, needles) in cases {
        let mut args = base.to_vec();
        args.extend(&extra);
        let (stdout, stderr) = expect(&run(&args), 2, &needles);
        assert!(
            !stdout.contains("Train Epoch"),
            "{args:?} trained:\n{stdout}"
        );
        assert!(!stderr.contains("Usage:"), "{stderr}");
        assert_eq!(std::fs::read(&init).unwrap(), init_bytes, "{args:?}");
        assert_eq!(std::fs::read(&images).unwrap(), images_bytes, "{args:?}");
        assert_eq!(
            std::fs::read(&not_ckpt).unwrap(),
            b"my notes, not a model",
            "{args:?}"
        );
        assert!(!out.exists(), "{args:?} wrote --out");
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(subdir.is_dir());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_existing_better_out_is_kept_and_overwrite_replaces_it() {
    let dir = scratch("better-out");
    let data = tiny_data(&dir, 1280, 200);
    let out = dir.join("best.safetensors");
    let train = |extra: &[&str]| {
        let mut a = vec![
            "train",
            "--data",
            p(&data),
            "--out",
            p(&out),
            "--threads",
            "2",
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    expect(&train(&["--epochs", "4", "--lr", "0.05"]), 0, &["New best"]);
    let good = std::fs::read(&out).unwrap();
    // A 1-step run is far worse: it must not replace the model, and says why.
    let (stdout, _) = expect(
        &train(&["--max-steps", "1", "--seed", "5"]),
        0,
        &["already holds a LeNet-5 checkpoint", "best so far"],
    );
    assert!(!stdout.contains("New best"), "{stdout}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        good,
        "a worse model replaced --out"
    );
    let (stdout, _) = expect(
        &train(&["--max-steps", "1", "--seed", "5", "--overwrite"]),
        0,
        &["--overwrite", "New best"],
    );
    assert!(stdout.contains("--overwrite"), "{stdout}");
    assert_ne!(std::fs::read(&out).unwrap(), good);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn long_names_work_and_temporary_files_are_short_and_cleaned() {
    let dir = scratch("temps");
    let data = tiny_data(&dir, 64, 20);
    // 250 bytes: legal, and the temporary name does not grow with it.
    let out = dir.join(format!("{}.safetensors", "m".repeat(238)));
    let metrics = dir.join("metrics.csv");
    // A temporary file of a dead process (pid 0x7ffffffe does not exist on Linux).
    let stale = dir.join(".simdnet-7ffffffe00000000.tmp");
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    let args = [
        "train",
        "--data",
        p(&data),
        "--out",
        p(&out),
        "--metrics",
        p(&metrics),
        "--max-steps",
        "1",
        "--threads",
        "1",
    ];
    expect(&run(&args), 0, &["New best"]);
    LeNet5::load(&out).unwrap();
    let csv = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.starts_with("epoch,train_loss,test_loss"));
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_divergence_on_the_last_step_is_never_saved() {
    let dir = scratch("diverge");
    let data = tiny_data(&dir, 64, 20);
    let (out, last, state) = (
        dir.join("best.safetensors"),
        dir.join("last.safetensors"),
        dir.join("run.state"),
    );
    // The only step's loss is finite; the step itself sends the weights to infinity.
    let args = [
        "train",
        "--data",
        p(&data),
        "--out",
        p(&out),
        "--save-last",
        p(&last),
        "--state",
        p(&state),
        "--max-steps",
        "1",
        "--lr",
        "1e300",
        "--threads",
        "1",
    ];
    let (_, stderr) = expect(&run(&args), 1, &["training diverged", "after step 1"]);
    assert!(!stderr.contains("panicked"));
    assert!(
        !out.exists() && !last.exists() && !state.exists(),
        "a diverged model was saved"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fifo_or_an_endless_file_is_refused_at_once() {
    let dir = scratch("fifo");
    let data = tiny_data(&dir, 64, 20);
    let fifo = dir.join("weights.fifo");
    mkfifo(&fifo);
    let limit = Duration::from_secs(30);
    for (weights, needle) in [(p(&fifo), "a FIFO"), ("/dev/zero", "a character device")] {
        let child = command(&["eval", "--weights", weights, "--data", p(&data)])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_with_limit(child, limit, weights);
        expect(&out, 2, &[weights, needle, "not a regular file"]);
        let child = command(&["train", "--init", weights, "--data", p(&data), "--out"])
            .arg(dir.join("o.safetensors"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_with_limit(child, limit, weights);
        expect(&out, 2, &[weights, needle]);
    }
    // A data file that is a FIFO is refused the same way.
    let images = data.join("t10k-images-idx3-ubyte");
    std::fs::remove_file(&images).unwrap();
    mkfifo(&images);
    let w = dir.join("w.safetensors");
    LeNet5::new(0).save(&w, &[]).unwrap();
    let child = command(&["eval", "--weights", p(&w), "--data", p(&data)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    expect(
        &wait_with_limit(child, limit, "fifo images"),
        2,
        &["a FIFO"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_closed_pipe_ends_train_and_eval_quietly() {
    let dir = scratch("pipe");
    let data = tiny_data(&dir, 640, 20);
    let w = dir.join("w.safetensors");
    LeNet5::new(0).save(&w, &[]).unwrap();
    // `eval | head -0`: the reader is gone before the first line.
    let mut child = command(&["eval", "--weights", p(&w), "--data", p(&data)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = wait_with_limit(child, Duration::from_secs(60), "eval");
    assert_eq!(
        out.status.code(),
        Some(141),
        "{}",
        common::text(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "{}", common::text(&out.stderr));
    // `train 2>&1 | head -3`: both streams closed after three lines; the run stops at the next
    // step, saves its state and exits 141 without a word.
    let state = dir.join("run.state");
    let mut child = command(&[
        "train",
        "--data",
        p(&data),
        "--out",
        p(&dir.join("b.safetensors")),
        "--state",
        p(&state),
        "--log-interval",
        "1",
        "--epochs",
        "50",
        "--threads",
        "1",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = String::new();
    for _ in 0..3 {
        std::io::BufRead::read_line(&mut stdout, &mut lines).unwrap();
    }
    drop(stdout);
    drop(child.stderr.take());
    let out = wait_with_limit(child, Duration::from_secs(60), "train");
    assert_eq!(out.status.code(), Some(141), "{lines}");
    simdnet::train::state::RunState::load(&state).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn checkpoints_record_how_they_were_made_and_unknown_versions_are_refused() {
    let dir = scratch("metadata");
    let data = tiny_data(&dir, 64, 20);
    let out = dir.join("best.safetensors");
    let args = [
        "train",
        "--data",
        p(&data),
        "--out",
        p(&out),
        "--max-steps",
        "1",
        "--seed",
        "7",
        "--lr",
        "0.05",
        "--threads",
        "1",
    ];
    expect(&run(&args), 0, &[]);
    let c = checkpoint::read(&out).unwrap();
    for (k, v) in [
        ("simdnet_format_version", "1"),
        ("seed", "7"),
        ("lr", "0.05"),
        ("momentum", "0.9"),
        ("batch_size", "64"),
        ("epoch", "1"),
    ] {
        assert_eq!(c.meta(k), Some(v), "{k}");
    }
    // A newer format is refused by name; no simdnet metadata at all (PyTorch's) loads.
    let model = LeNet5::new(1);
    let newer = dir.join("newer.safetensors");
    model
        .save(&newer, &[("simdnet_format_version", "99")])
        .unwrap();
    expect(
        &run(&["eval", "--weights", p(&newer), "--data", p(&data)]),
        1,
        &["format version 99 is not supported"],
    );
    let plain = dir.join("plain.safetensors");
    model.save(&plain, &[]).unwrap();
    expect(
        &run(&["eval", "--weights", p(&plain), "--data", p(&data)]),
        0,
        &["Test set"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A header of `len` bytes: a valid tensor entry whose ignored field holds `[[],[],...]`
/// nested a few levels, then a metadata object of many empty pairs.
fn hostile_header(len: usize) -> Vec<u8> {
    let mut h = String::from(r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":["#);
    let unit = "[[[[[]]]]],";
    while h.len() + unit.len() < len / 2 {
        h.push_str(unit);
    }
    h.push_str(r#"[]]},"__metadata__":{"#);
    let mut i = 0u64;
    while h.len() + 40 < len {
        h.push_str(&format!("\"{i:x}\":\"\","));
        i += 1;
    }
    h.push_str(r#""end":""}}"#);
    let mut file = (h.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(h.as_bytes());
    file
}

/// `simdnet eval --weights weights --data data` under a 256 MiB address-space limit
/// (`ulimit -v`), failing the test if it runs past `limit`.
fn eval_in_256_mib(weights: &Path, data: &Path, limit: Duration, what: &str) -> Output {
    let script = format!(
        "ulimit -v 262144; exec {} eval --weights {} --data {}",
        common::bin(),
        p(weights),
        p(data)
    );
    let child = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_with_limit(child, limit, what)
}

#[test]
fn a_hostile_header_is_read_in_bounded_memory() {
    let dir = scratch("hostile-header");
    let data = tiny_data(&dir, 64, 20);
    let path = dir.join("hostile.safetensors");
    std::fs::write(&path, hostile_header(24 << 20)).unwrap();
    // 24 MiB of header under a 256 MiB address-space limit: a document tree would need gigabytes.
    let out = eval_in_256_mib(&path, &data, Duration::from_secs(60), "hostile header");
    expect(
        &out,
        1,
        &["checkpoint does not match the model", "missing tensors"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_huge_images_file_with_a_small_labels_file_fails_on_the_headers() {
    let dir = scratch("sparse");
    let data = tiny_data(&dir, 64, 20);
    // A 3 GB sparse images file promising 4,000,000 test images, beside 20 labels.
    let images = data.join("t10k-images-idx3-ubyte");
    let count: u32 = 4_000_000;
    let mut header = vec![0, 0, 8, 3];
    header.extend_from_slice(&count.to_be_bytes());
    header.extend_from_slice(&28u32.to_be_bytes());
    header.extend_from_slice(&28u32.to_be_bytes());
    std::fs::write(&images, &header).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&images)
        .unwrap();
    f.set_len(16 + u64::from(count) * 784).unwrap();
    drop(f);
    let w = dir.join("w.safetensors");
    LeNet5::new(0).save(&w, &[]).unwrap();
    // Under a 256 MiB address-space limit: reading the body first would need 3 GB.
    let out = eval_in_256_mib(&w, &data, Duration::from_secs(30), "sparse images");
    expect(
        &out,
        1,
        &[
            "holds 4000000 images but",
            "holds 20 labels",
            "the counts must agree",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}
