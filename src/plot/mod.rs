//! Self-contained SVG pictures of a run, written by the crate itself (no dependency): the
//! training curves `simdnet train --plot` draws and the confusion matrix with misclassified
//! images `simdnet eval --plot` draws. Any browser shows them; images are embedded as PNG
//! `data:` URIs, so a picture is one file.

mod charts;
pub mod png;
pub mod svg;

pub use charts::{evaluation_picture, ticks, training_curves, Mistake, TestPoint, TrainPoint};
