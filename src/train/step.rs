//! The parallel training step: persistent threads, forward/backward on slices of a batch, the
//! gradient reduction and the SGD step.
//!
//! [`with_team`] starts the threads once (`std::thread::scope`), hands the caller a [`Team`]
//! whose [`Team::step`] trains on one batch, and stops the threads when the caller returns,
//! panics or fails. Threads meet at barriers twice per step, so a step allocates nothing.
//!
//! Each batch is split into contiguous slices, one per thread. Every thread runs forward, loss
//! and backward on its slice with its own activations and gradients; its loss is the slice's
//! *sum* and its incoming gradient `1/N` for a batch of `N`, so the threads' gradients add up
//! to the gradient of the whole batch's mean loss. They are added in thread order, then one
//! SGD step updates the weights, unless the loss is not finite: then the weights stay as they
//! were and the caller decides.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex, RwLock};

use crate::backend::Targets;
use crate::data::Dataset;
use crate::lenet::{LeNet5, Workspace, CLASSES};
use crate::loss::{CrossEntropyLoss, Reduction};
use crate::optim::Sgd;
use crate::{Error, Result};
use simdnet_kernels::Kernels;

/// One thread's share of a training step.
struct Slot {
    ws: Workspace<f32>,
    targets: Vec<i64>,
    /// Rows in this thread's slice of the current batch.
    rows: usize,
    /// Sum of the slice's losses.
    loss_sum: f32,
    error: Option<Error>,
}

/// What the threads share during a run.
struct Shared<'a> {
    model: RwLock<LeNet5>,
    sgd: Mutex<Sgd>,
    /// The sample indices of the current batch.
    batch: RwLock<Vec<u32>>,
    slots: Vec<Mutex<Slot>>,
    start: Barrier,
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

