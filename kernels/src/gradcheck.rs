//! Numeric gradient checker: central differences in f64 against an analytic gradient.
//!
//! ```
//! use simdnet_kernels::gradcheck::{GradCheck, Tensor};
//!
//! // f(x) = sum x_i^3, so df/dx_i = 3 x_i^2.
//! let x = vec![0.5, -1.25, 2.0];
//! let grad = x.iter().map(|v| 3.0 * v * v).collect();
//! let mut tensors = vec![Tensor::new("x", vec![3], x, grad)];
//! let report = GradCheck::default().run(&mut tensors, |t| t[0].values.iter().map(|v| v * v * v).sum());
//! assert!(report.passed(), "{report}");
//! ```
//!
//! The defaults are PyTorch's `torch.autograd.gradcheck` ones: `eps = 1e-6`, `atol = 1e-5`,
//! `rtol = 1e-3`; a coordinate passes when `|analytic - numeric| <= atol + rtol * |numeric|`.

use std::fmt;

/// One input of the checked function: its values and the analytic gradient of the loss with
/// respect to them (same length, row-major in `shape`).
#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
    pub analytic: Vec<f64>,
}

impl Tensor {
    /// # Panics
    /// If `values` or `analytic` does not hold `shape.iter().product()` elements.
    pub fn new(
        name: impl Into<String>,
        shape: Vec<usize>,
        values: Vec<f64>,
        analytic: Vec<f64>,
    ) -> Tensor {
        let name = name.into();
        let numel: usize = shape.iter().product();
        crate::check_len(
            &format!("gradcheck tensor '{name}' values"),
            numel,
            values.len(),
        );
        crate::check_len(
            &format!("gradcheck tensor '{name}' analytic gradient"),
            numel,
            analytic.len(),
        );
        Tensor {
            name,
            shape,
            values,
            analytic,
        }
    }
}

/// Settings of a check.
#[derive(Clone, Copy, Debug)]
pub struct GradCheck {
    /// Step of the central difference `(f(x + eps) - f(x - eps)) / (2 eps)`.
    pub eps: f64,
    pub atol: f64,
    pub rtol: f64,
    /// Tensors with at most this many elements are checked at every coordinate; larger ones at
    /// a sample of this size that always includes the first, the last and border coordinates.
    pub max_coords: usize,
    /// Seed of the interior sample of large tensors.
    pub seed: u64,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
            max_coords: 2048,
            seed: 0x5eed,
        }
    }
}

/// The result for one tensor.
#[derive(Clone, Debug)]
pub struct TensorReport {
    pub name: String,
    pub shape: Vec<usize>,
    /// Coordinates compared (all of them, or the sample).
    pub checked: usize,
    pub numel: usize,
    /// Largest `|analytic - numeric|`.
    pub max_abs_err: f64,
    /// Largest `|analytic - numeric| / max(|numeric|, atol)` (the atol floor keeps zero
    /// gradients from reporting an infinite relative error).
    pub max_rel_err: f64,
    /// Coordinates failing `|analytic - numeric| <= atol + rtol * |numeric|`, or with a
    /// non-finite value.
    pub failures: usize,
    /// The flat index of the worst failing coordinate, if any.
    pub worst: Option<usize>,
}

impl TensorReport {
    pub fn passed(&self) -> bool {
        self.failures == 0
    }
}

/// The result of a check: one row per tensor.
#[derive(Clone, Debug)]
pub struct Report {
    pub tensors: Vec<TensorReport>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.tensors.iter().all(TensorReport::passed)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tensors {
            writeln!(
                f,
                "{:<16} {:>14} checked {:>6}/{:<6} max abs {:.3e} max rel {:.3e} {}",
                t.name,
                format!("{:?}", t.shape),
                t.checked,
                t.numel,
                t.max_abs_err,
                t.max_rel_err,
                if t.passed() {
                    "pass".to_string()
                } else {
                    format!("FAIL ({} coords, worst at {:?})", t.failures, t.worst)
                }
            )?;
        }
        Ok(())
    }
}

