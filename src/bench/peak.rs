//! The FMA peak of one ISA: independent multiply-add chains held in registers, on one thread
//! and on several at once.
//!
//! Each chain is `acc = acc * MUL + ADD` on a full vector; there are enough chains per thread
//! (12 vectors on AVX2's 16 registers, 16 on AVX-512 and NEON, 64 lanes on the scalar ISA) to
//! cover the multiply-add latency times the number of units on current cores, so the loop is
//! bound by throughput. A multiply-add counts as two
//! floating-point operations per lane. The scalar ISA's loop is plain Rust on an array of
//! accumulators, built like the scalar kernel table for the baseline target (on x86-64: SSE2,
//! which has no FMA instruction, so a multiply and an add, and which the compiler may vectorise):
//! it is the ceiling of what scalar-table code can reach, not of one scalar lane.

use super::timing::measure_once;
use simdnet_kernels::Isa;
use std::sync::Barrier;
use std::time::Duration;

/// The multiplier and addend of every chain: the accumulators decay from their start (1 to 64)
/// towards `ADD / (1 - MUL)` (about 0.08), so they never overflow nor become subnormal.
const MUL: f32 = 0.999_999_9;
const ADD: f32 = 1e-8;

/// Independent chains per thread on AVX-512 and NEON.
const CHAINS: usize = 16;
/// Independent chains per thread on AVX2 (16 registers: 12 accumulators and the two constants).
const AVX2_CHAINS: usize = 12;
/// Independent chains (lanes) per thread on the scalar ISA: sixteen 4-lane vectors once the
/// compiler vectorises them, enough to cover a multiply's and an add's latency.
const SCALAR_CHAINS: usize = 64;

/// One ISA's peak.
#[derive(Clone, Debug, PartialEq)]
pub struct Peak {
    pub isa: Isa,
    /// Lanes per vector (1 for the scalar ISA, whose compiled width is the compiler's choice).
    pub lanes: usize,
    /// Independent chains per thread.
    pub chains: usize,
    /// GFLOP/s on one thread.
    pub single: f64,
    /// GFLOP/s on `threads` threads at once.
    pub multi: f64,
    pub threads: usize,
}

/// Lanes of one vector of `isa`.
pub fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Scalar => 1,
        Isa::Avx2 => 8,
        Isa::Avx512 => 16,
        Isa::Neon => 4,
    }
}

/// Independent chains per thread on `isa`.
pub fn chains(isa: Isa) -> usize {
    match isa {
        Isa::Scalar => SCALAR_CHAINS,
        Isa::Avx2 => AVX2_CHAINS,
        Isa::Avx512 | Isa::Neon => CHAINS,
    }
}

/// Floating-point operations of `steps` steps of every chain of one thread.
pub fn flops(isa: Isa, steps: u64) -> u64 {
    steps * (chains(isa) * lanes(isa) * 2) as u64
}

/// The peak of `isa` on one thread and on `threads` threads, each measured for about `budget`;
/// `None` when this CPU lacks `isa`.
pub fn measure(isa: Isa, threads: usize, budget: Duration) -> Option<Peak> {
    if !isa.is_supported() {
        return None;
    }
    let threads = threads.max(1);
    let steps = calibrate(isa, budget);
    let single = best_rate(isa, 1, steps, budget);
    let multi = if threads == 1 {
        single
    } else {
        best_rate(isa, threads, steps, budget)
    };
    Some(Peak {
        isa,
        lanes: lanes(isa),
        chains: chains(isa),
        single,
        multi,
        threads,
    })
}

/// Steps per run so that one run takes about a twentieth of `budget`, between 0.1 and 2 ms (at
/// least 1,000 steps): short runs, so that the best of many is one no other process interrupted.
fn calibrate(isa: Isa, budget: Duration) -> u64 {
    let mut steps: u64 = 1_000;
    let target = (budget / 20).clamp(Duration::from_micros(100), Duration::from_millis(2));
    loop {
        let t = measure_once(|| {
            std::hint::black_box(run_chains(isa, steps));
        });
        if t >= target / 4 || steps >= 1 << 40 {
            let scale = target.as_secs_f64() / t.as_secs_f64().max(1e-9);
            return ((steps as f64 * scale) as u64).max(1_000);
        }
        steps *= 4;
    }
}

/// The best GFLOP/s of runs of `steps` steps on `threads` threads at once, repeated for about
/// `budget` (at least three runs).
fn best_rate(isa: Isa, threads: usize, steps: u64, budget: Duration) -> f64 {
    let started = std::time::Instant::now();
    let mut best: f64 = 0.0;
    let mut runs = 0;
    while runs < 3 || started.elapsed() < budget {
        let wall = on_threads(isa, threads, steps).as_secs_f64().max(1e-9);
        best = best.max((flops(isa, steps) * threads as u64) as f64 / wall / 1e9);
        runs += 1;
    }
    best
}

