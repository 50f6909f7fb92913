//! The buffers of one LeNet-5 step: every activation and gradient for batches of up to a fixed
//! capacity, allocated once (one workspace per training thread), so a step allocates nothing.

use super::{CLASSES, IMAGE_LEN};
use crate::{Error, Result};
use simdnet_kernels::Real;

/// Every activation and gradient buffer of a LeNet-5 step for batches of up to `capacity`
/// images (one per training thread).
#[derive(Clone, Debug)]
pub struct Workspace<T> {
    pub(super) capacity: usize,
    pub(super) input: Vec<T>,
    pub(super) p1: Vec<T>,
    pub(super) argmax1: Vec<u32>,
    pub(super) p2: Vec<T>,
    pub(super) argmax2: Vec<u32>,
    pub(super) h1: Vec<T>,
    pub(super) h2: Vec<T>,
    pub(super) logits: Vec<T>,
    pub(super) grad_logits: Vec<T>,
    pub(super) grad_h2: Vec<T>,
    pub(super) grad_z2: Vec<T>,
    pub(super) grad_h1: Vec<T>,
    pub(super) grad_z1: Vec<T>,
    pub(super) grad_p2: Vec<T>,
    pub(super) grad_z_conv2: Vec<T>,
    pub(super) grad_p1: Vec<T>,
    pub(super) grad_z_conv1: Vec<T>,
    pub(super) grad_input: Option<Vec<T>>,
    pub(super) conv_workspace: Vec<T>,
    pub(super) grads: Vec<T>,
}

impl<T: Real> Workspace<T> {
    /// The largest batch this workspace holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The input of the first `batch` images, `[batch, 1, 28, 28]`.
    pub fn input_mut(&mut self, batch: usize) -> &mut [T] {
        &mut self.input[..batch * IMAGE_LEN]
    }

    /// Fills the input with `images` (28x28 bytes each) as pixels / 255, computed in `T` as
    /// PyTorch's `x.float() / 255` does; returns how many images were loaded.
    pub fn load_images<'a>(&mut self, images: impl IntoIterator<Item = &'a [u8]>) -> Result<usize> {
        let scale = T::from_f64(255.0);
        let mut count = 0;
        for (i, image) in images.into_iter().enumerate() {
            if i >= self.capacity {
                return Err(Error::new(format!(
                    "LeNet-5: more images than the workspace's capacity of {}",
                    self.capacity
                )));
            }
            if image.len() != IMAGE_LEN {
                return Err(Error::new(format!(
                    "LeNet-5 takes 28x28 images ({IMAGE_LEN} pixels), got one of {}",
                    image.len()
                )));
            }
            let dst = &mut self.input[i * IMAGE_LEN..(i + 1) * IMAGE_LEN];
            for (d, &p) in dst.iter_mut().zip(image) {
                *d = T::from_f64(f64::from(p)) / scale;
            }
            count = i + 1;
        }
        Ok(count)
    }

    /// The logits of the last forward pass, `[batch, 10]`.
    pub fn logits(&self, batch: usize) -> &[T] {
        &self.logits[..batch * CLASSES]
    }

    /// Where the loss puts its gradient with respect to the logits before the backward pass.
    pub fn grad_logits_mut(&mut self, batch: usize) -> &mut [T] {
        &mut self.grad_logits[..batch * CLASSES]
    }

    /// The logits and the buffer for their gradient, together (the fused loss writes one while
    /// reading the other).
    pub fn logits_and_grad(&mut self, batch: usize) -> (&[T], &mut [T]) {
        (
            &self.logits[..batch * CLASSES],
            &mut self.grad_logits[..batch * CLASSES],
        )
    }

    /// The parameter gradients of the last backward pass, flat, in [`PARAMS`] order.
    pub fn grads(&self) -> &[T] {
        &self.grads
    }

    pub fn grads_mut(&mut self) -> &mut [T] {
        &mut self.grads
    }

    /// Exchanges the parameter gradients with `other` (no copy): a trainer keeps each
    /// micro-batch's gradients and gives the workspace a free buffer for the next backward
    /// pass. Errors if `other` is not [`NUM_PARAMS`] long.
    pub fn swap_grads(&mut self, other: &mut Vec<T>) -> Result<()> {
        if other.len() != self.grads.len() {
            return Err(Error::new(format!(
                "LeNet-5: a gradient buffer of {} elements, expected {}",
                other.len(),
                self.grads.len()
            )));
        }
        std::mem::swap(&mut self.grads, other);
        Ok(())
    }

    /// Makes later backward passes also compute the gradient with respect to the input
    /// (training skips it).
    pub fn keep_input_grad(&mut self) {
        if self.grad_input.is_none() {
            self.grad_input = Some(vec![T::ZERO; self.input.len()]);
        }
    }

    /// The input gradient of the last backward pass, if [`Workspace::keep_input_grad`] was called.
    pub fn grad_input(&self, batch: usize) -> Option<&[T]> {
        self.grad_input.as_ref().map(|g| &g[..batch * IMAGE_LEN])
    }
}
