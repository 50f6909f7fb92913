//! Reading and validating safetensors files (see the module documentation of `checkpoint`).

use super::json::{self, Kind};
use super::{Checkpoint, NamedTensor, MAX_HEADER_LEN};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Reads and validates the safetensors file at `path` (see the module documentation): a regular
/// file, checked before it is opened; the header length checked against the file's size and
/// the limit; then only the bytes the header promises are read.
///
/// # Errors
/// A path that is not a regular file, an unreadable file or any validation failure, as
/// `"{path}: {problem}"`.
pub fn read(path: &Path) -> Result<Checkpoint> {
    crate::outputs::require_regular_file(path, "checkpoint")?;
    let fail = |e: std::io::Error| Error::in_file(path, format!("cannot read checkpoint: {e}"));
    let mut file = File::open(path).map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if !meta.is_file() {
        return Err(Error::refusal(format!(
            "{}: checkpoint is not a regular file",
            path.display()
        )));
    }
    let size = meta.len();
    let problem = |msg: String| Error::in_file(path, msg);
    let mut len_bytes = [0u8; 8];
    if size < 8 {
        return Err(problem(too_short(size)));
    }
    file.read_exact(&mut len_bytes).map_err(fail)?;
    if let Some(what) = foreign_format(&len_bytes) {
        return Err(problem(what));
    }
    let header_len = check_header_len(u64::from_le_bytes(len_bytes), size).map_err(problem)?;
    let mut header = vec![0u8; header_len];
    file.read_exact(&mut header).map_err(fail)?;
    let data_len = (size - 8 - header_len as u64) as usize;
    let (metadata, mut entries) = parse_header(&header, data_len).map_err(problem)?;
    drop(header);
    let mut data = vec![0u8; data_len];
    file.read_exact(&mut data).map_err(fail)?;
    tensors_of(&mut entries, &data, metadata).map_err(problem)
}

/// Reads `path` like [`read`], then checks it holds exactly the `expected` tensors (names and
/// shapes), returning them in `expected` order.
///
/// # Errors
/// Everything [`read`] rejects, and a checkpoint that does not match: the message lists every
/// missing tensor, every unexpected one and every shape that differs.
pub fn read_expected(path: &Path, expected: &[(&str, &[usize])]) -> Result<Checkpoint> {
    let checkpoint = read(path)?;
    match_expected(checkpoint, expected).map_err(|msg| Error::in_file(path, msg))
}

/// The strict comparison behind [`read_expected`], on an already parsed checkpoint.
pub fn match_expected(
    checkpoint: Checkpoint,
    expected: &[(&str, &[usize])],
) -> std::result::Result<Checkpoint, String> {
    let mut problems = Vec::new();
    let missing: Vec<&str> = expected
        .iter()
        .filter(|(name, _)| checkpoint.tensor(name).is_none())
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        problems.push(format!("missing tensors: {}", missing.join(", ")));
    }
    let unexpected: Vec<&str> = checkpoint
        .tensors
        .iter()
        .filter(|t| !expected.iter().any(|(name, _)| *name == t.name))
        .map(|t| t.name.as_str())
        .collect();
    if !unexpected.is_empty() {
        problems.push(format!("unexpected tensors: {}", unexpected.join(", ")));
    }
    let misshaped: Vec<String> = expected
        .iter()
        .filter_map(|(name, shape)| {
            let t = checkpoint.tensor(name)?;
            (t.shape.as_slice() != *shape).then(|| {
                format!(
                    "{name} has shape {:?}, expected {:?}",
                    t.shape,
                    shape.to_vec()
                )
            })
        })
        .collect();
    if !misshaped.is_empty() {
        problems.push(format!("wrong shapes: {}", misshaped.join(", ")));
    }
    if !problems.is_empty() {
        return Err(format!(
            "checkpoint does not match the model: {}",
            problems.join("; ")
        ));
    }
    let Checkpoint {
        mut tensors,
        metadata,
    } = checkpoint;
    let mut ordered = Vec::with_capacity(expected.len());
    for (name, _) in expected {
        let i = tensors
            .iter()
            .position(|t| t.name == *name)
            .expect("presence checked above");
        ordered.push(tensors.swap_remove(i));
    }
    Ok(Checkpoint {
        tensors: ordered,
        metadata,
    })
}

/// The byte-sized element types safetensors defines, with their sizes in bytes. (The reference
/// also has sub-byte float types; a header naming one is rejected as an unknown dtype.)
const DTYPES: [(&str, usize); 16] = [
    ("BOOL", 1),
    ("U8", 1),
    ("I8", 1),
    ("F8_E5M2", 1),
    ("F8_E4M3", 1),
    ("F8_E8M0", 1),
    ("I16", 2),
    ("U16", 2),
    ("F16", 2),
    ("BF16", 2),
    ("I32", 4),
    ("U32", 4),
    ("F32", 4),
    ("F64", 8),
    ("I64", 8),
    ("U64", 8),
];

