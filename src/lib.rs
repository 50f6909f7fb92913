//! # simdnet
//!
//! LeNet-5 with PyTorch-exact `CrossEntropyLoss` and `SGD`, on the hand-written SIMD kernels of
//! [`simdnet_kernels`].

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod explain;
pub mod gradcheck;
pub mod layers;
pub mod lenet;
pub mod loss;
pub mod optim;
pub mod outputs;
pub mod plot;
pub mod rng;
pub mod signals;
pub mod train;

pub use error::{Error, Result};
pub use simdnet_kernels as kernels;
