//! Stopping and resuming, through the `simdnet` binary: SIGINT and SIGTERM stop a run at a step
//! boundary with the state saved, the exit status 130 or 143 and the exact resume command; a
//! run interrupted in epoch 2 (and again later) and resumed (the last part on another thread
//! count) ends bit-identical to the run that was never interrupted; resuming with other settings, other data or an unknown state version
//! is refused; SIGKILL at random moments leaves every output loadable and --out never worse.
#![cfg(unix)]

mod common;

use common::{command, expect, p, run, scratch, send, tensor_bits, text, tiny_data};
use simdnet::checkpoint;
use simdnet::lenet::LeNet5;
use simdnet::train::state::RunState;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const EPOCHS: &str = "8";

/// The files of one run in `dir`, and the flags naming them.
fn outputs(dir: &Path) -> (Vec<String>, [PathBuf; 4]) {
    let files = [
        dir.join("best.safetensors"),
        dir.join("last.safetensors"),
        dir.join("metrics.csv"),
        dir.join("run.state"),
    ];
    let args = ["--out", "--save-last", "--metrics", "--state"]
        .iter()
        .zip(&files)
        .flat_map(|(f, path)| [f.to_string(), p(path).to_string()])
        .collect();
    (args, files)
}

/// Starts `args`, waits for a `Train Epoch: N` line with N at least `epoch` after `skip` log
/// lines, sends `signal`, and returns (exit status, stdout, stderr).
fn interrupt(args: &[String], epoch: usize, skip: usize, signal: &str) -> (i32, String, String) {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = command(&a)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut err_pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        err_pipe.read_to_string(&mut s).unwrap();
        s
    });
    let (mut all, mut seen, mut sent) = (String::new(), 0, false);
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 {
        if let Some(rest) = line.strip_prefix("Train Epoch: ") {
            seen += 1;
            let n: usize = rest.split(' ').next().unwrap().parse().unwrap();
            if !sent && n >= epoch && seen > skip {
                send(signal, child.id());
                sent = true;
            }
        }
        all.push_str(&line);
        line.clear();
    }
    let status = common::wait_with_limit(child, Duration::from_secs(120), "interrupted run");
    assert!(sent, "the run ended before it could be interrupted:\n{all}");
    (
        status.status.code().unwrap_or(-1),
        all,
        stderr.join().unwrap(),
    )
}

/// The resume command printed on stderr, as arguments after `simdnet`.
fn resume_args(stderr: &str) -> Vec<String> {
    let line = stderr
        .lines()
        .skip_while(|l| !l.starts_with("Saved the state to"))
        .nth(1)
        .unwrap_or_else(|| panic!("no resume command in:\n{stderr}"));
    let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    assert_eq!(&words[..2], ["simdnet", "train"], "{line}");
    words[1..].to_vec()
}

/// The metrics CSV without its timing columns.
fn metrics_numbers(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split(',').take(4).collect::<Vec<_>>().join(","))
        .collect()
}

