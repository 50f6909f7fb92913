//! LeNet-5 as the PyTorch tutorials write it:
//!
//! ```text
//! conv1: Conv2d(1, 6, 5, padding=2) -> ReLU -> MaxPool2d(2)     [N,1,28,28] -> [N,6,14,14]
//! conv2: Conv2d(6, 16, 5)           -> ReLU -> MaxPool2d(2)     -> [N,16,5,5]
//! flatten                                                        -> [N,400]
//! fc1: Linear(400, 120) -> ReLU; fc2: Linear(120, 84) -> ReLU; fc3: Linear(84, 10)  -> [N,10]
//! ```
//!
//! 61,706 parameters, kept in one flat vector in `state_dict` order ([`LeNet5::PARAMS`]), so
//! the optimizer, the thread reduction and the checkpoint writer each walk one slice. Inputs are
//! pixels / 255, nothing else. The model is generic over the precision: `LeNet5` (`f32`) trains
//! on the SIMD kernels, `LeNet5<f64>` runs on the scalar references for gradient checks.

use std::path::Path;

use crate::backend::Backend;
use crate::checkpoint;
use crate::layers::{Conv2d, Dims, Flatten, Linear, MaxPool2d, ReLU};
use crate::rng::Rng;
use crate::{Error, Result};
use simdnet_kernels::Real;

mod workspace;
pub use workspace::Workspace;

/// Height and width of the images LeNet-5 takes.
pub const IMAGE_SIDE: usize = 28;
/// Pixels per image.
pub const IMAGE_LEN: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Classes (outputs).
pub const CLASSES: usize = 10;

const INPUT: Dims = Dims::new(1, IMAGE_SIDE, IMAGE_SIDE);
const CONV1_OUT: Dims = Dims::new(6, 28, 28);
const POOL1_OUT: Dims = Dims::new(6, 14, 14);
const CONV2_OUT: Dims = Dims::new(16, 10, 10);
const POOL2_OUT: Dims = Dims::new(16, 5, 5);
const FC1_OUT: usize = 120;
const FC2_OUT: usize = 84;

/// LeNet-5's parameters: which layers, and the values, flat, in `state_dict` order.
#[derive(Clone, Debug, PartialEq)]
pub struct LeNet5<T = f32> {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub pool: MaxPool2d,
    pub relu: ReLU,
    pub flatten: Flatten,
    pub fc1: Linear,
    pub fc2: Linear,
    pub fc3: Linear,
    params: Vec<T>,
}

/// `(name, shape)` of every parameter tensor, in PyTorch's `state_dict` order.
/// The `simdnet_format_version` simdnet writes into checkpoint metadata and reads.
pub const FORMAT_VERSION: &str = "1";

pub const PARAMS: [(&str, &[usize]); 10] = [
    ("conv1.weight", &[6, 1, 5, 5]),
    ("conv1.bias", &[6]),
    ("conv2.weight", &[16, 6, 5, 5]),
    ("conv2.bias", &[16]),
    ("fc1.weight", &[120, 400]),
    ("fc1.bias", &[120]),
    ("fc2.weight", &[84, 120]),
    ("fc2.bias", &[84]),
    ("fc3.weight", &[10, 84]),
    ("fc3.bias", &[10]),
];

/// Elements of each parameter tensor, in [`PARAMS`] order.
pub const PARAM_LENS: [usize; 10] = {
    let mut lens = [0; 10];
    let mut i = 0;
    while i < 10 {
        let shape = PARAMS[i].1;
        let mut n = 1;
        let mut d = 0;
        while d < shape.len() {
            n *= shape[d];
            d += 1;
        }
        lens[i] = n;
        i += 1;
    }
    lens
};

/// Total parameters: 61,706.
pub const NUM_PARAMS: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < 10 {
        n += PARAM_LENS[i];
        i += 1;
    }
    n
};

/// Splits a flat parameter (or gradient) vector into its ten tensors.
pub fn split<T>(flat: &[T]) -> [&[T]; 10] {
    let mut rest = flat;
    PARAM_LENS.map(|n| {
        let (head, tail) = rest.split_at(n);
        rest = tail;
        head
    })
}

