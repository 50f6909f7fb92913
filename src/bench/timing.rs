//! Timing one call again and again within a time budget.

use std::time::{Duration, Instant};

/// The time of one call, best and median over the samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Seconds per call in the fastest sample.
    pub best: f64,
    /// Seconds per call in the median sample.
    pub median: f64,
    /// Calls timed (warm-up excluded).
    pub calls: u64,
}

/// The wall time of one run of `f`.
pub fn measure_once(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

/// Times `f` for about `budget` in samples of about a thirtieth of it: see [`measure_in`].
pub fn measure(budget: Duration, f: impl FnMut()) -> Timing {
    measure_in(budget, budget / 30, f)
}

/// Times `f` for about `budget`: one warm-up call (more if it is fast, up to a tenth of the
/// budget), then samples of enough calls each to last about `sample` (at least one call, and
/// at least 20 us), until the budget is spent, and always at least one sample. A call slower
/// than the budget is therefore run twice: once to warm up, once timed. Short samples make the
/// best one likelier to be one that no other process interrupted.
pub fn measure_in(budget: Duration, sample: Duration, mut f: impl FnMut()) -> Timing {
    let warm_until = Instant::now() + budget / 10;
    let first = measure_once(&mut f).max(Duration::from_nanos(1));
    while Instant::now() < warm_until {
        f();
    }
    let sample_target = sample.max(Duration::from_micros(20));
    let per_sample = (sample_target.as_secs_f64() / first.as_secs_f64()).clamp(1.0, 1e9) as u64;
    let started = Instant::now();
    let mut samples: Vec<f64> = Vec::new();
    while samples.is_empty() || started.elapsed() < budget {
        let t = measure_once(|| {
            for _ in 0..per_sample {
                f();
            }
        });
        samples.push(t.as_secs_f64() / per_sample as f64);
    }
    samples.sort_by(f64::total_cmp);
    Timing {
        best: samples[0],
        median: samples[samples.len() / 2],
        calls: per_sample * samples.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_call_is_timed_once_after_its_warm_up() {
        let mut calls = 0;
        let t = measure(Duration::from_millis(1), || {
            calls += 1;
            std::thread::sleep(Duration::from_millis(3));
        });
        assert_eq!((calls, t.calls), (2, 1));
        assert!(t.best >= 0.003 && t.best <= t.median, "{t:?}");
    }

    #[test]
    fn a_fast_call_is_sampled_many_times_within_the_budget() {
        let mut calls = 0u64;
        let started = Instant::now();
        let t = measure(Duration::from_millis(30), || {
            calls += 1;
            std::hint::black_box(calls);
        });
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(t.calls > 100 && calls > t.calls, "{t:?}, {calls} calls");
        assert!(t.best > 0.0 && t.best <= t.median, "{t:?}");
    }
}
