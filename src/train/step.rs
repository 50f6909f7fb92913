//! The parallel training step: persistent threads, micro-batches, the gradient reduction and
//! the SGD step, giving the same bits for any thread count.
//!
//! [`with_team`] starts the threads once (`std::thread::scope`), hands the caller a [`Team`]
//! whose [`Team::step`] trains on one batch, and stops the threads when the caller returns,
//! panics or fails. Every buffer is allocated when the team starts, so a step allocates
//! nothing (`tests/allocations.rs` counts). Two barriers per step: one before the reduction
//! (every micro-batch gradient is ready) and the start of the next job.
//!
//! ## One step, and why its bits do not depend on the thread count
//!
//! 1. The batch of `N` samples is cut into micro-batches of [`MICRO_BATCH`] samples (the last
//!    may be shorter); the size is a constant, so the cut is the same for any thread count.
//!    Thread `t` of `T` takes micro-batches `t, t + T, …`, with its own copy of the weights and
//!    its own activations. Each micro-batch's forward, loss and backward depend only on its
//!    samples and the weights, so where it runs changes nothing. Its loss is its samples' *sum*
//!    and its incoming gradient `1/N`, so the micro-batch gradients add up to the gradient of
//!    the whole batch's mean loss.
//! 2. After a barrier, the flat parameter vector is cut into one range per thread, and thread
//!    `t` adds, for its range, the micro-batch gradients in micro-batch order:
//!    `((g0 + g1) + g2) + …`, element by element. Each element's sum has the same operands in
//!    the same order whatever the ranges, so the reduced gradient has the same bits.
//! 3. Every thread adds the micro-batch losses in micro-batch order (f64) and, if the sum is
//!    finite and no thread failed, runs SGD on its range ([`SgdPart`]: the kernel works element
//!    by element, so any split gives the bits of one whole step). A loss that is not finite
//!    leaves the weights and the optimizer as they were.
//! 4. The next job (a step or an evaluation) starts at a barrier every thread reaches only
//!    after its SGD range, and begins by copying every range into each thread's weights; so a
//!    step ends without waiting for the other threads, and [`Team::model`] and
//!    [`Team::optimizer`] wait for the threads to finish the last step.
//!
//! The micro-batch gradients of a batch are kept in at most `MAX_BUFFERS` (16) buffers: a batch
//! with more micro-batches runs in waves, and each wave's gradients are added to the running
//! sum in the same order, which changes no bit. The reduction walks its range in blocks of
//! `REDUCE_BLOCK` (1,024 floats), so each block's running sum stays in L1 cache while every micro-batch's
//! gradient streams past it once.

use std::ops::{Deref, Range};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use super::eval::{combine, Evaluation, Tally};

use crate::backend::Targets;
use crate::data::Dataset;
use crate::lenet::{LeNet5, Workspace, CLASSES, NUM_PARAMS};
use crate::loss::{CrossEntropyLoss, Reduction};
use crate::optim::{Sgd, SgdPart};
use crate::{Error, Result};
use simdnet_kernels::Kernels;

/// Samples per micro-batch: the unit of work a thread takes, fixed so that a seed gives the
/// same bits for any thread count (checkpoints record it).
pub const MICRO_BATCH: usize = 16;

/// The most micro-batch gradients kept at once (a larger batch runs in waves).
const MAX_BUFFERS: usize = 16;

/// Floats per block of the reduction (4 KiB: the running sum of a block stays in L1 cache
/// while each micro-batch's gradient streams past it once).
const REDUCE_BLOCK: usize = 1024;

/// Parameter ranges start on multiples of this many floats (64 bytes, a cache line).
const RANGE_ALIGN: usize = 16;

/// One thread's own state: a copy of the weights, the buffers of a micro-batch and its
/// evaluation results.
struct Lane {
    model: LeNet5,
    ws: Workspace<f32>,
    targets: Vec<i64>,
    tally: Tally,
}

