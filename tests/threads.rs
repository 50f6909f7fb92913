//! The same bits for any thread count: the trainer's checkpoints and losses with 1, 2 and 3
//! threads are identical, and the team's steps equal a plain sequential computation of the
//! same micro-batch recipe (forward and backward per micro-batch of `MICRO_BATCH` samples,
//! gradients added in micro-batch order, one SGD step), bit for bit.

use std::path::PathBuf;

use simdnet::backend::Targets;
use simdnet::checkpoint;
use simdnet::data::{self, Dataset, Source, Splits};
use simdnet::kernels::Kernels;
use simdnet::lenet::{LeNet5, CLASSES, PARAM_LENS};
use simdnet::loss::{CrossEntropyLoss, Reduction};
use simdnet::optim::{Sgd, SgdOptions};
use simdnet::train::step::{with_team, MICRO_BATCH};
use simdnet::train::{train, TrainConfig};

/// The first `n` images of the embedded training subset.
fn subset(n: usize) -> Dataset {
    let (train, _) = data::embedded::splits().unwrap();
    let size = train.rows * train.cols;
    Dataset {
        images: train.images[..n * size].to_vec(),
        labels: train.labels[..n].to_vec(),
        rows: train.rows,
        cols: train.cols,
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("simdnet-threads-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Two epochs of 700 samples in batches of 64: ten full batches (four micro-batches each) and
/// a short last one of 60 (three full micro-batches and one of 12), with momentum, shuffling
/// and a per-step log. Every thread count must give the same best and last checkpoints, the
/// same per-epoch training and test losses and the same logged losses; the checkpoints record
/// the thread count, the micro-batch size and the ISA.
#[test]
fn one_two_and_three_threads_give_identical_checkpoints_and_losses() {
    let (_, test) = data::embedded::splits().unwrap();
    let splits = Splits {
        train: Some(subset(700)),
        test,
        source: Source::Embedded,
        class_names: None,
    };
    let mut runs = Vec::new();
    for threads in [1, 2, 3] {
        let dir = scratch(&format!("ckpt{threads}"));
        let cfg = TrainConfig {
            epochs: 2,
            threads,
            out: dir.join("best.safetensors"),
            save_last: Some(dir.join("last.safetensors")),
            log_interval: 1,
            ..TrainConfig::default()
        };
        let mut log = Vec::new();
        let summary = train(&cfg, &splits, Kernels::get(), &mut log).unwrap();
        assert_eq!(summary.steps, 22);
        let best = LeNet5::load(&dir.join("best.safetensors")).unwrap();
        let ckpt = checkpoint::read(&dir.join("last.safetensors")).unwrap();
        let threads_text = threads.to_string();
        let micro_text = MICRO_BATCH.to_string();
        assert_eq!(ckpt.meta("threads"), Some(threads_text.as_str()));
        assert_eq!(ckpt.meta("micro_batch"), Some(micro_text.as_str()));
        assert_eq!(ckpt.meta("isa"), Some(Kernels::get().isa().name()));
        let last = LeNet5::load(&dir.join("last.safetensors")).unwrap();
        assert_eq!(bits(last.params()), bits(summary.last.params()));
        let losses: Vec<(u64, u64)> = summary
            .epochs
            .iter()
            .map(|e| (e.train_loss.to_bits(), e.test.loss.to_bits()))
            .collect();
        let log: Vec<String> = String::from_utf8(log)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("Train Epoch"))
            .map(String::from)
            .collect();
        assert_eq!(log.len(), 22);
        runs.push((
            threads,
            bits(best.params()),
            bits(last.params()),
            losses,
            log,
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (_, best1, last1, losses1, log1) = &runs[0];
    for (threads, best, last, losses, log) in &runs[1..] {
        assert!(
            best == best1,
            "{threads} threads: the best checkpoint differs from 1 thread's"
        );
        assert!(
            last == last1,
            "{threads} threads: the last checkpoint differs from 1 thread's"
        );
        assert_eq!(losses, losses1, "{threads} threads: epoch losses differ");
        assert_eq!(log, log1, "{threads} threads: logged losses differ");
    }
    // The run trained: most weights moved away from the initialisation (measured: 48,601 of
    // 61,706; fc1 weights fed by pooled pixels that stay 0 get no gradient).
    let init = bits(LeNet5::new(0).params());
    let changed = init.iter().zip(last1).filter(|(a, b)| a != b).count();
    assert!(changed > 40_000, "only {changed} weights changed");
}

/// The recipe of one step written plainly, on one thread and one workspace: micro-batches of
/// `MICRO_BATCH`, each loss a sum with incoming gradient `1/N`, gradients added in order, one
/// whole-vector SGD step. Returns the mean loss.
fn reference_step(
    model: &mut LeNet5,
    sgd: &mut Sgd,
    data: &Dataset,
    indices: &[u32],
    kernels: &Kernels,
) -> f64 {
    let criterion = CrossEntropyLoss::new(None, -100, Reduction::Sum, 0.0).unwrap();
    let mut ws = model.workspace(kernels, MICRO_BATCH).unwrap();
    let n = indices.len();
    let mut acc: Vec<f32> = Vec::new();
    let mut loss = 0.0f64;
    for chunk in indices.chunks(MICRO_BATCH) {
        let rows = chunk.len();
        ws.load_images(chunk.iter().map(|&i| data.image(i as usize)))
            .unwrap();
        let targets: Vec<i64> = chunk
            .iter()
            .map(|&i| i64::from(data.labels[i as usize]))
            .collect();
        model.forward(kernels, &mut ws, rows).unwrap();
        let (logits, grad) = ws.logits_and_grad(rows);
        let l = criterion
            .forward_backward_scaled(
                kernels,
                logits,
                CLASSES,
                Targets::Indices(&targets),
                1.0 / n as f32,
                grad,
            )
            .unwrap();
        model.backward(kernels, &mut ws, rows).unwrap();
        loss += f64::from(l);
        if acc.is_empty() {
            acc = ws.grads().to_vec();
        } else {
            for (a, &g) in acc.iter_mut().zip(ws.grads()) {
                *a += g;
            }
        }
    }
    sgd.step(kernels, model.params_mut(), &acc).unwrap();
    loss / n as f64
}

/// Batches of 1, 15, 16, 17, 40, 64, 33 and 400 samples (400 runs in several waves of
/// micro-batch buffers), with momentum and weight decay, on 1, 2, 3 and 5 threads: every
/// step's loss and weights equal the plain reference's, bit for bit, and so do the momentum
/// buffers and the step count at the end.
#[test]
fn team_steps_equal_the_sequential_reference_bit_for_bit() {
    let kernels = Kernels::get();
    let data = subset(600);
    let sizes = [1usize, 15, 16, 17, 40, 64, 33, 400];
    let options = SgdOptions {
        momentum: 0.9,
        weight_decay: 1e-3,
        ..SgdOptions::new(0.05)
    };
    let batches: Vec<Vec<u32>> = sizes
        .iter()
        .scan(0u32, |next, &size| {
            let b: Vec<u32> = (0..size as u32).map(|i| (*next + i * 7) % 600).collect();
            *next += size as u32;
            Some(b)
        })
        .collect();
    let mut model = LeNet5::new(3);
    let mut sgd = Sgd::new(&PARAM_LENS, options).unwrap();
    let mut expected = Vec::new();
    for b in &batches {
        let loss = reference_step(&mut model, &mut sgd, &data, b, kernels);
        expected.push((loss.to_bits(), bits(model.params())));
    }
    for threads in [1, 2, 3, 5] {
        let model = LeNet5::new(3);
        let fresh = Sgd::new(&PARAM_LENS, options).unwrap();
        let (got, last, opt) = with_team(model, fresh, &data, kernels, 400, threads, |team| {
            let mut got = Vec::new();
            for b in &batches {
                let loss = team.step(b)?;
                got.push((loss.to_bits(), bits(team.model().params())));
            }
            Ok(got)
        })
        .unwrap();
        for (step, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!(
                g == e,
                "{threads} threads, step {step} (batch of {}): differs from the reference",
                sizes[step]
            );
        }
        assert_eq!(bits(last.params()), expected.last().unwrap().1);
        assert_eq!(opt.steps(), sgd.steps());
        for i in 0..PARAM_LENS.len() {
            assert_eq!(
                opt.momentum_buffer(i).map(bits),
                sgd.momentum_buffer(i).map(bits),
                "{threads} threads: momentum buffer {i}"
            );
        }
    }
}

/// A step that fails (a sample index beyond the set) is an error, not a hang or a panic, and
/// leaves the weights as they were; the team keeps working. Empty and oversized batches are
/// refused.
#[test]
fn a_failed_step_is_an_error_and_changes_nothing() {
    let kernels = Kernels::get();
    let data = subset(100);
    let sgd = Sgd::new(&PARAM_LENS, SgdOptions::new(0.1)).unwrap();
    with_team(LeNet5::new(0), sgd, &data, kernels, 32, 2, |team| {
        let before = bits(team.model().params());
        let mut bad: Vec<u32> = (0..32).collect();
        bad[20] = 5000;
        let e = team.step(&bad).unwrap_err().to_string();
        assert!(e.contains("internal error in training thread"), "{e}");
        assert_eq!(bits(team.model().params()), before);
        assert_eq!(team.optimizer().steps(), 0);
        assert!(team.step(&[]).is_err());
        assert!(team.step(&[0; 33]).is_err());
        let loss = team.step(&(0..32).collect::<Vec<u32>>())?;
        assert!(loss.is_finite() && loss > 0.0);
        assert_ne!(bits(team.model().params()), before);
        assert_eq!(team.optimizer().steps(), 1);
        Ok(())
    })
    .unwrap();
}

/// Evaluation takes the same batches in the same order of sums for any thread count, on its
/// own threads or on the training team's: identical results, loss bits included.
#[test]
fn evaluation_has_the_same_bits_on_any_thread_count() {
    let kernels = Kernels::get();
    let (train, test) = data::embedded::splits().unwrap();
    let model = LeNet5::new(5);
    let reference = simdnet::train::evaluate(&model, &test, kernels, 1);
    assert_eq!(reference.total, 1000);
    for threads in [2, 3, 5] {
        let e = simdnet::train::evaluate(&model, &test, kernels, threads);
        assert_eq!(e, reference);
        assert_eq!(e.loss.to_bits(), reference.loss.to_bits());
    }
    for threads in [1, 2, 3] {
        let sgd = Sgd::new(&PARAM_LENS, SgdOptions::new(0.1)).unwrap();
        let e = with_team(model.clone(), sgd, &train, kernels, 64, threads, |team| {
            team.evaluate(&test)
        })
        .unwrap()
        .0;
        assert_eq!(e, reference, "team of {threads}");
        assert_eq!(e.loss.to_bits(), reference.loss.to_bits());
    }
}
