//! Encoding a safetensors file (see the module documentation of `checkpoint`).

use super::read::element_count;
use crate::error::{Error, Result};
use std::path::Path;

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
    crate::outputs::write_atomically(path, &bytes, "checkpoint")
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