/// A lane's evaluation results, borrowed for [`combine`].
struct TallyOf<'g>(MutexGuard<'g, Lane>);

impl Deref for TallyOf<'_> {
    type Target = Tally;
    fn deref(&self) -> &Tally {
        &self.0.tally
    }
}

/// What the threads do after the start barrier.
const JOB_STEP: usize = 0;
const JOB_EVALUATE: usize = 1;

/// What one micro-batch of the current wave left: its gradients and the sum of its losses.
struct Micro {
    grads: Vec<f32>,
    loss: f32,
}

/// One thread's range of the flat parameters: the weights themselves (the copy every lane
/// refreshes from), the reduced gradient and the optimizer's part.
struct Part {
    params: Vec<f32>,
    grad: Vec<f32>,
    sgd: SgdPart<f32>,
}

/// What the threads share during a run.
struct Shared<'a> {
    /// The optimizer's settings; its state lives in the parts.
    sgd: Sgd,
    /// The most samples a step takes.
    batch_size: usize,
    /// The sample indices of the current batch.
    batch: RwLock<Vec<u32>>,
    lanes: Vec<Mutex<Lane>>,
    micro: Vec<RwLock<Micro>>,
    parts: Vec<RwLock<Part>>,
    errors: Vec<Mutex<Option<Error>>>,
    /// Counts the jobs (steps and evaluations) given to the threads.
    job_id: AtomicU64,
    /// The id of the last job in which a thread failed.
    failed: AtomicU64,
    /// The id of the last job each thread has finished.
    finished: Vec<AtomicU64>,
    /// [`JOB_STEP`] or [`JOB_EVALUATE`].
    job: AtomicUsize,
    /// The set [`Team::evaluate`] evaluates.
    eval_set: RwLock<Option<&'a Dataset>>,
    start: Barrier,
    reduce: Barrier,
    done: Barrier,
    stop: AtomicBool,
    train: &'a Dataset,
    kernels: &'a Kernels,
    criterion: CrossEntropyLoss<f32>,
}

/// The running threads of [`with_team`]: trains on one batch at a time.
pub struct Team<'s, 'a> {
    shared: &'s Shared<'a>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

/// `len` elements cut into `parts` contiguous ranges, each starting on a multiple of
/// [`RANGE_ALIGN`].
fn ranges(len: usize, parts: usize) -> Vec<Range<usize>> {
    let bound = |i: usize| {
        if i == parts {
            len
        } else {
            (i * len / parts) / RANGE_ALIGN * RANGE_ALIGN
        }
    };
    (0..parts).map(|i| bound(i)..bound(i + 1)).collect()
}

/// How a team splits the work, as checkpoints record it: the thread count actually used, the
/// micro-batch size and the kernel ISA (together they decide the bits of a run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    pub threads: usize,
    pub micro_batch: usize,
    pub isa: simdnet_kernels::Isa,
}

impl Setup {
    /// What [`with_team`] does with `threads` threads and batches of `batch_size`: at most
    /// one thread per sample, and at least one.
    pub fn new(threads: usize, batch_size: usize, kernels: &Kernels) -> Setup {
        Setup {
            threads: threads.clamp(1, batch_size.max(1)),
            micro_batch: MICRO_BATCH,
            isa: kernels.isa(),
        }
    }

    /// The checkpoint metadata keys `threads`, `micro_batch` and `isa`.
    pub fn metadata(&self) -> [(String, String); 3] {
        [
            ("threads".into(), self.threads.to_string()),
            ("micro_batch".into(), self.micro_batch.to_string()),
            ("isa".into(), self.isa.name().into()),
        ]
    }
}

