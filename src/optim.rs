//! `SGD` with PyTorch's arguments, defaults, validation and order of operations, one fused
//! kernel pass per tensor over parameter, gradient and momentum buffer.

use std::ops::Range;

use crate::backend::Backend;
use crate::{Error, Result};
use simdnet_kernels::Real;

pub use simdnet_kernels::sgd::SgdOptions;

/// `torch.optim.SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
/// maximize=False)` over tensors stored back to back in one flat vector (their lengths given at
/// construction). Each tensor has its own momentum buffer, created on its first step as a copy
/// of the gradient, as PyTorch does. The buffers are stored back to back in one flat vector
/// laid out like the parameters, so parameter, gradient and buffer of a tensor sit at the
/// same offset of their vectors (same-sized heap vectors share their alignment, which lets
/// the SIMD step align all three streams at once).
///
/// ```
/// use simdnet::optim::{Sgd, SgdOptions};
/// use simdnet::kernels::Kernels;
///
/// let mut opt = Sgd::new(&[2, 1], SgdOptions { momentum: 0.9, ..SgdOptions::new(0.1) }).unwrap();
/// let mut params = [1.0_f32, 2.0, 3.0];
/// let grads = [0.5_f32, -1.0, 0.0];
/// opt.step(Kernels::get(), &mut params, &grads).unwrap(); // buffer = g; p -= lr * buffer
/// opt.step(Kernels::get(), &mut params, &grads).unwrap(); // buffer = 0.9 * buffer + g
/// assert!((params[0] - (1.0 - 0.05 - 0.095)).abs() < 1e-6);
/// let err = Sgd::<f32>::new(&[1], SgdOptions::new(-1.0)).unwrap_err();
/// assert_eq!(err.to_string(), "Invalid learning rate: -1");
/// ```
#[derive(Clone, Debug)]
pub struct Sgd<T = f32> {
    options: SgdOptions,
    lens: Vec<usize>,
    /// Every tensor's momentum buffer, back to back (empty before the first momentum step).
    buffer: Vec<T>,
    steps: u64,
}

impl<T: Real> Sgd<T> {
    /// PyTorch's default learning rate.
    pub const DEFAULT_LR: f64 = 1e-3;

    /// An optimizer for tensors of `lens` elements, with PyTorch's validation (its messages).
    pub fn new(lens: &[usize], options: SgdOptions) -> Result<Sgd<T>> {
        options.validate().map_err(|e| Error::new(e.to_string()))?;
        Ok(Sgd {
            options,
            lens: lens.to_vec(),
            buffer: Vec::new(),
            steps: 0,
        })
    }

    /// PyTorch's `SGD(params)`: every default, `lr = 1e-3`.
    pub fn with_defaults(lens: &[usize]) -> Result<Sgd<T>> {
        Sgd::new(lens, SgdOptions::new(Self::DEFAULT_LR))
    }

    pub fn options(&self) -> &SgdOptions {
        &self.options
    }

    /// Changes the learning rate for later steps (a scheduler would).
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        let options = SgdOptions { lr, ..self.options };
        options.validate().map_err(|e| Error::new(e.to_string()))?;
        self.options = options;
        Ok(())
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Tensor `i`'s momentum buffer, once a step has created it.
    pub fn momentum_buffer(&self, i: usize) -> Option<&[T]> {
        if self.buffer.is_empty() || i >= self.lens.len() {
            return None;
        }
        let start: usize = self.lens[..i].iter().sum();
        Some(&self.buffer[start..start + self.lens[i]])
    }

    /// Every tensor's momentum buffer, back to back (empty before the first momentum step).
    pub fn momentum_buffers(&self) -> &[T] {
        &self.buffer
    }

    /// Restores a saved state: the momentum buffers (as [`Sgd::momentum_buffers`] gave them)
    /// and the step count, so the next step continues exactly where the saved optimizer was.
    ///
    /// # Errors
    /// Buffers that are neither empty nor as long as the parameters, or empty buffers after a
    /// momentum step.
    pub fn restore(&mut self, buffer: Vec<T>, steps: u64) -> Result<()> {
        let total: usize = self.lens.iter().sum();
        let momentum = self.options.momentum != 0.0;
        let expected = if momentum && steps > 0 { total } else { 0 };
        if buffer.len() != expected {
            return Err(Error::new(format!(
                "SGD state: {} momentum values after {steps} steps, expected {expected}",
                buffer.len()
            )));
        }
        self.buffer = buffer;
        self.steps = steps;
        Ok(())
    }