#[test]
fn sigint_and_sigterm_stop_and_resume_bit_exactly() {
    let dir = scratch("resume");
    let data = tiny_data(&dir, 1280, 200);
    let common_args = |d: &Path| {
        let (files, _) = outputs(d);
        let mut a: Vec<String> = [
            "train",
            "--data",
            p(&data),
            "--epochs",
            EPOCHS,
            "--threads",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(files);
        a
    };
    let reference = dir.join("reference");
    let interrupted = dir.join("interrupted");
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::create_dir_all(&interrupted).unwrap();
    let ref_args = common_args(&reference);
    let a: Vec<&str> = ref_args.iter().map(String::as_str).collect();
    expect(&run(&a), 0, &["New best"]);

    // SIGINT in epoch 2.
    let mut args = common_args(&interrupted);
    args.extend(["--log-interval".to_string(), "1".to_string()]);
    let (code, _, stderr) = interrupt(&args, 2, 25, "INT");
    assert_eq!(code, 130, "{stderr}");
    assert!(stderr.contains("Stopped by SIGINT at epoch"), "{stderr}");
    assert!(stderr.contains("Saved the last weights to"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (_, files) = outputs(&interrupted);
    let saved = RunState::load(&files[3]).unwrap();
    assert!(saved.position.epoch >= 2, "{:?}", saved.position);
    LeNet5::load(&files[1]).unwrap();
    let resume = resume_args(&stderr);
    assert!(resume.contains(&"--resume".to_string()), "{resume:?}");

    // The resumed run, stopped again by SIGTERM a few steps later, then resumed to the end.
    let (code, _, stderr) = interrupt(&resume, 1, 5, "TERM");
    assert_eq!(code, 143, "{stderr}");
    assert!(stderr.contains("Stopped by SIGTERM"), "{stderr}");
    let again = RunState::load(&files[3]).unwrap();
    assert!(again.position.steps > saved.position.steps);
    // The last part on 3 threads: a seed gives the same bits for any thread count.
    let mut resume = resume_args(&stderr);
    let t = resume.iter().position(|a| a == "--threads").unwrap();
    resume[t + 1] = "3".to_string();
    let a: Vec<&str> = resume.iter().map(String::as_str).collect();
    expect(&run(&a), 0, &["Resuming", "threads: 3"]);

    let (_, ref_files) = outputs(&reference);
    for (r, i) in ref_files.iter().zip(&files) {
        if r.extension().is_some_and(|e| e == "csv") {
            assert_eq!(metrics_numbers(r), metrics_numbers(i));
        } else {
            assert!(tensor_bits(r) == tensor_bits(i), "{} differs", i.display());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_max_steps_stop_resumes_to_the_same_weights_and_bad_resumes_are_refused() {
    let dir = scratch("resume-steps");
    let data = tiny_data(&dir, 640, 100);
    let run_in = |d: &Path, extra: &[&str]| {
        std::fs::create_dir_all(d).unwrap();
        let (files, _) = outputs(d);
        let mut a: Vec<&str> = vec![
            "train",
            "--data",
            p(&data),
            "--epochs",
            "3",
            "--threads",
            "1",
        ];
        a.extend(files.iter().map(String::as_str));
        a.extend_from_slice(extra);
        run(&a)
    };
    let (reference, cut) = (dir.join("reference"), dir.join("cut"));
    expect(&run_in(&reference, &[]), 0, &[]);
    // 15 steps: the middle of epoch 2 (10 steps an epoch).
    expect(&run_in(&cut, &["--max-steps", "15"]), 0, &[]);
    let state = cut.join("run.state");
    assert_eq!(RunState::load(&state).unwrap().position.batch, 5);
    expect(
        &run(&["train", "--data", p(&data), "--resume", p(&state)]),
        0,
        &["Resuming"],
    );
    assert!(
        tensor_bits(&reference.join("last.safetensors"))
            == tensor_bits(&cut.join("last.safetensors")),
        "the resumed weights differ"
    );

    // Refusals: another hyperparameter, other data, --init, an unknown version, a checkpoint.
    let before = std::fs::read(&state).unwrap();
    expect(
        &run(&[
            "train",
            "--data",
            p(&data),
            "--resume",
            p(&state),
            "--lr",
            "0.5",
        ]),
        2,
        &["--lr is 0.5 but the state has 0.01"],
    );
    let other = tiny_data(&dir.join("other"), 600, 100);
    expect(
        &run(&["train", "--data", p(&other), "--resume", p(&state)]),
        2,
        &["the data differ"],
    );
    expect(
        &run(&[
            "train",
            "--data",
            p(&data),
            "--resume",
            p(&state),
            "--init",
            p(&state),
        ]),
        2,
        &["--init and --resume cannot be combined"],
    );
    let c = checkpoint::read(&state).unwrap();
    let meta: Vec<(&str, &str)> = c
        .metadata
        .iter()
        .map(|(k, v)| {
            let v = if k == "simdnet_state_version" {
                "99"
            } else {
                v.as_str()
            };
            (k.as_str(), v)
        })
        .collect();
    let tensors: Vec<(&str, &[usize], &[f32])> = c
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice(), t.data.as_slice()))
        .collect();
    let newer = dir.join("newer.state");
    checkpoint::write(&newer, &tensors, &meta).unwrap();
    expect(
        &run(&["train", "--data", p(&data), "--resume", p(&newer)]),
        1,
        &["format version 99 is not supported"],
    );
    expect(
        &run(&[
            "train",
            "--data",
            p(&data),
            "--resume",
            p(&reference.join("best.safetensors")),
        ]),
        1,
        &["not a simdnet state file"],
    );
    assert_eq!(
        std::fs::read(&state).unwrap(),
        before,
        "a refused resume touched the state"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigkill_at_random_moments_leaves_every_output_whole_and_out_never_worse() {
    let dir = scratch("sigkill");
    let data = tiny_data(&dir, 640, 100);
    let (files, paths) = outputs(&dir);
    let mut args: Vec<&str> = vec![
        "train",
        "--data",
        p(&data),
        "--epochs",
        "40",
        "--threads",
        "1",
        "--log-interval",
        "1000",
    ];
    args.extend(files.iter().map(String::as_str));
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    let mut best_accuracy = -1.0f64;
    for trial in 0..8 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(30 + seed % 900);
        let child = command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        send("KILL", child.id());
        let _ = common::wait_with_limit(child, Duration::from_secs(30), "killed run");
        let [out, last, metrics, state] = &paths;
        if out.exists() {
            LeNet5::load(out).unwrap_or_else(|e| panic!("trial {trial} ({delay:?}): {e}"));
            let acc: f64 = checkpoint::read(out)
                .unwrap()
                .meta("test_accuracy")
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                acc >= best_accuracy,
                "trial {trial}: --out went from {best_accuracy} to {acc}"
            );
            best_accuracy = acc;
        }
        if last.exists() {
            LeNet5::load(last).unwrap_or_else(|e| panic!("trial {trial}: {e}"));
        }
        if state.exists() {
            RunState::load(state).unwrap_or_else(|e| panic!("trial {trial}: {e}"));
        }
        if metrics.exists() {
            let csv = std::fs::read_to_string(metrics).unwrap();
            assert!(csv.starts_with("epoch,"), "trial {trial}: {csv}");
            assert!(
                csv.ends_with('\n'),
                "trial {trial}: a cut metrics CSV:\n{csv}"
            );
            assert!(csv.lines().all(|l| l.split(',').count() == 7), "{csv}");
        }
    }
    assert!(
        best_accuracy > 0.0,
        "no trial lived long enough to write --out"
    );
    // The next run removes what the killed ones left behind.
    let out = run(&args[..args.len() - 8]
        .iter()
        .copied()
        .chain(["--out", p(&paths[0]), "--max-steps", "1"])
        .collect::<Vec<_>>());
    expect(&out, 0, &["already holds a LeNet-5 checkpoint"]);
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = text(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_ctrl_c_quits_at_once() {
    let dir = scratch("second-ctrl-c");
    let data = tiny_data(&dir, 64, 1000);
    // 20,000 test images (the 1,000 repeated), so evaluating the existing --out takes a while.
    for (name, header, item) in [
        ("t10k-images-idx3-ubyte", 16, 784),
        ("t10k-labels-idx1-ubyte", 8, 1),
    ] {
        let path = data.join(name);
        let bytes = std::fs::read(&path).unwrap();
        let mut out = bytes[..header].to_vec();
        out[4..8].copy_from_slice(&20_000u32.to_be_bytes());
        for _ in 0..20 {
            out.extend_from_slice(&bytes[header..header + 1000 * item]);
        }
        std::fs::write(&path, out).unwrap();
    }
    let best = dir.join("best.safetensors");
    LeNet5::new(1).save(&best, &[]).unwrap();
    let mut child = command(&[
        "train",
        "--data",
        p(&data),
        "--out",
        p(&best),
        "--threads",
        "1",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut all = String::new();
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 {
        all.push_str(&line);
        if line.starts_with("Training set:") {
            // Both arrive while the existing --out is being evaluated, before any step.
            send("INT", child.id());
            std::thread::sleep(Duration::from_millis(20));
            send("INT", child.id());
        }
        line.clear();
    }
    let out = common::wait_with_limit(child, Duration::from_secs(60), "second Ctrl-C");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{all}\n{stderr}");
    // Quit at once: no evaluation result, no stop message, --out untouched.
    assert!(
        !all.contains("already holds"),
        "it finished the evaluation:\n{all}"
    );
    assert!(!stderr.contains("Stopped by"), "{stderr}");
    LeNet5::load(&best).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
