//! Nothing is allocated per training step or per evaluation batch in steady state: a counting
//! global allocator over whole team steps (every thread: forward, loss, backward, reduction,
//! SGD) and over evaluations of different sizes.
//!
//! One test only, so no other test of this binary allocates while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use simdnet::data::{self, Dataset};
use simdnet::kernels::Kernels;
use simdnet::lenet::{LeNet5, PARAM_LENS};
use simdnet::optim::{Sgd, SgdOptions};
use simdnet::train::step::with_team;

/// The system allocator, counting allocations (and reallocations) while `COUNTING` is set.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`'s
// contract; the counters are atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's `layout` obligations pass straight through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr` and `layout` came from `System`; the caller's obligations pass through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` (on any thread).
fn allocations(f: impl FnOnce()) -> usize {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCATIONS.load(Ordering::SeqCst)
}

fn subset(from: &Dataset, n: usize) -> Dataset {
    let size = from.rows * from.cols;
    Dataset {
        images: from.images[..n * size].to_vec(),
        labels: from.labels[..n].to_vec(),
        rows: from.rows,
        cols: from.cols,
    }
}

#[test]
fn steady_state_steps_and_evaluation_batches_allocate_nothing() {
    let kernels = Kernels::get();
    let (train, test) = data::embedded::splits().unwrap();
    let options = SgdOptions {
        momentum: 0.9,
        ..SgdOptions::new(0.01)
    };
    let (small, large) = (subset(&test, 100), subset(&test, 1000));
    for threads in [1, 2, 3] {
        let sgd = Sgd::new(&PARAM_LENS, options).unwrap();
        with_team(LeNet5::new(0), sgd, &train, kernels, 64, threads, |team| {
            let batch = |i: u32, len: u32| -> Vec<u32> { (i * 64..i * 64 + len).collect() };
            let batches: Vec<Vec<u32>> = (0..12).map(|i| batch(i, 64 - (i % 3) * 20)).collect();
            // Warm up: the first momentum step creates the buffers, the first evaluation
            // its per-batch sums.
            team.step(&batches[0])?;
            team.evaluate(&large)?;
            let mut losses = Vec::with_capacity(batches.len());
            let counted = allocations(|| {
                for b in &batches[1..] {
                    losses.push(team.step(b).unwrap());
                }
            });
            assert_eq!(
                counted, 0,
                "{threads} threads: {counted} allocations in 11 steps"
            );
            assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0));
            let (mut a, mut b) = (None, None);
            let counted = allocations(|| {
                a = Some(team.evaluate(&small).unwrap());
                b = Some(team.evaluate(&large).unwrap());
            });
            assert_eq!(
                counted, 0,
                "{threads} threads: {counted} allocations evaluating"
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!((a.total, b.total), (100, 1000));
            assert!(b.correct > 0 && b.loss.is_finite());
            Ok(())
        })
        .unwrap();
    }
    // The free function allocates per call (threads, workspaces), never per batch: the same
    // count for 100 images as for 1,000.
    let model = LeNet5::new(0);
    for threads in [1, 2] {
        let few = allocations(|| {
            simdnet::train::evaluate(&model, &small, kernels, threads);
        });
        let many = allocations(|| {
            simdnet::train::evaluate(&model, &large, kernels, threads);
        });
        assert_eq!(
            few, many,
            "{threads} threads: allocations grow with the batches"
        );
    }
}