    /// `optimizer.step()`: updates `params` in place from `grads` (both flat, the tensors back
    /// to back).
    pub fn step<B: Backend<T>>(
        &mut self,
        backend: &B,
        params: &mut [T],
        grads: &[T],
    ) -> Result<()> {
        let total: usize = self.lens.iter().sum();
        if params.len() != total || grads.len() != total {
            return Err(Error::new(format!(
                "SGD: the parameters have {} elements and the gradients {}, expected {total}",
                params.len(),
                grads.len()
            )));
        }
        let momentum = self.options.momentum != 0.0;
        let first_step = self.steps == 0;
        if momentum && first_step {
            // Allocated once; the kernel fills each buffer with a copy of the gradient.
            self.buffer = vec![T::ZERO; total];
        }
        let mut offset = 0;
        for &n in &self.lens {
            let (p, g) = (&mut params[offset..offset + n], &grads[offset..offset + n]);
            let buffer = if momentum {
                Some(&mut self.buffer[offset..offset + n])
            } else {
                None
            };
            backend.sgd_step(&self.options, p, g, buffer, first_step);
            offset += n;
        }
        self.steps += 1;
        Ok(())
    }
}

/// One contiguous range of an [`Sgd`]'s flat vectors, stepped on its own: the data-parallel
/// trainer gives each thread a part, so the SGD step does not serialise. The kernel works
/// element by element with the same operations wherever an element sits in its slice, so
/// stepping every part of a split gives exactly the bits of one [`Sgd::step`]. A part owns its
/// range of the momentum buffer; [`Sgd::absorb`] writes it back.
#[derive(Clone, Debug)]
pub struct SgdPart<T = f32> {
    options: SgdOptions,
    range: Range<usize>,
    /// The range's momentum buffer (empty before the first momentum step).
    buffer: Vec<T>,
    steps: u64,
}

impl<T: Real> SgdPart<T> {
    /// The range of the flat vectors this part steps.
    pub fn range(&self) -> Range<usize> {
        self.range.clone()
    }

    /// `optimizer.step()` on this part's range: `params` and `grads` are that range's slices.
    pub fn step<B: Backend<T>>(
        &mut self,
        backend: &B,
        params: &mut [T],
        grads: &[T],
    ) -> Result<()> {
        let n = self.range.len();
        if params.len() != n || grads.len() != n {
            return Err(Error::new(format!(
                "SGD part: the parameters have {} elements and the gradients {}, expected {n}",
                params.len(),
                grads.len()
            )));
        }
        let momentum = self.options.momentum != 0.0;
        let first_step = self.steps == 0;
        if momentum && self.buffer.len() != n {
            // Allocated once; the kernel's first step fills it with a copy of the gradient.
            self.buffer = vec![T::ZERO; n];
        }
        let buffer = if momentum {
            Some(&mut self.buffer[..])
        } else {
            None
        };
        backend.sgd_step(&self.options, params, grads, buffer, first_step);
        self.steps += 1;
        Ok(())
    }
}

impl<T: Real> Sgd<T> {
    /// The optimizer split at `ranges`, which must cover the flat vectors in order, without
    /// gaps or overlaps; each part carries its range of the momentum buffer.
    pub fn split(&self, ranges: &[Range<usize>]) -> Result<Vec<SgdPart<T>>> {
        let total: usize = self.lens.iter().sum();
        let mut next = 0;
        for r in ranges {
            if r.start != next || r.end < r.start {
                return Err(Error::new(format!(
                    "SGD split: range {r:?} does not start where the previous one ended ({next})"
                )));
            }
            next = r.end;
        }
        if next != total {
            return Err(Error::new(format!(
                "SGD split: the ranges cover {next} elements, expected {total}"
            )));
        }
        Ok(ranges
            .iter()
            .map(|r| SgdPart {
                options: self.options,
                range: r.clone(),
                buffer: if self.buffer.is_empty() {
                    Vec::new()
                } else {
                    self.buffer[r.clone()].to_vec()
                },
                steps: self.steps,
            })
            .collect())
    }

