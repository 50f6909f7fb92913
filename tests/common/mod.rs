//! Helpers shared by the tests that run the `simdnet` binary on small data: a scratch
//! directory, a tiny dataset cut from the embedded subset, runs with a time limit (a hang fails
//! the test instead of blocking it), and checkpoint comparisons by bits.
#![allow(dead_code)]

use simdnet::checkpoint;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SUBSET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/data/fashion-mnist-subset");

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_simdnet")
}

/// A fresh directory for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("simdnet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The first `count` items of an IDX file of the subset (`item` bytes each, `header` bytes of
/// header), written to `to` with the count patched.
fn cut(name: &str, header: usize, item: usize, count: usize, to: &Path) {
    let bytes = std::fs::read(Path::new(SUBSET).join(name)).unwrap();
    let mut out = bytes[..header].to_vec();
    out[4..8].copy_from_slice(&(count as u32).to_be_bytes());
    out.extend_from_slice(&bytes[header..header + count * item]);
    std::fs::write(to.join(name), out).unwrap();
}

/// A data directory with the first `train` training and `test` test images of the subset.
pub fn tiny_data(dir: &Path, train: usize, test: usize) -> PathBuf {
    let d = dir.join("data");
    std::fs::create_dir_all(&d).unwrap();
    cut("train-images-idx3-ubyte", 16, 784, train, &d);
    cut("train-labels-idx1-ubyte", 8, 1, train, &d);
    cut("t10k-images-idx3-ubyte", 16, 784, test, &d);
    cut("t10k-labels-idx1-ubyte", 8, 1, test, &d);
    d
}

/// A `simdnet` command with `args` and a clean environment.
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env_remove("SIMDNET_ISA")
        .env_remove("SIMDNET_DATA")
        .stdin(Stdio::null());
    c
}

/// Waits for `child` at most `limit`; kills it and panics if it is still running then.
pub fn wait_with_limit(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?} (a hang)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = child.wait().unwrap();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_end(&mut stdout).unwrap();
    }
    if let Some(mut s) = child.stderr.take() {
        s.read_to_end(&mut stderr).unwrap();
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Runs `simdnet args` to completion (at most 120 s). Output is collected through files so a
/// large output cannot fill a pipe while we wait.
pub fn run(args: &[&str]) -> Output {
    let dir = std::env::temp_dir();
    let tag = format!(
        "simdnet-out-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    )
    .replace(['(', ')'], "");
    let (o, e) = (dir.join(format!("{tag}.1")), dir.join(format!("{tag}.2")));
    let child = command(args)
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .spawn()
        .unwrap();
    let mut out = wait_with_limit(child, Duration::from_secs(120), &args.join(" "));
    out.stdout = std::fs::read(&o).unwrap();
    out.stderr = std::fs::read(&e).unwrap();
    let _ = std::fs::remove_file(o);
    let _ = std::fs::remove_file(e);
    out
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts the exit status and that stderr holds every needle and no panic.
pub fn expect(out: &Output, code: i32, needles: &[&str]) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let haystack = if code == 0 { &stdout } else { &stderr };
    for n in needles {
        assert!(haystack.contains(n), "missing '{n}' in:\n{haystack}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("internal error"), "{stderr}");
    (stdout, stderr)
}

/// Every tensor of a checkpoint as (name, bits), sorted by name.
pub fn tensor_bits(path: &Path) -> Vec<(String, Vec<u32>)> {
    let c = checkpoint::read(path).unwrap_or_else(|e| panic!("{e}"));
    let mut t: Vec<(String, Vec<u32>)> = c
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.data.iter().map(|v| v.to_bits()).collect()))
        .collect();
    t.sort();
    t
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Sends `signal` (`INT`, `TERM`, `KILL`) to `pid` with kill(1).
pub fn send(signal: &str, pid: u32) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

const QEMU: &str = "/usr/bin/qemu-aarch64-static";

/// Whether these tests are cross-run for aarch64 under qemu user mode (.cargo/config.toml).
pub fn emulated() -> bool {
    cfg!(target_arch = "aarch64") && Path::new(QEMU).exists()
}

/// Runs `simdnet args` with the environment's SIMDNET_ISA and SIMDNET_DATA removed and `env`
/// added; under qemu user mode the aarch64 child is started through qemu, as the cargo runner
/// starts the tests.
pub fn simdnet(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = if emulated() {
        let mut c = Command::new(QEMU);
        c.args(["-L", "/usr/aarch64-linux-gnu", bin()]);
        c
    } else {
        Command::new(bin())
    };
    cmd.args(args)
        .env_remove("SIMDNET_ISA")
        .env_remove("SIMDNET_DATA");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run simdnet")
}
