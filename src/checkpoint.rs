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
//! 1. the file holds the 8-byte length; the header length is at most 100,000,000 bytes
//!    ([`MAX_HEADER_LEN`]) and lies inside the file;
//! 2. the header is UTF-8, starts with `{` and is valid JSON (a strict parser: no trailing commas,
//!    comments or duplicate keys; at most [`MAX_JSON_DEPTH`] levels of nesting);
//! 3. `__metadata__`, when present, maps strings to strings; every other key is a tensor with a
//!    known `dtype`, a `shape` of non-negative integers and two `data_offsets` `begin <= end`
//!    (other keys of a tensor entry are ignored, as the reference does);
//! 4. each tensor's byte length `end - begin` equals its element count times its dtype's size
//!    (computed without overflow);
//! 5. taken in offset order, the tensors are contiguous from 0 and cover the whole data section:
//!    no gap, no overlap, nothing left over.
//!
//! Then, to give `f32` values, F32, F64, F16 and BF16 tensors are converted and any other dtype
//! is rejected by name. [`read_expected`] finally compares the tensors with a model's list of
//! names and shapes and names every missing, unexpected or mis-shaped tensor.
//!
//! ## What the writer does
//!
//! [`write()`] stores F32 tensors in the given order, contiguous, with a `__metadata__` of strings
//! that always includes `format: pt` (PyTorch's loader expects it). It writes to a temporary file
//! in the destination's directory, syncs it to disk and renames it over the destination, so a
//! crash never leaves a half-written checkpoint under the real name.