fn dtype_size(name: &str) -> Option<usize> {
    DTYPES.iter().find(|(n, _)| *n == name).map(|&(_, s)| s)
}

/// `__metadata__`'s pairs, in header order.
type Metadata = Vec<(String, String)>;

/// A tensor entry of the header, before its data is read.
struct Entry {
    name: String,
    /// Byte offset of the name in the header (for messages).
    at: usize,
    dtype: &'static str,
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

fn too_short(len: u64) -> String {
    format!("not a safetensors file: {len} bytes, too short for the 8-byte header length")
}

/// The header length, checked against the limit and a file of `size` bytes.
fn check_header_len(header_len: u64, size: u64) -> std::result::Result<usize, String> {
    if header_len > MAX_HEADER_LEN {
        return Err(format!(
            "header too large: {header_len} bytes (the limit is {MAX_HEADER_LEN})"
        ));
    }
    if 8 + header_len > size {
        return Err(format!(
            "header length {header_len} runs past the end of the file ({size} bytes)"
        ));
    }
    Ok(header_len as usize)
}

/// What a file is when its first bytes show a PyTorch `torch.save` file instead of safetensors
/// (a zip archive since PyTorch 1.6, a pickle before), with how to convert it.
pub fn foreign_format(head: &[u8]) -> Option<String> {
    let what = if head.starts_with(b"PK\x03\x04") {
        "a zip archive, the format of PyTorch's torch.save (a .pt/.pth file)"
    } else if head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
        "a Python pickle, the format of PyTorch's legacy torch.save (a .pt/.pth file)"
    } else {
        return None;
    };
    Some(format!(
        "this is {what}, not safetensors; convert it in Python with \
         `from safetensors.torch import save_file; save_file(model.state_dict(), \
         \"model.safetensors\")` (state_dict names as in PyTorch's LeNet-5: conv1.weight, ..., \
         fc3.bias)"
    ))
}

/// Parses and validates a whole safetensors file held in memory (see the module documentation).
/// Any byte string gives `Ok` or `Err`, never a panic, and nothing is allocated from a size the
/// file states until that size has been checked against the file's length.
pub fn parse(bytes: &[u8]) -> std::result::Result<Checkpoint, String> {
    if bytes.len() < 8 {
        return Err(too_short(bytes.len() as u64));
    }
    if let Some(what) = foreign_format(&bytes[..8]) {
        return Err(what);
    }
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let header_len = check_header_len(len, bytes.len() as u64)?;
    let header_end = 8 + header_len;
    let data = &bytes[header_end..];
    let (metadata, mut entries) = parse_header(&bytes[8..header_end], data.len())?;
    tensors_of(&mut entries, data, metadata)
}

/// The metadata and tensor entries of a header, their layout checked against a data section of
/// `data_len` bytes.
fn parse_header(
    header: &[u8],
    data_len: usize,
) -> std::result::Result<(Metadata, Vec<Entry>), String> {
    let header =
        std::str::from_utf8(header).map_err(|e| format!("header is not valid UTF-8: {e}"))?;
    if !header.starts_with('{') {
        return Err("header does not start with '{'".to_string());
    }
    let invalid = |e: String| format!("header is not valid JSON: {e}");
    json::validate(header).map_err(invalid)?;
    let mut p = json::Parser::new(header);
    p.begin_object().map_err(invalid)?;
    let mut metadata: Vec<(String, String)> = Vec::new();
    let mut metadata_at: Vec<usize> = Vec::new();
    let mut seen_metadata = None;
    let mut entries = Vec::new();
    let mut first = true;
    while let Some((key, at)) = p.next_key(&mut first).map_err(invalid)? {
        if key == "__metadata__" {
            if seen_metadata.is_some() {
                return Err(invalid(format!("duplicate key \"{key}\" at byte {at}")));
            }
            seen_metadata = Some(at);
            if p.kind() != Kind::Object {
                return Err("__metadata__ is not an object of strings".to_string());
            }
            p.begin_object().map_err(invalid)?;
            let mut first_pair = true;
            while let Some((k, k_at)) = p.next_key(&mut first_pair).map_err(invalid)? {
                if p.kind() != Kind::String {
                    return Err(format!("__metadata__ value of '{k}' is not a string"));
                }
                let v = p.string().map_err(invalid)?;
                metadata.push((k, v));
                metadata_at.push(k_at);
            }
        } else {
            entries.push(parse_entry(&mut p, key, at)?);
        }
    }
    // Duplicate keys, found by sorting indices: no copy of the keys is made.
    let mut order: Vec<usize> = (0..metadata.len()).collect();
    order.sort_unstable_by(|&a, &b| metadata[a].0.cmp(&metadata[b].0).then(a.cmp(&b)));
    if let Some(w) = order
        .windows(2)
        .find(|w| metadata[w[0]].0 == metadata[w[1]].0)
    {
        let (k, at) = (&metadata[w[1]].0, metadata_at[w[1]]);
        return Err(invalid(format!("duplicate key \"{k}\" at byte {at}")));
    }
    drop(order);
    drop(metadata_at);
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_unstable_by(|&a, &b| entries[a].name.cmp(&entries[b].name).then(a.cmp(&b)));
    if let Some(w) = order
        .windows(2)
        .find(|w| entries[w[0]].name == entries[w[1]].name)
    {
        let e = &entries[w[1]];
        return Err(invalid(format!(
            "duplicate key \"{}\" at byte {}",
            e.name, e.at
        )));
    }
    drop(order);
    validate_layout(&mut entries, data_len)?;
    Ok((metadata, entries))
}