/// Splits a flat parameter (or gradient) vector into its ten tensors, mutably.
pub fn split_mut<T>(flat: &mut [T]) -> [&mut [T]; 10] {
    let mut rest = flat;
    PARAM_LENS.map(|n| {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(n);
        rest = tail;
        head
    })
}

impl LeNet5<f32> {
    /// `(name, shape)` of every parameter tensor, in `state_dict` order.
    pub const PARAMS: [(&'static str, &'static [usize]); 10] = PARAMS;
    /// 61,706.
    pub const NUM_PARAMS: usize = NUM_PARAMS;

    /// PyTorch's default initialisation (see [`LeNet5::init`]) from a seeded generator.
    pub fn new(seed: u64) -> LeNet5 {
        LeNet5::init(seed)
    }

    /// Loads a checkpoint strictly: exactly the ten tensors of [`PARAMS`], by name and shape
    /// (F64/F16/BF16 are converted). Errors name the file and every missing, unexpected or
    /// mis-shaped tensor.
    ///
    /// A checkpoint whose `simdnet_format_version` metadata is not [`FORMAT_VERSION`] is
    /// refused; one without simdnet metadata (saved by PyTorch) loads.
    pub fn load(path: &Path) -> Result<LeNet5> {
        let ckpt = checkpoint::read_expected(path, &PARAMS)?;
        if let Some(v) = ckpt.meta("simdnet_format_version") {
            if v != FORMAT_VERSION {
                return Err(Error::in_file(
                    path,
                    format!(
                        "checkpoint format version {v} is not supported: this simdnet reads \
                         version {FORMAT_VERSION} (and checkpoints without simdnet metadata, \
                         such as PyTorch's)"
                    ),
                ));
            }
        }
        let mut params = Vec::with_capacity(NUM_PARAMS);
        for t in &ckpt.tensors {
            params.extend_from_slice(&t.data);
        }
        LeNet5::from_params(params).map_err(|e| Error::in_file(path, e))
    }

    /// Writes the ten tensors in PyTorch's names and shapes, atomically, with `metadata` (the
    /// writer adds `format: pt`).
    pub fn save(&self, path: &Path, metadata: &[(&str, &str)]) -> Result<()> {
        let tensors = split(&self.params);
        let list: Vec<(&str, &[usize], &[f32])> = PARAMS
            .iter()
            .zip(tensors)
            .map(|(&(name, shape), data)| (name, shape, data))
            .collect();
        checkpoint::write(path, &list, metadata)
    }
}

impl<T: Real> LeNet5<T> {
    fn layers(params: Vec<T>) -> LeNet5<T> {
        LeNet5 {
            conv1: Conv2d::new("conv1", 1, 6, (5, 5)).with_padding(2, 2),
            conv2: Conv2d::new("conv2", 6, 16, (5, 5)),
            pool: MaxPool2d::new("max_pool2d", (2, 2)),
            relu: ReLU::new("relu"),
            flatten: Flatten::new("flatten"),
            fc1: Linear::new("fc1", 400, FC1_OUT),
            fc2: Linear::new("fc2", FC1_OUT, FC2_OUT),
            fc3: Linear::new("fc3", FC2_OUT, CLASSES),
            params,
        }
    }

    /// PyTorch's default initialisation of every layer, in module order, from one generator
    /// seeded with `seed`: weights and biases `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
    pub fn init(seed: u64) -> LeNet5<T> {
        let mut model = LeNet5::layers(vec![T::ZERO; NUM_PARAMS]);
        let mut rng = Rng::new(seed);
        let [c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b, f3w, f3b] = split_mut(&mut model.params);
        let lengths_match = "parameter lengths come from the layers' own shapes";
        model.conv1.init(&mut rng, c1w, c1b).expect(lengths_match);
        model.conv2.init(&mut rng, c2w, c2b).expect(lengths_match);
        model.fc1.init(&mut rng, f1w, f1b).expect(lengths_match);
        model.fc2.init(&mut rng, f2w, f2b).expect(lengths_match);
        model.fc3.init(&mut rng, f3w, f3b).expect(lengths_match);
        model
    }

    /// A model with the given flat parameters (in [`PARAMS`] order).
    pub fn from_params(params: Vec<T>) -> Result<LeNet5<T>> {
        if params.len() != NUM_PARAMS {
            return Err(Error::new(format!(
                "LeNet-5 has {NUM_PARAMS} parameters, got {}",
                params.len()
            )));
        }
        Ok(LeNet5::layers(params))
    }