use crate::error::{Error, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The largest header the reader accepts, in bytes (the reference implementation's limit).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// The deepest nesting of JSON arrays and objects the header parser accepts. A safetensors
/// header needs three levels; the limit only stops hostile input from exhausting the stack.
pub const MAX_JSON_DEPTH: usize = 64;

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

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// Writes F32 `tensors` (`(name, shape, values)`, stored in this order) and `metadata` to `path`
/// as a safetensors file, atomically (temporary file in the same directory, fsync, rename).
///
/// `format: pt` is always included; a `format` entry in `metadata` must say `pt`.
///
/// # Errors
/// A tensor whose value count disagrees with its shape, an empty, duplicate or reserved
/// (`__metadata__`) name, a duplicate metadata key, or any I/O failure; the message names the
/// file. On error no file is left at `path`'s temporary name, and `path` itself is untouched.
pub fn write(
    path: &Path,
    tensors: &[(&str, &[usize], &[f32])],
    metadata: &[(&str, &str)],
) -> Result<()> {
    let bytes = encode(tensors, metadata).map_err(|msg| Error::in_file(path, msg))?;
    write_atomically(path, &bytes)
}

/// The bytes of a safetensors file holding `tensors` and `metadata` (see [`write()`]).
pub fn encode(
    tensors: &[(&str, &[usize], &[f32])],
    metadata: &[(&str, &str)],
) -> std::result::Result<Vec<u8>, String> {
    let mut meta: Vec<(&str, &str)> = vec![("format", "pt")];
    for &(key, value) in metadata {
        if key == "format" {
            if value != "pt" {
                return Err(format!(
                    "metadata 'format' must be 'pt' (PyTorch's loader expects it), not '{value}'"
                ));
            }
            continue;
        }
        if meta.iter().any(|(k, _)| *k == key) {
            return Err(format!("metadata key '{key}' is given twice"));
        }
        meta.push((key, value));
    }

    let mut header = String::from("{\"__metadata__\":{");
    for (i, (key, value)) in meta.iter().enumerate() {
        if i > 0 {
            header.push(',');
        }
        push_json_string(&mut header, key);
        header.push(':');
        push_json_string(&mut header, value);
    }
    header.push('}');

    let mut offset = 0usize;
    let mut names = std::collections::HashSet::new();
    for (i, &(name, shape, values)) in tensors.iter().enumerate() {
        if name.is_empty() {
            return Err(format!("tensor {i} has an empty name"));
        }
        if name == "__metadata__" {
            return Err("'__metadata__' is reserved and cannot name a tensor".to_string());
        }
        if !names.insert(name) {
            return Err(format!("tensor '{name}' is given twice"));
        }
        let count = element_count(shape)
            .ok_or_else(|| format!("tensor '{name}': shape {shape:?} overflows"))?;
        if count != values.len() {
            return Err(format!(
                "tensor '{name}': shape {shape:?} holds {count} values but {} were given",
                values.len()
            ));
        }
        let end = offset + 4 * count;
        header.push(',');
        push_json_string(&mut header, name);
        header.push_str(":{\"dtype\":\"F32\",\"shape\":[");
        for (d, dim) in shape.iter().enumerate() {
            if d > 0 {
                header.push(',');
            }
            header.push_str(&dim.to_string());
        }
        header.push_str(&format!("],\"data_offsets\":[{offset},{end}]}}"));
        offset = end;
    }
    header.push('}');
    // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
    while header.len() % 8 != 0 {
        header.push(' ');
    }

    let mut bytes = Vec::with_capacity(8 + header.len() + offset);
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for &(_, _, values) in tensors {
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(bytes)
}

/// Appends `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it to `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::in_file(path, "not a file name"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Hidden, unique per process and call, and matching the `*.safetensors.tmp` ignore rule.
    let tmp = dir.join(format!(
        ".{}-{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        file_name.to_string_lossy()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        // Make the rename itself durable where directories can be synced.
        #[cfg(unix)]
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::in_file(path, format!("cannot write checkpoint: {e}"))
    })
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// Reads and validates the safetensors file at `path` (see the module documentation).
///
/// # Errors
/// An unreadable file or any validation failure, as `"{path}: {problem}"`.
pub fn read(path: &Path) -> Result<Checkpoint> {
    let bytes =
        fs::read(path).map_err(|e| Error::in_file(path, format!("cannot read checkpoint: {e}")))?;
    parse(&bytes).map_err(|msg| Error::in_file(path, msg))
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

/// A tensor entry of the header, before its data is read.
struct Entry {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

/// Parses and validates a whole safetensors file held in memory (see the module documentation).
/// Any byte string gives `Ok` or `Err`, never a panic, and nothing is allocated from a size the
/// file states until that size has been checked against the file's length.
pub fn parse(bytes: &[u8]) -> std::result::Result<Checkpoint, String> {
    if bytes.len() < 8 {
        return Err(format!(
            "not a safetensors file: {} bytes, too short for the 8-byte header length",
            bytes.len()
        ));
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if header_len > MAX_HEADER_LEN {
        return Err(format!(
            "header too large: {header_len} bytes (the limit is {MAX_HEADER_LEN})"
        ));
    }
    let header_end = 8 + header_len as usize;
    if header_end > bytes.len() {
        return Err(format!(
            "header length {header_len} runs past the end of the file ({} bytes)",
            bytes.len()
        ));
    }
    let header = std::str::from_utf8(&bytes[8..header_end])
        .map_err(|e| format!("header is not valid UTF-8: {e}"))?;
    if !header.starts_with('{') {
        return Err("header does not start with '{'".to_string());
    }
    let json = json::parse(header).map_err(|e| format!("header is not valid JSON: {e}"))?;
    let json::Value::Object(members) = json else {
        return Err("header is not a JSON object".to_string());
    };

    let mut metadata = Vec::new();
    let mut entries = Vec::new();
    for (key, value) in members {
        if key == "__metadata__" {
            let json::Value::Object(pairs) = value else {
                return Err("__metadata__ is not an object of strings".to_string());
            };
            for (k, v) in pairs {
                let json::Value::String(v) = v else {
                    return Err(format!("__metadata__ value of '{k}' is not a string"));
                };
                metadata.push((k, v));
            }
        } else {
            entries.push(parse_entry(key, value)?);
        }
    }

    let data = &bytes[header_end..];
    validate_layout(&mut entries, data.len())?;

    let mut tensors = Vec::with_capacity(entries.len());
    for e in entries {
        let raw = &data[e.begin..e.end];
        let values = convert(&e.dtype, raw).ok_or_else(|| {
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

/// Reads one tensor entry `{"dtype": .., "shape": [..], "data_offsets": [b, e]}`.
fn parse_entry(name: String, value: json::Value) -> std::result::Result<Entry, String> {
    let json::Value::Object(fields) = value else {
        return Err(format!("tensor '{name}': entry is not a JSON object"));
    };
    let mut dtype = None;
    let mut shape = None;
    let mut offsets = None;
    for (key, v) in fields {
        match key.as_str() {
            "dtype" => match v {
                json::Value::String(s) => dtype = Some(s),
                _ => return Err(format!("tensor '{name}': dtype is not a string")),
            },
            "shape" => shape = Some(usize_array(&name, "shape", v)?),
            "data_offsets" => offsets = Some(usize_array(&name, "data_offsets", v)?),
            _ => {} // the reference ignores other fields
        }
    }
    let dtype = dtype.ok_or_else(|| format!("tensor '{name}': no dtype"))?;
    let shape = shape.ok_or_else(|| format!("tensor '{name}': no shape"))?;
    let offsets = offsets.ok_or_else(|| format!("tensor '{name}': no data_offsets"))?;
    if dtype_size(&dtype).is_none() {
        return Err(format!("tensor '{name}': unknown dtype '{dtype}'"));
    }
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
        dtype,
        shape,
        begin,
        end,
    })
}

/// A JSON array of non-negative integers that fit in `usize`.
fn usize_array(
    tensor: &str,
    field: &str,
    v: json::Value,
) -> std::result::Result<Vec<usize>, String> {
    let json::Value::Array(items) = v else {
        return Err(format!("tensor '{tensor}': {field} is not an array"));
    };
    items
        .iter()
        .map(|item| match item {
            json::Value::Number(text) => text.parse::<usize>().map_err(|_| {
                format!("tensor '{tensor}': {field} holds {text}, not a non-negative integer")
            }),
            _ => Err(format!("tensor '{tensor}': {field} holds a non-number")),
        })
        .collect()
}

fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Byte lengths agree with dtype and shape; offsets, in order, tile `0..data_len` exactly.
fn validate_layout(entries: &mut [Entry], data_len: usize) -> std::result::Result<(), String> {
    for e in entries.iter() {
        let size = dtype_size(&e.dtype).expect("dtype checked when parsed");
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

/// A small strict JSON parser for safetensors headers (RFC 8259, no extensions).
pub mod json {
    use super::MAX_JSON_DEPTH;
    use std::collections::HashSet;

    /// A JSON value. Numbers keep their text (validated against the JSON grammar), so callers
    /// convert them exactly to the type they need.
    #[derive(Clone, Debug, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Number(String),
        String(String),
        Array(Vec<Value>),
        /// Members in document order; duplicate keys are rejected.
        Object(Vec<(String, Value)>),
    }

    /// Parses one JSON value, allowing only whitespace around it.
    pub fn parse(text: &str) -> Result<Value, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            pos: 0,
        };
        p.skip_ws();
        let v = p.value(0)?;
        p.skip_ws();
        if p.pos != p.s.len() {
            return Err(p.err("unexpected data after the JSON value"));
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        pos: usize,
    }

    impl Parser<'_> {
        fn err(&self, what: &str) -> String {
            format!("{what} at byte {}", self.pos)
        }

        fn peek(&self) -> Option<u8> {
            self.s.get(self.pos).copied()
        }

        fn skip_ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.pos += 1;
            }
        }

        fn expect(&mut self, c: u8) -> Result<(), String> {
            if self.peek() == Some(c) {
                self.pos += 1;
                Ok(())
            } else {
                Err(self.err(&format!("expected '{}'", c as char)))
            }
        }

        fn value(&mut self, depth: usize) -> Result<Value, String> {
            match self.peek() {
                None => Err(self.err("unexpected end of JSON")),
                Some(b'{') => self.object(depth + 1),
                Some(b'[') => self.array(depth + 1),
                Some(b'"') => Ok(Value::String(self.string()?)),
                Some(b't') => self.literal("true", Value::Bool(true)),
                Some(b'f') => self.literal("false", Value::Bool(false)),
                Some(b'n') => self.literal("null", Value::Null),
                Some(b'-' | b'0'..=b'9') => self.number(),
                Some(_) => Err(self.err("unexpected character")),
            }
        }

        fn literal(&mut self, word: &str, v: Value) -> Result<Value, String> {
            if self.s[self.pos..].starts_with(word.as_bytes()) {
                self.pos += word.len();
                Ok(v)
            } else {
                Err(self.err("invalid literal"))
            }
        }

        fn object(&mut self, depth: usize) -> Result<Value, String> {
            if depth > MAX_JSON_DEPTH {
                return Err(self.err("JSON nested too deeply"));
            }
            self.expect(b'{')?;
            let mut members: Vec<(String, Value)> = Vec::new();
            // Duplicate keys are looked up in a set: a linear scan would make a header of a
            // million keys quadratic.
            let mut seen: HashSet<String> = HashSet::new();
            self.skip_ws();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Value::Object(members));
            }
            loop {
                self.skip_ws();
                if self.peek() != Some(b'"') {
                    return Err(self.err("expected a string key"));
                }
                let key_pos = self.pos;
                let key = self.string()?;
                if !seen.insert(key.clone()) {
                    return Err(format!("duplicate key \"{key}\" at byte {key_pos}"));
                }
                self.skip_ws();
                self.expect(b':')?;
                self.skip_ws();
                let v = self.value(depth)?;
                members.push((key, v));
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        return Ok(Value::Object(members));
                    }
                    _ => return Err(self.err("expected ',' or '}'")),
                }
            }
        }

        fn array(&mut self, depth: usize) -> Result<Value, String> {
            if depth > MAX_JSON_DEPTH {
                return Err(self.err("JSON nested too deeply"));
            }
            self.expect(b'[')?;
            let mut items = Vec::new();
            self.skip_ws();
            if self.peek() == Some(b']') {
                self.pos += 1;
                return Ok(Value::Array(items));
            }
            loop {
                self.skip_ws();
                items.push(self.value(depth)?);
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        return Ok(Value::Array(items));
                    }
                    _ => return Err(self.err("expected ',' or ']'")),
                }
            }
        }

        fn digits(&mut self) -> usize {
            let start = self.pos;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            self.pos - start
        }

        fn number(&mut self) -> Result<Value, String> {
            let start = self.pos;
            if self.peek() == Some(b'-') {
                self.pos += 1;
            }
            match self.peek() {
                Some(b'0') => self.pos += 1,
                Some(b'1'..=b'9') => {
                    self.digits();
                }
                _ => return Err(self.err("invalid number")),
            }
            if self.peek() == Some(b'.') {
                self.pos += 1;
                if self.digits() == 0 {
                    return Err(self.err("invalid number: no digits after '.'"));
                }
            }
            if matches!(self.peek(), Some(b'e' | b'E')) {
                self.pos += 1;
                if matches!(self.peek(), Some(b'+' | b'-')) {
                    self.pos += 1;
                }
                if self.digits() == 0 {
                    return Err(self.err("invalid number: no digits in the exponent"));
                }
            }
            let text = std::str::from_utf8(&self.s[start..self.pos]).expect("ASCII digits");
            Ok(Value::Number(text.to_string()))
        }

        fn hex4(&mut self) -> Result<u32, String> {
            let Some(hex) = self.s.get(self.pos..self.pos + 4) else {
                return Err(self.err("truncated \\u escape"));
            };
            let text = std::str::from_utf8(hex).map_err(|_| self.err("invalid \\u escape"))?;
            if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(self.err("invalid \\u escape"));
            }
            let v = u32::from_str_radix(text, 16).map_err(|_| self.err("invalid \\u escape"))?;
            self.pos += 4;
            Ok(v)
        }

        fn string(&mut self) -> Result<String, String> {
            self.expect(b'"')?;
            let mut out = String::new();
            loop {
                let run_start = self.pos;
                while let Some(c) = self.peek() {
                    if c == b'"' || c == b'\\' || c < 0x20 {
                        break;
                    }
                    self.pos += 1;
                }
                // The input is a &str and the run stops only at ASCII bytes: valid UTF-8.
                out.push_str(std::str::from_utf8(&self.s[run_start..self.pos]).expect("UTF-8"));
                match self.peek() {
                    None => return Err(self.err("unterminated string")),
                    Some(b'"') => {
                        self.pos += 1;
                        return Ok(out);
                    }
                    Some(b'\\') => {
                        self.pos += 1;
                        let Some(e) = self.peek() else {
                            return Err(self.err("unterminated escape"));
                        };
                        self.pos += 1;
                        match e {
                            b'"' => out.push('"'),
                            b'\\' => out.push('\\'),
                            b'/' => out.push('/'),
                            b'b' => out.push('\u{8}'),
                            b'f' => out.push('\u{c}'),
                            b'n' => out.push('\n'),
                            b'r' => out.push('\r'),
                            b't' => out.push('\t'),
                            b'u' => {
                                let hi = self.hex4()?;
                                let code = if (0xD800..0xDC00).contains(&hi) {
                                    if !self.s[self.pos..].starts_with(b"\\u") {
                                        return Err(self.err("unpaired surrogate"));
                                    }
                                    self.pos += 2;
                                    let lo = self.hex4()?;
                                    if !(0xDC00..0xE000).contains(&lo) {
                                        return Err(self.err("unpaired surrogate"));
                                    }
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                } else if (0xDC00..0xE000).contains(&hi) {
                                    return Err(self.err("unpaired surrogate"));
                                } else {
                                    hi
                                };
                                out.push(
                                    char::from_u32(code)
                                        .ok_or_else(|| self.err("invalid \\u escape"))?,
                                );
                            }
                            _ => return Err(self.err("invalid escape")),
                        }
                    }
                    Some(_) => return Err(self.err("control character in string")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_covers_every_class() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8001), -(2f32.powi(-24)));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    }

    #[test]
    fn json_parser_accepts_valid_and_rejects_invalid() {
        use json::{parse, Value};
        assert_eq!(
            parse(r#" {"a": [1, -2.5e3, true, null], "b": "x\"\u00e9\ud83d\ude00"} "#).unwrap(),
            Value::Object(vec![
                (
                    "a".into(),
                    Value::Array(vec![
                        Value::Number("1".into()),
                        Value::Number("-2.5e3".into()),
                        Value::Bool(true),
                        Value::Null
                    ])
                ),
                ("b".into(), Value::String("x\"é😀".into()))
            ])
        );
        for bad in [
            "",
            "{",
            "{\"a\":1,}",
            "[1,]",
            "01",
            "1.",
            "-",
            "{\"a\" 1}",
            "{\"a\":1}x",
            "\"\\x\"",
            "\"\\ud800\"",
            "tru",
            "{a:1}",
            "{\"a\":1,\"a\":2}",
            "\"\u{1}\"",
            "1e",
            "[1 2]",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
        let deep = "[".repeat(MAX_JSON_DEPTH + 1) + &"]".repeat(MAX_JSON_DEPTH + 1);
        assert!(parse(&deep).unwrap_err().contains("nested too deeply"));
        let ok = "[".repeat(MAX_JSON_DEPTH) + &"]".repeat(MAX_JSON_DEPTH);
        assert!(parse(&ok).is_ok());
    }
}