/// The tensors of validated `entries` (in data order) from the data section `data`.
fn tensors_of(
    entries: &mut Vec<Entry>,
    data: &[u8],
    metadata: Vec<(String, String)>,
) -> std::result::Result<Checkpoint, String> {
    let mut tensors = Vec::with_capacity(entries.len());
    for e in entries.drain(..) {
        let raw = &data[e.begin..e.end];
        let values = convert(e.dtype, raw).ok_or_else(|| {
            format!(
                "tensor '{}' has dtype {}: only F32, F64, F16 and BF16 can be read as f32",
                e.name, e.dtype
            )
        })?;
        tensors.push(NamedTensor {
            name: e.name,
            shape: e.shape,
            data: values,
        });
    }
    Ok(Checkpoint { tensors, metadata })
}

/// Reads one tensor entry `{"dtype": .., "shape": [..], "data_offsets": [b, e]}`; other fields
/// are skipped, as the reference ignores them.
fn parse_entry(
    p: &mut json::Parser,
    name: String,
    at: usize,
) -> std::result::Result<Entry, String> {
    if p.kind() != Kind::Object {
        return Err(format!("tensor '{name}': entry is not a JSON object"));
    }
    let invalid = |e: String| format!("header is not valid JSON: {e}");
    p.begin_object().map_err(invalid)?;
    let mut dtype = None;
    let mut shape = None;
    let mut offsets = None;
    let mut first = true;
    while let Some((key, key_at)) = p.next_key(&mut first).map_err(invalid)? {
        let duplicate = || invalid(format!("duplicate key \"{key}\" at byte {key_at}"));
        match key.as_str() {
            "dtype" => {
                if dtype.is_some() {
                    return Err(duplicate());
                }
                if p.kind() != Kind::String {
                    return Err(format!("tensor '{name}': dtype is not a string"));
                }
                let text = p.string().map_err(invalid)?;
                let known = DTYPES
                    .iter()
                    .find(|(n, _)| *n == text)
                    .ok_or_else(|| format!("tensor '{name}': unknown dtype '{text}'"))?;
                dtype = Some(known.0);
            }
            "shape" | "data_offsets" => {
                let slot = if key == "shape" {
                    &mut shape
                } else {
                    &mut offsets
                };
                if slot.is_some() {
                    return Err(duplicate());
                }
                let what = format!("tensor '{name}': {key}");
                *slot = Some(p.uint_array(&what)?);
            }
            _ => p.skip_value().map_err(invalid)?,
        }
    }
    let dtype = dtype.ok_or_else(|| format!("tensor '{name}': no dtype"))?;
    let shape = shape.ok_or_else(|| format!("tensor '{name}': no shape"))?;
    let offsets = offsets.ok_or_else(|| format!("tensor '{name}': no data_offsets"))?;
    let [begin, end] = offsets[..] else {
        return Err(format!(
            "tensor '{name}': data_offsets must hold 2 numbers, not {}",
            offsets.len()
        ));
    };
    if begin > end {
        return Err(format!(
            "tensor '{name}': data_offsets [{begin}, {end}] end before they begin"
        ));
    }
    Ok(Entry {
        name,
        at,
        dtype,
        shape,
        begin,
        end,
    })
}