/// The wall time of `threads` threads each running `steps` steps, started together.
fn on_threads(isa: Isa, threads: usize, steps: u64) -> Duration {
    if threads == 1 {
        return measure_once(|| {
            std::hint::black_box(run_chains(isa, steps));
        });
    }
    let start = Barrier::new(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (1..threads)
            .map(|_| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    std::hint::black_box(run_chains(isa, steps));
                })
            })
            .collect();
        start.wait();
        measure_once(|| {
            std::hint::black_box(run_chains(isa, steps));
            for w in workers {
                w.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            }
        })
    })
}

/// `steps` steps of every chain of one thread on `isa`; returns a value that depends on every
/// chain, so none can be optimised away. Only called for an ISA this CPU supports
/// ([`measure`] checks); an ISA of another architecture runs the scalar loop.
fn run_chains(isa: Isa, steps: u64) -> f32 {
    debug_assert!(isa.is_supported());
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            // SAFETY: `measure` returned early unless `Isa::Avx2.is_supported()`, which checks
            // that the CPU has AVX2 and FMA, the features `avx2_chains` is compiled for.
            unsafe { x86::avx2_chains(steps) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // SAFETY: `measure` returned early unless `Isa::Avx512.is_supported()`, which
            // checks that the CPU has AVX-512F, the feature `avx512_chains` is compiled for.
            unsafe { x86::avx512_chains(steps) }
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => {
            // SAFETY: `measure` returned early unless `Isa::Neon.is_supported()`, which checks
            // that the CPU has NEON, the feature `neon_chains` is compiled for.
            unsafe { arm::neon_chains(steps) }
        }
        _ => scalar_chains(steps),
    }
}

fn scalar_chains(steps: u64) -> f32 {
    let mut acc: [f32; SCALAR_CHAINS] = std::array::from_fn(|c| 1.0 + c as f32);
    let (mul, add) = (std::hint::black_box(MUL), std::hint::black_box(ADD));
    for _ in 0..steps {
        for a in acc.iter_mut() {
            *a = *a * mul + add;
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{ADD, AVX2_CHAINS, CHAINS, MUL};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn avx2_chains(steps: u64) -> f32 {
        let (mul, add) = (_mm256_set1_ps(MUL), _mm256_set1_ps(ADD));
        let mut acc: [__m256; AVX2_CHAINS] =
            std::array::from_fn(|c| _mm256_set1_ps(1.0 + c as f32));
        for _ in 0..steps {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, mul, add);
            }
        }
        let total = acc
            .iter()
            .fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a));
        _mm256_cvtss_f32(total)
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn avx512_chains(steps: u64) -> f32 {
        let (mul, add) = (_mm512_set1_ps(MUL), _mm512_set1_ps(ADD));
        let mut acc: [__m512; CHAINS] = std::array::from_fn(|c| _mm512_set1_ps(1.0 + c as f32));
        for _ in 0..steps {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, mul, add);
            }
        }
        let total = acc
            .iter()
            .fold(_mm512_setzero_ps(), |s, &a| _mm512_add_ps(s, a));
        _mm512_cvtss_f32(total)
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{ADD, CHAINS, MUL};
    use std::arch::aarch64::*;

    #[target_feature(enable = "neon")]
    pub(super) fn neon_chains(steps: u64) -> f32 {
        let (mul, add) = (vdupq_n_f32(MUL), vdupq_n_f32(ADD));
        let mut acc: [float32x4_t; CHAINS] = std::array::from_fn(|c| vdupq_n_f32(1.0 + c as f32));
        for _ in 0..steps {
            for a in acc.iter_mut() {
                *a = vfmaq_f32(add, *a, mul);
            }
        }
        let total = acc.iter().fold(vdupq_n_f32(0.0), |s, &a| vaddq_f32(s, a));
        vgetq_lane_f32::<0>(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_counts_are_lanes_times_chains_times_two() {
        assert_eq!(flops(Isa::Avx512, 1), 16 * 16 * 2);
        assert_eq!(flops(Isa::Avx2, 10), 10 * 12 * 8 * 2);
        assert_eq!(flops(Isa::Scalar, 3), 3 * 64 * 2);
        assert_eq!(flops(Isa::Neon, 1), 16 * 4 * 2);
    }

    #[test]
    fn every_supported_isa_has_a_positive_peak() {
        for isa in Isa::supported() {
            let p = measure(isa, 2, Duration::from_millis(5)).expect("supported");
            assert!(p.single > 0.0 && p.multi > 0.0, "{p:?}");
            assert_eq!((p.lanes, p.chains, p.threads), (lanes(isa), chains(isa), 2));
            let sum = run_chains(isa, 10_000);
            assert!(sum.is_finite() && sum > 0.0, "{isa}: {sum}");
        }
        assert_eq!(
            measure(Isa::Neon, 1, Duration::ZERO).is_some(),
            Isa::Neon.is_supported()
        );
    }
}