impl GradCheck {
    /// Checks every tensor's analytic gradient against central differences of `loss`, which
    /// must compute the scalar loss from the tensors' current `values` (the checker perturbs one
    /// coordinate at a time and restores it afterwards).
    pub fn run(&self, tensors: &mut [Tensor], mut loss: impl FnMut(&[Tensor]) -> f64) -> Report {
        let mut reports = Vec::with_capacity(tensors.len());
        for t in 0..tensors.len() {
            let coords = self.coordinates(&tensors[t].shape, t as u64);
            let mut report = TensorReport {
                name: tensors[t].name.clone(),
                shape: tensors[t].shape.clone(),
                checked: coords.len(),
                numel: tensors[t].values.len(),
                max_abs_err: 0.0,
                max_rel_err: 0.0,
                failures: 0,
                worst: None,
            };
            let mut worst_excess = f64::NEG_INFINITY;
            for i in coords {
                let original = tensors[t].values[i];
                tensors[t].values[i] = original + self.eps;
                let plus = loss(tensors);
                tensors[t].values[i] = original - self.eps;
                let minus = loss(tensors);
                tensors[t].values[i] = original;
                let numeric = (plus - minus) / (2.0 * self.eps);
                let analytic = tensors[t].analytic[i];
                let abs_err = (analytic - numeric).abs();
                let rel_err = abs_err / numeric.abs().max(self.atol);
                let bound = self.atol + self.rtol * numeric.abs();
                // NaN errors fail: `!(x <= bound)` is true for NaN.
                let ok = abs_err <= bound && analytic.is_finite() && numeric.is_finite();
                report.max_abs_err = max_nan(report.max_abs_err, abs_err);
                report.max_rel_err = max_nan(report.max_rel_err, rel_err);
                if !ok {
                    report.failures += 1;
                    let excess = if abs_err.is_nan() {
                        f64::INFINITY
                    } else {
                        abs_err - bound
                    };
                    if excess > worst_excess || report.worst.is_none() {
                        worst_excess = excess;
                        report.worst = Some(i);
                    }
                }
            }
            reports.push(report);
        }
        Report { tensors: reports }
    }

    /// The flat indices to check for a tensor of `shape`: all of them when small, else the first,
    /// the last, the corners and other border coordinates, and seeded interior ones.
    pub fn coordinates(&self, shape: &[usize], salt: u64) -> Vec<usize> {
        let numel: usize = shape.iter().product();
        if numel <= self.max_coords.max(1) {
            return (0..numel).collect();
        }
        let strides = row_major_strides(shape);
        let mut picked = vec![false; numel];
        let mut out = Vec::with_capacity(self.max_coords);
        let mut take = |i: usize, out: &mut Vec<usize>| {
            if !picked[i] {
                picked[i] = true;
                out.push(i);
            }
        };
        take(0, &mut out);
        take(numel - 1, &mut out);
        // Corners: every combination of first/last index in each dimension (capped at 2^10).
        let dims = shape.len().min(10);
        for mask in 0u32..(1u32 << dims) {
            let idx = (0..shape.len())
                .map(|d| {
                    let at_end = d < dims && mask & (1 << d) != 0;
                    (if at_end { shape[d] - 1 } else { 0 }) * strides[d]
                })
                .sum();
            take(idx, &mut out);
        }
        // Border coordinates (some index at 0 or at its end), about half the budget.
        let mut rng = SplitMix64(self.seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let border_budget = self.max_coords / 2;
        let mut tries = 0;
        while out.len() < border_budget && tries < 8 * self.max_coords {
            tries += 1;
            let mut flat = 0;
            let pinned = (rng.next() % shape.len() as u64) as usize;
            for d in 0..shape.len() {
                let i = if d == pinned {
                    if rng.next() & 1 == 0 {
                        0
                    } else {
                        shape[d] - 1
                    }
                } else {
                    (rng.next() % shape[d] as u64) as usize
                };
                flat += i * strides[d];
            }
            take(flat, &mut out);
        }
        // Seeded interior sample for the rest.
        let mut tries = 0;
        while out.len() < self.max_coords && tries < 8 * self.max_coords {
            tries += 1;
            take((rng.next() % numel as u64) as usize, &mut out);
        }
        out.sort_unstable();
        out
    }
}

fn max_nan(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    strides
}

/// A tiny deterministic generator for sampling coordinates (no dependencies).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_a_wrong_gradient() {
        let x = vec![0.5, -1.25, 2.0];
        let wrong = vec![0.75, 4.6875, 11.0]; // last should be 12
        let mut t = vec![Tensor::new("x", vec![3], x, wrong)];
        let r = GradCheck::default().run(&mut t, |t| t[0].values.iter().map(|v| v * v * v).sum());
        assert!(!r.passed());
        assert_eq!(r.tensors[0].failures, 1);
        assert_eq!(r.tensors[0].worst, Some(2));
    }

    #[test]
    fn nan_gradient_fails() {
        let mut t = vec![Tensor::new("x", vec![1], vec![1.0], vec![f64::NAN])];
        let r = GradCheck::default().run(&mut t, |t| t[0].values[0] * 2.0);
        assert!(!r.passed());
    }

    #[test]
    fn large_tensor_sample_includes_first_last_and_corners() {
        let gc = GradCheck {
            max_coords: 64,
            ..GradCheck::default()
        };
        let shape = [10, 20, 30];
        let coords = gc.coordinates(&shape, 0);
        assert!(coords.len() <= 64 && coords.len() > 32);
        for must in [0, 5999, 29, 570, 5400, 5999 - 29] {
            assert!(coords.contains(&must), "missing {must}");
        }
        let mut dedup = coords.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), coords.len());
    }

    #[test]
    fn small_tensor_checks_every_coordinate() {
        let gc = GradCheck::default();
        assert_eq!(gc.coordinates(&[3, 4], 0), (0..12).collect::<Vec<_>>());
    }
}