/// Starts `threads` threads (the caller's included) that train `model` with `sgd` on batches
/// of at most `batch_size` samples of `train`, runs `body` with them, and returns its result
/// with the final weights and optimizer. The threads stop when `body` returns or panics.
pub fn with_team<'a, R>(
    model: LeNet5,
    sgd: Sgd,
    train: &'a Dataset,
    kernels: &'a Kernels,
    batch_size: usize,
    threads: usize,
    body: impl FnOnce(&mut Team<'_, 'a>) -> Result<R>,
) -> Result<(R, LeNet5, Sgd)> {
    let batch_size = batch_size.max(1);
    let threads = Setup::new(threads, batch_size, kernels).threads;
    let micro_per_batch = batch_size.div_ceil(MICRO_BATCH);
    let buffers = micro_per_batch.min(MAX_BUFFERS);
    let ranges = ranges(NUM_PARAMS, threads);
    let sgd_parts = sgd.split(&ranges)?;
    let parts = ranges
        .iter()
        .zip(sgd_parts)
        .map(|(r, part)| {
            RwLock::new(Part {
                params: model.params()[r.clone()].to_vec(),
                grad: vec![0.0; r.len()],
                sgd: part,
            })
        })
        .collect();
    let lanes = (0..threads)
        .map(|_| {
            Ok(Mutex::new(Lane {
                ws: model.workspace(kernels, MICRO_BATCH)?,
                model: model.clone(),
                targets: Vec::with_capacity(MICRO_BATCH),
                tally: Tally::new(),
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    let shared = Shared {
        sgd,
        batch_size,
        batch: RwLock::new(Vec::with_capacity(batch_size)),
        lanes,
        micro: (0..buffers)
            .map(|_| {
                RwLock::new(Micro {
                    grads: vec![0.0; NUM_PARAMS],
                    loss: 0.0,
                })
            })
            .collect(),
        parts,
        errors: (0..threads).map(|_| Mutex::new(None)).collect(),
        job_id: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        finished: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        job: AtomicUsize::new(JOB_STEP),
        eval_set: RwLock::new(None),
        start: Barrier::new(threads),
        reduce: Barrier::new(threads),
        done: Barrier::new(threads),
        stop: AtomicBool::new(false),
        train,
        kernels,
        criterion: CrossEntropyLoss::new(None, -100, Reduction::Sum, 0.0)?,
    };
    let result = std::thread::scope(|scope| {
        for t in 1..threads {
            let shared = &shared;
            scope.spawn(move || shared.worker(t));
        }
        let _release = Release(&shared);
        body(&mut Team { shared: &shared })
    })?;
    let team = Team { shared: &shared };
    let (model, sgd) = (team.model(), team.optimizer());
    Ok((result, model, sgd))
}

/// Stops the workers when dropped, whether the body returned or panicked.
struct Release<'s, 'a>(&'s Shared<'a>);

impl Drop for Release<'_, '_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Release);
        self.0.start.wait();
    }
}

impl<'a> Team<'_, 'a> {
    /// One optimizer step on the samples `indices` of the training set (at most the batch size
    /// given to [`with_team`]); returns the batch's mean loss. A loss that is not finite leaves
    /// the weights and the optimizer as they were.
    pub fn step(&mut self, indices: &[u32]) -> Result<f64> {
        let shared = self.shared;
        {
            let mut batch = write(&shared.batch);
            if indices.is_empty() || indices.len() > shared.batch_size {
                return Err(Error::new(format!(
                    "a training step takes 1 to {} samples, got {}",
                    shared.batch_size,
                    indices.len()
                )));
            }
            batch.clear();
            batch.extend_from_slice(indices);
        }
        shared.job.store(JOB_STEP, Ordering::Relaxed);
        shared.job_id.fetch_add(1, Ordering::Release);
        shared.start.wait();
        let loss = shared.run_step(0);
        shared.take_error()?;
        Ok(loss)
    }

    /// Evaluates the current weights on `test` with every thread (see [`super::evaluate`]:
    /// the same batches and the same bits).
    pub fn evaluate(&mut self, test: &'a Dataset) -> Result<Evaluation> {
        let shared = self.shared;
        *write(&shared.eval_set) = Some(test);
        shared.job.store(JOB_EVALUATE, Ordering::Relaxed);
        shared.job_id.fetch_add(1, Ordering::Release);
        shared.start.wait();
        shared.run_evaluation(0);
        shared.take_error()?;
        let threads = shared.lanes.len();
        Ok(combine(threads, test.len(), |t| {
            TallyOf(lock(&shared.lanes[t]))
        }))
    }

    /// A copy of the current weights.
    pub fn model(&self) -> LeNet5 {
        self.shared.wait_idle();
        let mut params = Vec::with_capacity(NUM_PARAMS);
        for part in &self.shared.parts {
            params.extend_from_slice(&read(part).params);
        }
        LeNet5::from_params(params).expect("the parts cover every parameter")
    }

    /// A copy of the optimizer as it is now (momentum buffers and step count).
    pub fn optimizer(&self) -> Sgd {
        self.shared.wait_idle();
        let mut sgd = self.shared.sgd.clone();
        for part in &self.shared.parts {
            sgd.absorb(&read(part).sgd)
                .expect("the parts come from this optimizer");
        }
        sgd
    }

    /// Threads working on each step (the caller's included).
    pub fn threads(&self) -> usize {
        self.shared.lanes.len()
    }
}

impl Shared<'_> {
    /// Runs thread `t` (t > 0) until told to stop.
    fn worker(&self, t: usize) {
        loop {
            self.start.wait();
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            match self.job.load(Ordering::Relaxed) {
                JOB_EVALUATE => self.run_evaluation(t),
                _ => {
                    self.run_step(t);
                }
            }
        }
    }

    /// Waits until every thread has finished the last job (a step does not wait for the
    /// other threads' SGD ranges: the next job's start barrier does).
    fn wait_idle(&self) {
        let id = self.job_id.load(Ordering::Acquire);
        for finished in &self.finished {
            while finished.load(Ordering::Acquire) < id {
                std::thread::yield_now();
            }
        }
    }

    /// The first error a thread recorded in the last job, if any (all are cleared).
    fn take_error(&self) -> Result<()> {
        let mut first = None;
        for slot in &self.errors {
            let e = lock(slot).take();
            first = first.or(e);
        }
        first.map_or(Ok(()), Err)
    }

    /// Thread `t`'s part of an evaluation: batches `t, t + T, …` into its tally.
    fn run_evaluation(&self, t: usize) {
        let id = self.job_id.load(Ordering::Acquire);
        self.guarded(t, id, || {
            self.refresh(t)?;
            let test = read(&self.eval_set).expect("set before the job starts");
            let mut lane = lock(&self.lanes[t]);
            let Lane {
                model, ws, tally, ..
            } = &mut *lane;
            tally.run(model, ws, test, self.kernels, (t, self.lanes.len()))
        });
        self.finished[t].store(id, Ordering::Release);
        self.done.wait();
    }

    /// Thread `t`'s whole part of a step (every thread passes the same barriers, whatever
    /// fails); returns the batch's mean loss.
    fn run_step(&self, t: usize) -> f64 {
        let threads = self.lanes.len();
        let n = read(&self.batch).len();
        let micro = n.div_ceil(MICRO_BATCH);
        let per_wave = self.micro.len();
        let id = self.job_id.load(Ordering::Acquire);
        let mut loss = 0.0f64;
        self.guarded(t, id, || self.refresh(t));
        for first in (0..micro).step_by(per_wave) {
            let wave = first..(first + per_wave).min(micro);
            for j in wave.clone().skip(t).step_by(threads) {
                self.guarded(t, id, || self.micro_batch(t, j, j - first, n));
            }
            self.reduce.wait();
            self.guarded(t, id, || {
                self.reduce_wave(t, wave.len(), first == 0, &mut loss);
                Ok(())
            });
            if wave.end < micro {
                // The next wave overwrites the gradients this one just read.
                self.reduce.wait();
            }
        }
        // Every failure of phase A was recorded before the barrier above.
        if loss.is_finite() && self.failed.load(Ordering::Acquire) != id {
            self.guarded(t, id, || {
                let mut part = write(&self.parts[t]);
                let Part { params, grad, sgd } = &mut *part;
                sgd.step(self.kernels, params, grad)
            });
        }
        self.finished[t].store(id, Ordering::Release);
        loss / n as f64
    }

    /// Runs `f`, turning an error or a panic into thread `t`'s error: every thread must reach
    /// the barriers, or the others would wait forever.
    fn guarded(&self, t: usize, id: u64, f: impl FnOnce() -> Result<()>) {
        let error = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Error::new(format!("internal error in training thread {t}: {what}"))
            }
        };
        self.failed.store(id, Ordering::Release);
        lock(&self.errors[t]).get_or_insert(error);
    }

    /// Copies every range of the weights into thread `t`'s copy.
    fn refresh(&self, t: usize) -> Result<()> {
        let mut lane = lock(&self.lanes[t]);
        let params = lane.model.params_mut();
        for part in &self.parts {
            let part = read(part);
            let r = part.sgd.range();
            params[r].copy_from_slice(&part.params);
        }
        Ok(())
    }

    /// Forward, loss and backward of micro-batch `j` of a batch of `n` on thread `t`, its
    /// gradients and loss left in buffer `slot`.
    fn micro_batch(&self, t: usize, j: usize, slot: usize, n: usize) -> Result<()> {
        let batch = read(&self.batch);
        let indices = &batch[j * MICRO_BATCH..((j + 1) * MICRO_BATCH).min(n)];
        let rows = indices.len();
        let mut lane = lock(&self.lanes[t]);
        let Lane {
            model, ws, targets, ..
        } = &mut *lane;
        ws.load_images(indices.iter().map(|&i| self.train.image(i as usize)))?;
        targets.clear();
        targets.extend(
            indices
                .iter()
                .map(|&i| i64::from(self.train.labels[i as usize])),
        );
        model.forward(self.kernels, ws, rows)?;
        let (logits, grad) = ws.logits_and_grad(rows);
        let loss = self.criterion.forward_backward_scaled(
            self.kernels,
            logits,
            CLASSES,
            Targets::Indices(targets),
            1.0 / n as f32,
            grad,
        )?;
        model.backward(self.kernels, ws, rows)?;
        let mut micro = write(&self.micro[slot]);
        ws.swap_grads(&mut micro.grads)?;
        micro.loss = loss;
        Ok(())
    }

    /// Adds the gradients in buffers `0..slots` (one wave's micro-batches), in order, to
    /// thread `t`'s range of the reduced gradient (`first`: the batch's first wave, which
    /// starts the sum), a block at a time; adds their losses to `loss`, in the same order.
    fn reduce_wave(&self, t: usize, slots: usize, first: bool, loss: &mut f64) {
        let micro: [Option<RwLockReadGuard<'_, Micro>>; MAX_BUFFERS] =
            std::array::from_fn(|s| (s < slots).then(|| read(&self.micro[s])));
        let micro = micro.iter().flatten();
        for m in micro.clone() {
            *loss += f64::from(m.loss);
        }
        let mut part = write(&self.parts[t]);
        let offset = part.sgd.range().start;
        let acc = &mut part.grad[..];
        for start in (0..acc.len()).step_by(REDUCE_BLOCK) {
            let r = start..(start + REDUCE_BLOCK).min(acc.len());
            let acc = &mut acc[r.clone()];
            let r = offset + r.start..offset + r.end;
            for (k, m) in micro.clone().enumerate() {
                let g = &m.grads[r.clone()];
                if first && k == 0 {
                    acc.copy_from_slice(g);
                } else {
                    for (a, &b) in acc.iter_mut().zip(g) {
                        *a += b;
                    }
                }
            }
        }
    }
}
