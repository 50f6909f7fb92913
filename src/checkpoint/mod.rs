//! safetensors checkpoints: the file format PyTorch's `safetensors.torch.save_file` and
//! `load_file` use, written and read without any dependency.
//!
//! ## Format
//!
//! ```text
//! [8 bytes]  N, the header length, unsigned 64-bit little-endian
//! [N bytes]  a UTF-8 JSON object (padded with trailing spaces to a multiple of 8):
//!            { "__metadata__": { "format": "pt", ...string: string },
//!              "<tensor name>": { "dtype": "F32", "shape": [6, 1, 5, 5], "data_offsets": [begin, end] },
//!              ... }
//! [rest]     the data section: each tensor's bytes, row-major, little-endian, at
//!            data_offsets relative to the start of the data section
//! ```
//!
//! ## What the reader checks
//!
//! As the reference implementation (huggingface/safetensors) does, in this order:
//!
//! 0. (files) the path is a regular file, checked before it is opened, so a FIFO never blocks
//!    and a device is never read; its size is taken from the open file;
//! 1. the file holds the 8-byte length; the header length is at most 100,000,000 bytes
//!    ([`MAX_HEADER_LEN`]) and lies inside the file;
//! 2. the header is UTF-8, starts with `{` and is valid JSON (a strict reader, `json.rs`: no
//!    trailing commas or comments; at most [`MAX_JSON_DEPTH`] levels of nesting; no duplicate
//!    keys at the top level, in `__metadata__` or among a tensor's fields). It builds no
//!    document tree, so its memory is bounded by a small multiple of the header's size whatever
//!    the nesting;
//! 3. `__metadata__`, when present, maps strings to strings; every other key is a tensor with a
//!    known `dtype`, a `shape` of non-negative integers and two `data_offsets` `begin <= end`
//!    (other keys of a tensor entry are ignored, as the reference does);
//! 4. each tensor's byte length `end - begin` equals its element count times its dtype's size
//!    (computed without overflow);
//! 5. taken in offset order, the tensors are contiguous from 0 and cover the whole data section:
//!    no gap, no overlap, nothing left over.
//!
//! Only then is the data section read, exactly the bytes the header promises (a file read from
//! disk is never read past them). Then, to give `f32` values, F32, F64, F16 and BF16 tensors are converted and any other dtype
//! is rejected by name. [`read_expected`] finally compares the tensors with a model's list of
//! names and shapes and names every missing, unexpected or mis-shaped tensor.
//!
//! ## What the writer does
//!
//! [`write()`] stores F32 tensors in the given order, contiguous, with a `__metadata__` of strings
//! that always includes `format: pt` (PyTorch's loader expects it), atomically
//! ([`crate::outputs::write_atomically`]: a temporary file in the destination's directory,
//! synced and renamed over it), so a crash never leaves a half-written checkpoint under the
//! real name.
//!
//! The code: `read.rs` (reading and validating), `write.rs` (encoding), `json.rs` (the header's
//! JSON).

mod json;
mod read;
mod write;

pub use read::{f16_to_f32, foreign_format, match_expected, parse, read, read_expected};
pub use write::{encode, write};

/// The largest header the reader accepts, in bytes (the reference implementation's limit).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// The deepest nesting of JSON arrays and objects the header parser accepts. A safetensors
/// header needs three levels; the limit keeps the parser's stack a fixed size.
pub const MAX_JSON_DEPTH: usize = json::MAX_DEPTH;

/// A tensor read from a checkpoint, converted to `f32`.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The contents of a checkpoint: tensors in data-offset order (the order they were written) and
/// the `__metadata__` pairs in header order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Checkpoint {
    pub tensors: Vec<NamedTensor>,
    pub metadata: Vec<(String, String)>,
}

impl Checkpoint {
    /// The tensor called `name`, if there is one.
    pub fn tensor(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The metadata value for `key`, if there is one.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