pub(super) fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Byte lengths agree with dtype and shape; offsets, in order, tile `0..data_len` exactly.
fn validate_layout(entries: &mut [Entry], data_len: usize) -> std::result::Result<(), String> {
    for e in entries.iter() {
        let size = dtype_size(e.dtype).expect("dtype checked when parsed");
        let nbytes = element_count(&e.shape)
            .and_then(|n| n.checked_mul(size))
            .ok_or_else(|| {
                format!(
                    "tensor '{}': shape {:?} overflows the byte count",
                    e.name, e.shape
                )
            })?;
        if e.end - e.begin != nbytes {
            return Err(format!(
                "tensor '{}': data_offsets [{}, {}] span {} bytes but dtype {} and shape {:?} need {}",
                e.name,
                e.begin,
                e.end,
                e.end - e.begin,
                e.dtype,
                e.shape,
                nbytes
            ));
        }
    }
    entries.sort_by_key(|e| (e.begin, e.end));
    let mut expected_begin = 0usize;
    for e in entries.iter() {
        if e.begin != expected_begin {
            let what = if e.begin > expected_begin {
                "a gap"
            } else {
                "an overlap"
            };
            return Err(format!(
                "tensor '{}': data_offsets begin at {} but the previous tensor ends at {} \
                 ({what} in the data section)",
                e.name, e.begin, expected_begin
            ));
        }
        expected_begin = e.end;
    }
    if expected_begin != data_len {
        return Err(format!(
            "the tensors cover {expected_begin} bytes but the data section holds {data_len}"
        ));
    }
    Ok(())
}

/// Converts little-endian raw bytes of a float dtype to `f32`; `None` for other dtypes.
fn convert(dtype: &str, raw: &[u8]) -> Option<Vec<f32>> {
    let values = match dtype {
        "F32" => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        "F64" => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        "F16" => raw
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        "BF16" => raw
            .chunks_exact(2)
            .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))
            .collect(),
        _ => return None,
    };
    Some(values)
}

/// IEEE 754 binary16 to binary32 (exact: every half value is a float value).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match (exp, mant) {
        (0, 0) => sign,
        // Subnormal half: value = mant * 2^-24, a normal f32; exact in f32 arithmetic.
        (0, m) => return sign_of(h) * (m as f32) * (1.0 / 16_777_216.0),
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7fc0_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

fn sign_of(h: u16) -> f32 {
    if h & 0x8000 != 0 {
        -1.0
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miri_f16_conversion_covers_every_class() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        // Exact powers of two, written as constants (Miri's powi is deliberately inexact).
        let (tiny, min_normal) = (1.0 / 16_777_216.0, 1.0 / 16_384.0);
        assert_eq!(f16_to_f32(0x0001), tiny);
        assert_eq!(f16_to_f32(0x8001), -tiny);
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * tiny);
        assert_eq!(f16_to_f32(0x0400), min_normal);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    }

    #[test]
    fn miri_safetensors_round_trip_and_rejections() {
        let w = [1.5f32, -2.0, 0.25];
        let bytes =
            super::super::encode(&[("w", &[3], &w), ("b", &[0], &[])], &[("k", "v")]).unwrap();
        let c = parse(&bytes).unwrap();
        assert_eq!(c.tensor("w").unwrap().data, w);
        assert_eq!(c.tensor("b").unwrap().shape, [0]);
        assert_eq!(c.meta("k"), Some("v"));
        assert_eq!(c.meta("format"), Some("pt"));
        // Every truncation is an error, never a panic.
        for n in 0..bytes.len() {
            assert!(parse(&bytes[..n]).is_err(), "accepted {n} bytes");
        }
        let with = |header: &str, data: &[u8]| {
            let mut b = (header.len() as u64).to_le_bytes().to_vec();
            b.extend_from_slice(header.as_bytes());
            b.extend_from_slice(data);
            b
        };
        let cases = [
            (
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},
                    "a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}"#,
                "duplicate key \"a\"",
            ),
            (
                r#"{"__metadata__":{"k":"1","k":"2"}}"#,
                "duplicate key \"k\"",
            ),
            (
                r#"{"a":{"dtype":"F32","dtype":"F32"}}"#,
                "duplicate key \"dtype\"",
            ),
            (
                r#"{"a":{"dtype":"X","shape":[],"data_offsets":[0,0]}}"#,
                "unknown dtype",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":[[{}]]}}"#,
                "",
            ),
            (r#"{"a":[[[]]]}"#, "entry is not a JSON object"),
        ];
        for (header, problem) in cases {
            let r = parse(&with(header, &[0; 4]));
            if problem.is_empty() {
                assert!(r.is_ok(), "{header}: {r:?}");
            } else {
                assert!(r.unwrap_err().contains(problem), "{header}");
            }
        }
    }
}