    /// Takes `part`'s momentum buffer and step count back (the inverse of [`Sgd::split`], one
    /// part at a time; every part of a split has taken the same steps).
    pub fn absorb(&mut self, part: &SgdPart<T>) -> Result<()> {
        let total: usize = self.lens.iter().sum();
        if part.range.end > total {
            return Err(Error::new(format!(
                "SGD part {:?} lies beyond the {total} elements",
                part.range
            )));
        }
        if !part.buffer.is_empty() {
            if self.buffer.len() != total {
                self.buffer = vec![T::ZERO; total];
            }
            self.buffer[part.range.clone()].copy_from_slice(&part.buffer);
        }
        self.steps = part.steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Reference;

    #[test]
    fn pytorchs_defaults_and_validation() {
        let opt = Sgd::<f32>::with_defaults(&[3]).unwrap();
        let o = opt.options();
        assert_eq!(
            (
                o.lr,
                o.momentum,
                o.dampening,
                o.weight_decay,
                o.nesterov,
                o.maximize
            ),
            (1e-3, 0.0, 0.0, 0.0, false, false)
        );
        let bad = |o: SgdOptions| Sgd::<f32>::new(&[1], o).unwrap_err().to_string();
        assert_eq!(bad(SgdOptions::new(-1.0)), "Invalid learning rate: -1");
        assert_eq!(
            bad(SgdOptions {
                momentum: -0.1,
                ..SgdOptions::new(0.1)
            }),
            "Invalid momentum value: -0.1"
        );
        assert_eq!(
            bad(SgdOptions {
                weight_decay: -1.0,
                ..SgdOptions::new(0.1)
            }),
            "Invalid weight_decay value: -1"
        );
        assert_eq!(
            bad(SgdOptions {
                nesterov: true,
                ..SgdOptions::new(0.1)
            }),
            "Nesterov momentum requires a momentum and zero dampening"
        );
        let mut opt = Sgd::<f32>::with_defaults(&[2]).unwrap();
        assert!(opt.step(&Reference, &mut [0.0; 3], &[0.0; 3]).is_err());
        assert!(opt.set_lr(-0.5).is_err());
    }

    /// Stepping the parts of any split gives the bits of whole steps, momentum buffers and
    /// step count included, and absorbing the parts gives the whole optimizer's state back.
    #[test]
    fn parts_step_to_the_bits_of_whole_steps() {
        let k = simdnet_kernels::Kernels::get();
        let lens = [5, 40, 3];
        let options = SgdOptions {
            momentum: 0.9,
            weight_decay: 0.01,
            ..SgdOptions::new(0.1)
        };
        let grads = |s: usize| -> Vec<f32> {
            (0..48)
                .map(|i| ((i * 7 + s * 13) % 11) as f32 / 3.0 - 1.5)
                .collect()
        };
        let mut whole = Sgd::<f32>::new(&lens, options).unwrap();
        let mut p_whole: Vec<f32> = (0..48).map(|i| i as f32 / 10.0).collect();
        let mut p_parts = p_whole.clone();
        let mut template = whole.clone();
        let mut parts = template.split(&[0..17, 17..17, 17..33, 33..48]).unwrap();
        for s in 0..3 {
            let g = grads(s);
            whole.step(k, &mut p_whole, &g).unwrap();
            for part in &mut parts {
                let r = part.range();
                part.step(k, &mut p_parts[r.clone()], &g[r]).unwrap();
            }
        }
        assert_eq!(p_whole, p_parts);
        for part in &parts {
            template.absorb(part).unwrap();
        }
        assert_eq!(template.steps(), 3);
        for i in 0..3 {
            assert_eq!(template.momentum_buffer(i), whole.momentum_buffer(i));
        }
        // A resplit continues from the same buffers.
        let again = template.split(std::slice::from_ref(&(0..48))).unwrap();
        assert_eq!(again[0].buffer.len(), 48);
        assert!(template.split(&[0..10, 11..48]).is_err());
        assert!(template.split(&[0..40, 40..47]).is_err());
        assert!(parts[0].step(k, &mut [0.0; 3], &[0.0; 3]).is_err());
    }

    /// Per-tensor buffers, created on the first step as copies of the gradient, then
    /// `buf = momentum * buf + (1 - dampening) * g` (f64 on the reference: exact formulas).
    #[test]
    fn momentum_buffers_follow_pytorch_per_tensor() {
        let options = SgdOptions {
            momentum: 0.9,
            dampening: 0.5,
            ..SgdOptions::new(0.1)
        };
        let mut opt = Sgd::<f64>::new(&[2, 1], options).unwrap();
        assert!(opt.momentum_buffer(0).is_none());
        let mut p = [1.0, 2.0, 3.0];
        opt.step(&Reference, &mut p, &[0.5, -1.0, 2.0]).unwrap();
        assert_eq!(opt.momentum_buffer(0).unwrap(), &[0.5, -1.0]);
        assert_eq!(opt.momentum_buffer(1).unwrap(), &[2.0]);
        assert!((p[2] - (3.0 - 0.1 * 2.0)).abs() < 1e-15);
        opt.step(&Reference, &mut p, &[1.0, 1.0, 1.0]).unwrap();
        assert!((opt.momentum_buffer(1).unwrap()[0] - (0.9 * 2.0 + 0.5 * 1.0)).abs() < 1e-15);
        assert_eq!(opt.steps(), 2);
    }
}