/// Starts `threads` threads (the caller's included) that train `model` with `sgd` on batches
/// of at most `batch_size` samples of `train`, runs `body` with them, and returns its result
/// with the final weights and optimizer. The threads stop when `body` returns or panics.
pub fn with_team<R>(
    model: LeNet5,
    sgd: Sgd,
    train: &Dataset,
    kernels: &Kernels,
    batch_size: usize,
    threads: usize,
    body: impl FnOnce(&mut Team<'_, '_>) -> Result<R>,
) -> Result<(R, LeNet5, Sgd)> {
    let batch_size = batch_size.max(1);
    let threads = threads.clamp(1, batch_size);
    let capacity = batch_size.div_ceil(threads);
    let slots = (0..threads)
        .map(|_| {
            Ok(Mutex::new(Slot {
                ws: model.workspace(kernels, capacity)?,
                targets: Vec::with_capacity(capacity),
                rows: 0,
                loss_sum: 0.0,
                error: None,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    let shared = Shared {
        model: RwLock::new(model),
        sgd: Mutex::new(sgd),
        batch: RwLock::new(Vec::with_capacity(batch_size)),
        slots,
        start: Barrier::new(threads),
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
    let model = shared.model.into_inner().unwrap_or_else(|p| p.into_inner());
    let sgd = shared.sgd.into_inner().unwrap_or_else(|p| p.into_inner());
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

impl Team<'_, '_> {
    /// One optimizer step on the samples `indices` of the training set (at most the batch size
    /// given to [`with_team`]); returns the batch's mean loss. A loss that is not finite leaves
    /// the weights and the optimizer as they were.
    pub fn step(&mut self, indices: &[u32]) -> Result<f64> {
        if indices.is_empty() {
            return Err(Error::new("a training step needs at least one sample"));
        }
        let loss = self.shared.forward_backward(indices)?;
        if loss.is_finite() {
            let shared = self.shared;
            let mut model = shared.model.write().unwrap_or_else(|p| p.into_inner());
            let grads = lock(&shared.slots[0]);
            lock(&shared.sgd).step(shared.kernels, model.params_mut(), grads.ws.grads())?;
        }
        Ok(loss)
    }

    /// A copy of the current weights.
    pub fn model(&self) -> LeNet5 {
        self.shared
            .model
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A copy of the optimizer as it is now (momentum buffers and step count).
    pub fn optimizer(&self) -> Sgd {
        lock(&self.shared.sgd).clone()
    }

    /// Threads working on each step (the caller's included).
    pub fn threads(&self) -> usize {
        self.shared.slots.len()
    }
}

impl Shared<'_> {
    /// Thread `t`'s part of a step: forward, loss and backward on its slice of the batch.
    fn work(&self, t: usize) {
        let model = self.model.read().unwrap_or_else(|p| p.into_inner());
        let batch = self.batch.read().unwrap_or_else(|p| p.into_inner());
        let threads = self.slots.len();
        let n = batch.len();
        let (lo, hi) = (t * n / threads, (t + 1) * n / threads);
        let mut slot = lock(&self.slots[t]);
        let slot = &mut *slot;
        slot.rows = hi - lo;
        slot.loss_sum = 0.0;
        if slot.rows == 0 {
            return;
        }
        let result = (|| -> Result<f32> {
            let indices = &batch[lo..hi];
            slot.ws
                .load_images(indices.iter().map(|&i| self.train.image(i as usize)))?;
            slot.targets.clear();
            slot.targets.extend(
                indices
                    .iter()
                    .map(|&i| i64::from(self.train.labels[i as usize])),
            );
            model.forward(self.kernels, &mut slot.ws, slot.rows)?;
            let (logits, grad) = slot.ws.logits_and_grad(slot.rows);
            let scale = 1.0 / n as f32;
            let loss = self.criterion.forward_backward_scaled(
                self.kernels,
                logits,
                CLASSES,
                Targets::Indices(&slot.targets),
                scale,
                grad,
            )?;
            model.backward(self.kernels, &mut slot.ws, slot.rows)?;
            Ok(loss)
        })();
        match result {
            Ok(loss) => slot.loss_sum = loss,
            Err(e) => slot.error = Some(e),
        }
    }

    /// [`Shared::work`], with a panic turned into the thread's error: every thread must reach
    /// the barrier, or the others would wait forever.
    fn work_guarded(&self, t: usize) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.work(t)));
        if let Err(panic) = outcome {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            lock(&self.slots[t]).error = Some(Error::new(format!(
                "internal error in training thread {t}: {what}"
            )));
        }
    }

    /// Runs thread `t` (t > 0) until told to stop.
    fn worker(&self, t: usize) {
        loop {
            self.start.wait();
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            self.work_guarded(t);
            self.done.wait();
        }
    }

    /// Forward and backward over `indices` (all threads); returns the batch's mean loss, with
    /// the summed gradient in slot 0's workspace.
    fn forward_backward(&self, indices: &[u32]) -> Result<f64> {
        {
            let mut batch = self.batch.write().unwrap_or_else(|p| p.into_inner());
            batch.clear();
            batch.extend_from_slice(indices);
        }
        self.start.wait();
        self.work_guarded(0);
        self.done.wait();
        let mut first = lock(&self.slots[0]);
        let mut loss_sum = 0.0f64;
        let first = &mut *first;
        if let Some(e) = first.error.take() {
            return Err(e);
        }
        loss_sum += f64::from(first.loss_sum);
        // Fixed order: slot 0 accumulates slots 1, 2, ... in turn.
        for slot in &self.slots[1..] {
            let mut slot = lock(slot);
            if let Some(e) = slot.error.take() {
                return Err(e);
            }
            if slot.rows == 0 {
                continue;
            }
            loss_sum += f64::from(slot.loss_sum);
            for (acc, g) in first.ws.grads_mut().iter_mut().zip(slot.ws.grads()) {
                *acc += *g;
            }
        }
        Ok(loss_sum / indices.len() as f64)
    }
}