    /// The same model in another precision (values rounded through f64).
    pub fn cast<U: Real>(&self) -> LeNet5<U> {
        LeNet5::layers(
            self.params
                .iter()
                .map(|v| U::from_f64(v.to_f64()))
                .collect(),
        )
    }

    /// All parameters, flat, in [`PARAMS`] order.
    pub fn params(&self) -> &[T] {
        &self.params
    }

    pub fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }

    /// The parameter tensor called `name` (`"fc1.weight"`), if there is one.
    pub fn tensor(&self, name: &str) -> Option<&[T]> {
        let i = PARAMS.iter().position(|(n, _)| *n == name)?;
        Some(split(&self.params)[i])
    }

    /// Buffers for batches of up to `capacity` images: every activation and gradient a training
    /// step needs, allocated once.
    pub fn workspace<B: Backend<T>>(&self, backend: &B, capacity: usize) -> Result<Workspace<T>> {
        let (conv1, conv2, pool) = (&self.conv1, &self.conv2, &self.pool);
        let conv_ws = [
            conv1.workspace_len(backend, capacity, INPUT)?,
            conv2.workspace_len(backend, capacity, POOL1_OUT)?,
            conv1.relu_pool_workspace_len(backend, pool, capacity, INPUT)?,
            conv2.relu_pool_workspace_len(backend, pool, capacity, POOL1_OUT)?,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        let len = |d: Dims| d.batch_len("LeNet-5", capacity);
        Ok(Workspace {
            capacity,
            input: vec![T::ZERO; len(INPUT)?],
            p1: vec![T::ZERO; len(POOL1_OUT)?],
            argmax1: vec![0; len(POOL1_OUT)?],
            p2: vec![T::ZERO; len(POOL2_OUT)?],
            argmax2: vec![0; len(POOL2_OUT)?],
            h1: vec![T::ZERO; len(Dims::flat(FC1_OUT))?],
            h2: vec![T::ZERO; len(Dims::flat(FC2_OUT))?],
            logits: vec![T::ZERO; len(Dims::flat(CLASSES))?],
            grad_logits: vec![T::ZERO; len(Dims::flat(CLASSES))?],
            grad_h2: vec![T::ZERO; len(Dims::flat(FC2_OUT))?],
            grad_z2: vec![T::ZERO; len(Dims::flat(FC2_OUT))?],
            grad_h1: vec![T::ZERO; len(Dims::flat(FC1_OUT))?],
            grad_z1: vec![T::ZERO; len(Dims::flat(FC1_OUT))?],
            grad_p2: vec![T::ZERO; len(POOL2_OUT)?],
            grad_z_conv2: vec![T::ZERO; len(CONV2_OUT)?],
            grad_p1: vec![T::ZERO; len(POOL1_OUT)?],
            grad_z_conv1: vec![T::ZERO; len(CONV1_OUT)?],
            grad_input: None,
            conv_workspace: vec![T::ZERO; conv_ws],
            grads: vec![T::ZERO; NUM_PARAMS],
        })
    }

    fn check_batch(ws: &Workspace<T>, batch: usize) -> Result<()> {
        if batch > ws.capacity {
            return Err(Error::new(format!(
                "LeNet-5: batch of {batch} images exceeds the workspace's capacity of {}",
                ws.capacity
            )));
        }
        Ok(())
    }

    /// The forward pass over the first `batch` images of `ws.input_mut(batch)`; the logits are
    /// then in `ws.logits(batch)`.
    pub fn forward<B: Backend<T>>(
        &self,
        backend: &B,
        ws: &mut Workspace<T>,
        batch: usize,
    ) -> Result<()> {
        Self::check_batch(ws, batch)?;
        let [c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b, f3w, f3b] = split(&self.params);
        let n = batch;
        let conv_ws = &mut ws.conv_workspace[..];
        // Each block, conv -> ReLU -> max-pool, runs fused: only the pooled output and its
        // argmax are written.
        let (p1, argmax1) = (
            &mut ws.p1[..n * POOL1_OUT.numel()],
            &mut ws.argmax1[..n * POOL1_OUT.numel()],
        );
        let image = &ws.input[..n * IMAGE_LEN];
        let (conv1, pool) = (&self.conv1, &self.pool);
        conv1.forward_relu_pool(
            backend,
            pool,
            n,
            INPUT,
            (image, c1w, c1b),
            p1,
            argmax1,
            conv_ws,
        )?;
        // Flatten is a view: the pooled [N,16,5,5] activations are fc1's [N,400] input.
        let (p2, argmax2) = (
            &mut ws.p2[..n * POOL2_OUT.numel()],
            &mut ws.argmax2[..n * POOL2_OUT.numel()],
        );
        let conv2 = &self.conv2;
        conv2.forward_relu_pool(
            backend,
            pool,
            n,
            POOL1_OUT,
            (p1, c2w, c2b),
            p2,
            argmax2,
            conv_ws,
        )?;
        let h1 = &mut ws.h1[..n * FC1_OUT];
        self.fc1.forward_relu(backend, n, p2, f1w, f1b, h1)?;
        let h2 = &mut ws.h2[..n * FC2_OUT];
        self.fc2.forward_relu(backend, n, h1, f2w, f2b, h2)?;
        self.fc3
            .forward(backend, n, h2, f3w, f3b, &mut ws.logits[..n * CLASSES])?;
        Ok(())
    }

    /// The backward pass after [`LeNet5::forward`] on the same `batch`, from the gradient of
    /// the loss with respect to the logits in `ws.grad_logits_mut(batch)`: every parameter's
    /// gradient into `ws.grads()` (overwritten), and the input's into `ws.grad_input()` if
    /// [`Workspace::keep_input_grad`] asked for it.
    pub fn backward<B: Backend<T>>(
        &self,
        backend: &B,
        ws: &mut Workspace<T>,
        batch: usize,
    ) -> Result<()> {
        Self::check_batch(ws, batch)?;
        let n = batch;
        let [c1w, _, c2w, _, f1w, _, f2w, _, f3w, _] = split(&self.params);
        let [gc1w, gc1b, gc2w, gc2b, gf1w, gf1b, gf2w, gf2b, gf3w, gf3b] = split_mut(&mut ws.grads);
        let (h1, h2) = (&ws.h1[..n * FC1_OUT], &ws.h2[..n * FC2_OUT]);

        let grad_h2 = &mut ws.grad_h2[..n * FC2_OUT];
        self.fc3.backward(
            backend,
            n,
            h2,
            f3w,
            &ws.grad_logits[..n * CLASSES],
            Some(grad_h2),
            gf3w,
            gf3b,
        )?;
        let grad_z2 = &mut ws.grad_z2[..n * FC2_OUT];
        self.relu.backward(backend, h2, grad_h2, grad_z2)?;
        let grad_h1 = &mut ws.grad_h1[..n * FC1_OUT];
        self.fc2
            .backward(backend, n, h1, f2w, grad_z2, Some(grad_h1), gf2w, gf2b)?;
        let grad_z1 = &mut ws.grad_z1[..n * FC1_OUT];
        self.relu.backward(backend, h1, grad_h1, grad_z1)?;
        let p2 = &ws.p2[..n * POOL2_OUT.numel()];
        let grad_p2 = &mut ws.grad_p2[..n * POOL2_OUT.numel()];
        self.fc1
            .backward(backend, n, p2, f1w, grad_z1, Some(grad_p2), gf1w, gf1b)?;

        // ReLU and max-pool backward in one pass, from the pooled output (no activation kept).
        let grad_z_conv2 = &mut ws.grad_z_conv2[..n * CONV2_OUT.numel()];
        let pooled2 = (&*grad_p2, &ws.argmax2[..n * POOL2_OUT.numel()], p2);
        self.pool
            .backward_relu(backend, n, CONV2_OUT, pooled2, grad_z_conv2)?;
        let p1 = &ws.p1[..n * POOL1_OUT.numel()];
        let grad_p1 = &mut ws.grad_p1[..n * POOL1_OUT.numel()];
        let conv_ws = &mut ws.conv_workspace[..];
        self.conv2.backward(
            backend,
            n,
            POOL1_OUT,
            p1,
            c2w,
            grad_z_conv2,
            Some(grad_p1),
            gc2w,
            gc2b,
            conv_ws,
        )?;

        let grad_z_conv1 = &mut ws.grad_z_conv1[..n * CONV1_OUT.numel()];
        let p1 = &ws.p1[..n * POOL1_OUT.numel()];
        let pooled1 = (&*grad_p1, &ws.argmax1[..n * POOL1_OUT.numel()], p1);
        self.pool
            .backward_relu(backend, n, CONV1_OUT, pooled1, grad_z_conv1)?;
        let input = &ws.input[..n * IMAGE_LEN];
        // The image needs no gradient in training; gradient checks ask for it.
        let grad_input = ws.grad_input.as_mut().map(|g| &mut g[..n * IMAGE_LEN]);
        self.conv1.backward(
            backend,
            n,
            INPUT,
            input,
            c1w,
            grad_z_conv1,
            grad_input,
            gc1w,
            gc1b,
            conv_ws,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simdnet_kernels::Kernels;

    #[test]
    fn lenet5_has_pytorchs_61706_parameters_in_state_dict_order() {
        assert_eq!(NUM_PARAMS, 61_706);
        assert_eq!(LeNet5::NUM_PARAMS, 61_706);
        let names: Vec<&str> = LeNet5::PARAMS.iter().map(|p| p.0).collect();
        assert_eq!(
            names,
            [
                "conv1.weight",
                "conv1.bias",
                "conv2.weight",
                "conv2.bias",
                "fc1.weight",
                "fc1.bias",
                "fc2.weight",
                "fc2.bias",
                "fc3.weight",
                "fc3.bias"
            ]
        );
        let model = LeNet5::new(0);
        assert_eq!(model.params().len(), 61_706);
        // The layers agree with the table.
        assert_eq!(model.conv1.weight_shape().to_vec(), PARAMS[0].1);
        assert_eq!(model.conv2.weight_shape().to_vec(), PARAMS[2].1);
        assert_eq!(model.fc1.weight_shape().to_vec(), PARAMS[4].1);
        assert_eq!(model.fc3.weight_shape().to_vec(), PARAMS[8].1);
        assert_eq!(model.tensor("fc3.bias").unwrap().len(), 10);
        assert!(model.tensor("fc4.bias").is_none());
        // Each tensor within its PyTorch init bound 1/sqrt(fan_in).
        let fan_in = [25, 25, 150, 150, 400, 400, 120, 120, 84, 84];
        for ((t, fan), (name, _)) in split(model.params()).into_iter().zip(fan_in).zip(PARAMS) {
            let bound = 1.0 / (fan as f32).sqrt();
            assert!(t.iter().all(|v| v.abs() <= bound), "{name}");
        }
        // Seeded: the same seed gives the same model, another seed another.
        assert_eq!(LeNet5::new(0), model);
        assert_ne!(LeNet5::new(1).params(), model.params());
    }

    #[test]
    fn misuse_is_an_error_not_a_panic() {
        let k = Kernels::get();
        assert!(LeNet5::from_params(vec![0.0; 10])
            .unwrap_err()
            .to_string()
            .contains("61706"));
        let model = LeNet5::new(0);
        let mut ws = model.workspace(k, 4).unwrap();
        let e = model.forward(k, &mut ws, 5).unwrap_err().to_string();
        assert!(e.contains("capacity of 4"), "{e}");
        assert!(model.backward(k, &mut ws, 5).is_err());
        assert!(ws
            .load_images([&[0u8; 10][..]])
            .unwrap_err()
            .to_string()
            .contains("28x28"));
        let five = vec![0u8; 5 * IMAGE_LEN];
        assert!(ws.load_images(five.chunks(IMAGE_LEN)).is_err());
        assert_eq!(ws.load_images(five.chunks(IMAGE_LEN).take(4)).unwrap(), 4);
        model.forward(k, &mut ws, 4).unwrap();
    }

    #[test]
    fn pixels_are_scaled_by_255_in_f32() {
        let model = LeNet5::new(0);
        let mut ws = model.workspace(Kernels::get(), 1).unwrap();
        let image: Vec<u8> = (0..IMAGE_LEN).map(|i| (i % 256) as u8).collect();
        ws.load_images([&image[..]]).unwrap();
        for (x, &p) in ws.input_mut(1).iter().zip(&image) {
            assert_eq!(*x, f32::from(p) / 255.0);
        }
    }
}
