//! Any bytes as a safetensors file: `Ok` or `Err`, never a panic; what is accepted is
//! consistent (each tensor holds as many values as its shape says) and survives a round trip
//! through the writer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use simdnet::checkpoint;

fuzz_target!(|bytes: &[u8]| {
    let Ok(c) = checkpoint::parse(bytes) else {
        return;
    };
    for t in &c.tensors {
        assert_eq!(t.data.len(), t.shape.iter().product::<usize>());
    }
    let tensors: Vec<(&str, &[usize], &[f32])> = c
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice(), t.data.as_slice()))
        .collect();
    let meta: Vec<(&str, &str)> = c
        .metadata
        .iter()
        .filter(|(k, _)| k != "format")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // The writer refuses a format other than "pt" and empty names; everything else must
    // round-trip.
    if c.meta("format").is_some_and(|f| f != "pt") || c.tensors.iter().any(|t| t.name.is_empty()) {
        return;
    }
    let again = checkpoint::parse(&checkpoint::encode(&tensors, &meta).unwrap()).unwrap();
    assert_eq!(again.tensors.len(), c.tensors.len());
    for (a, b) in again.tensors.iter().zip(&c.tensors) {
        assert_eq!((&a.name, &a.shape), (&b.name, &b.shape));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.data), bits(&b.data));
    }
});
