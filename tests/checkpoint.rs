//! safetensors: bit-exact round trips, every validation error of the reader, dtype conversion,
//! the strict comparison with a model's tensors, atomic writes and files PyTorch wrote.

use simdnet::checkpoint::{self, Checkpoint, MAX_HEADER_LEN};
use std::fs;
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("simdnet-ckpt-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A file with the given JSON header (unpadded) and data section.
fn file_with(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

fn assert_err(err: impl std::fmt::Display, path: &Path, problem: &str) {
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("{}: ", path.display())),
        "error does not start with the file name {}: {msg}",
        path.display()
    );
    assert!(
        msg.contains(problem),
        "error does not say '{problem}': {msg}"
    );
}

const LENET: [(&str, &[usize]); 10] = [
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

#[test]
fn round_trip_is_bit_exact_and_in_order() {
    let dir = temp_dir("round-trip");
    let path = dir.join("model.safetensors");
    let special = [
        0.0,
        -0.0,
        f32::MIN_POSITIVE / 8.0, // subnormal
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(0x7fc0_1234), // NaN with a payload
        -1.5e-3,
    ];
    let big: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.731).sin()).collect();
    let empty: [f32; 0] = [];
    let tensors: [(&str, &[usize], &[f32]); 4] = [
        ("z.last.but.written.first", &[2, 4], &special),
        ("a\"quoted\\name\u{e9}", &[1000], &big),
        ("scalar", &[], &[42.0]),
        ("empty", &[3, 0], &empty),
    ];
    checkpoint::write(
        &path,
        &tensors,
        &[("epoch", "3"), ("note", "line\nbreak \"q\"")],
    )
    .unwrap();
    let c = checkpoint::read(&path).unwrap();
    assert_eq!(c.tensors.len(), 4);
    for (t, (name, shape, data)) in c.tensors.iter().zip(tensors) {
        assert_eq!(t.name, name);
        assert_eq!(t.shape, shape);
        let got: Vec<u32> = t.data.iter().map(|v| v.to_bits()).collect();
        let want: Vec<u32> = data.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want, "{name}");
    }
    assert_eq!(
        c.metadata,
        vec![
            ("format".to_string(), "pt".to_string()),
            ("epoch".to_string(), "3".to_string()),
            ("note".to_string(), "line\nbreak \"q\"".to_string())
        ]
    );
    assert_eq!(c.meta("epoch"), Some("3"));

    // The layout: 8-byte length, a header padded to a multiple of 8, contiguous F32 data.
    let bytes = fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0);
    assert_eq!(bytes.len(), 8 + n + 4 * (8 + 1000 + 1));
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert!(
        header.starts_with(r#"{"__metadata__":{"format":"pt","epoch":"3","#),
        "{header}"
    );
    assert!(header.contains(
        r#""z.last.but.written.first":{"dtype":"F32","shape":[2,4],"data_offsets":[0,32]}"#
    ));
    assert!(header.contains(r#""scalar":{"dtype":"F32","shape":[],"data_offsets":[4032,4036]}"#));
    assert!(header.contains(r#""empty":{"dtype":"F32","shape":[3,0],"data_offsets":[4036,4036]}"#));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn write_is_atomic_and_leaves_no_temporary_file() {
    let dir = temp_dir("atomic");
    let path = dir.join("best.safetensors");
    checkpoint::write(&path, &[("w", &[2], &[1.0, 2.0])], &[]).unwrap();
    checkpoint::write(&path, &[("w", &[3], &[3.0, 4.0, 5.0])], &[("epoch", "2")]).unwrap();
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["best.safetensors"], "leftover files: {names:?}");
    let c = checkpoint::read(&path).unwrap();
    assert_eq!(c.tensors[0].data, [3.0, 4.0, 5.0]);

    // A failed write names the file, leaves the old checkpoint alone and no temporary file.
    let err = checkpoint::write(&path, &[("w", &[2], &[1.0])], &[]).unwrap_err();
    assert_err(err, &path, "shape [2] holds 2 values but 1 were given");
    assert_eq!(
        checkpoint::read(&path).unwrap().tensors[0].data,
        [3.0, 4.0, 5.0]
    );
    let missing_dir = dir.join("no-such-dir").join("x.safetensors");
    let err = checkpoint::write(&missing_dir, &[("w", &[1], &[1.0])], &[]).unwrap_err();
    assert_err(err, &missing_dir, "cannot write checkpoint");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn writer_rejects_bad_input() {
    let p = Path::new("unused.safetensors");
    let two = [1.0f32, 2.0];
    type Tensors<'a> = Vec<(&'a str, &'a [usize], &'a [f32])>;
    type Case<'a> = (Tensors<'a>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("a", &[2], &two), ("a", &[2], &two)],
            vec![],
            "tensor 'a' is given twice",
        ),
        (vec![("", &[2], &two)], vec![], "empty name"),
        (vec![("__metadata__", &[2], &two)], vec![], "reserved"),
        (
            vec![("a", &[2], &two)],
            vec![("format", "np")],
            "must be 'pt'",
        ),
        (
            vec![("a", &[2], &two)],
            vec![("k", "1"), ("k", "2")],
            "'k' is given twice",
        ),
        (vec![("a", &[usize::MAX, 2], &two)], vec![], "overflows"),
    ];
    for (tensors, meta, problem) in cases {
        let err = checkpoint::write(p, &tensors, &meta).unwrap_err();
        assert_err(err, p, problem);
    }
    assert!(!p.exists());
    // `format: pt` given explicitly is accepted and stored once.
    let bytes = checkpoint::encode(&[("a", &[2], &two)], &[("format", "pt")]).unwrap();
    assert_eq!(checkpoint::parse(&bytes).unwrap().metadata.len(), 1);
}

/// Every validation the reader does, each with its message, through `read` so the file is named.
#[test]
fn reader_validation_errors_name_file_and_problem() {
    let dir = temp_dir("invalid");
    let f32x2 = [0u8; 8];
    let entry = |name: &str, dtype: &str, shape: &str, b: usize, e: usize| {
        format!(r#""{name}":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[{b},{e}]}}"#)
    };
    let mut too_large = (MAX_HEADER_LEN + 1).to_le_bytes().to_vec();
    too_large.extend_from_slice(b"{}");
    let mut past_end = 100u64.to_le_bytes().to_vec();
    past_end.extend_from_slice(b"{}");
    let mut not_utf8 = 2u64.to_le_bytes().to_vec();
    not_utf8.extend_from_slice(&[b'{', 0xff]);
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "short",
            vec![1, 2, 3],
            "too short for the 8-byte header length".into(),
        ),
        (
            "too-large",
            too_large,
            "header too large: 100000001 bytes".into(),
        ),
        (
            "past-end",
            past_end,
            "header length 100 runs past the end of the file (10 bytes)".into(),
        ),
        ("not-utf8", not_utf8, "header is not valid UTF-8".into()),
        (
            "no-brace",
            file_with(" {}", &[]),
            "header does not start with '{'".into(),
        ),
        (
            "bad-json",
            file_with(r#"{"a":}"#, &[]),
            "header is not valid JSON".into(),
        ),
        (
            "trailing-comma",
            file_with(r#"{"a":1,}"#, &[]),
            "header is not valid JSON".into(),
        ),
        (
            "duplicate",
            file_with(
                &format!(
                    "{{{},{}}}",
                    entry("w", "F32", "[2]", 0, 8),
                    entry("w", "F32", "[2]", 0, 8)
                ),
                &f32x2,
            ),
            "duplicate key \"w\"".into(),
        ),
        (
            "meta-not-string",
            file_with(r#"{"__metadata__":{"epoch":3}}"#, &[]),
            "__metadata__ value of 'epoch' is not a string".into(),
        ),
        (
            "meta-not-object",
            file_with(r#"{"__metadata__":[]}"#, &[]),
            "__metadata__ is not an object".into(),
        ),
        (
            "entry-not-object",
            file_with(r#"{"w":[1]}"#, &[]),
            "tensor 'w': entry is not a JSON object".into(),
        ),
        (
            "no-dtype",
            file_with(r#"{"w":{"shape":[2],"data_offsets":[0,8]}}"#, &f32x2),
            "tensor 'w': no dtype".into(),
        ),
        (
            "no-shape",
            file_with(r#"{"w":{"dtype":"F32","data_offsets":[0,8]}}"#, &f32x2),
            "tensor 'w': no shape".into(),
        ),
        (
            "no-offsets",
            file_with(r#"{"w":{"dtype":"F32","shape":[2]}}"#, &f32x2),
            "tensor 'w': no data_offsets".into(),
        ),
        (
            "unknown-dtype",
            file_with(&format!("{{{}}}", entry("w", "F33", "[2]", 0, 8)), &f32x2),
            "tensor 'w': unknown dtype 'F33'".into(),
        ),
        (
            "negative-dim",
            file_with(&format!("{{{}}}", entry("w", "F32", "[-2]", 0, 8)), &f32x2),
            "shape holds -2, not a non-negative integer".into(),
        ),
        (
            "float-dim",
            file_with(&format!("{{{}}}", entry("w", "F32", "[2.0]", 0, 8)), &f32x2),
            "shape holds 2.0".into(),
        ),
        (
            "three-offsets",
            file_with(
                r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}}"#,
                &f32x2,
            ),
            "data_offsets must hold 2 numbers, not 3".into(),
        ),
        (
            "reversed",
            file_with(&format!("{{{}}}", entry("w", "F32", "[0]", 8, 0)), &f32x2),
            "data_offsets [8, 0] end before they begin".into(),
        ),
        (
            "length-mismatch",
            file_with(&format!("{{{}}}", entry("w", "F32", "[3]", 0, 8)), &f32x2),
            "tensor 'w': data_offsets [0, 8] span 8 bytes but dtype F32 and shape [3] need 12"
                .into(),
        ),
        (
            "overflow",
            file_with(
                &format!("{{{}}}", entry("w", "F32", "[4611686018427387904,4]", 0, 8)),
                &f32x2,
            ),
            "overflows the byte count".into(),
        ),
        (
            "gap",
            file_with(
                &format!(
                    "{{{},{}}}",
                    entry("a", "F32", "[1]", 0, 4),
                    entry("b", "F32", "[1]", 8, 12)
                ),
                &[0; 12],
            ),
            "tensor 'b': data_offsets begin at 8 but the previous tensor ends at 4 (a gap".into(),
        ),
        (
            "overlap",
            file_with(
                &format!(
                    "{{{},{}}}",
                    entry("a", "F32", "[2]", 0, 8),
                    entry("b", "F32", "[1]", 4, 8)
                ),
                &f32x2,
            ),
            "(an overlap in the data section)".into(),
        ),
        (
            "not-from-zero",
            file_with(&format!("{{{}}}", entry("a", "F32", "[1]", 4, 8)), &f32x2),
            "begin at 4 but the previous tensor ends at 0".into(),
        ),
        (
            "data-left-over",
            file_with(&format!("{{{}}}", entry("a", "F32", "[1]", 0, 4)), &f32x2),
            "the tensors cover 4 bytes but the data section holds 8".into(),
        ),
        (
            "data-missing",
            file_with(&format!("{{{}}}", entry("a", "F32", "[2]", 0, 8)), &[0; 4]),
            "the tensors cover 8 bytes but the data section holds 4".into(),
        ),
        (
            "int-dtype",
            file_with(
                &format!("{{{}}}", entry("steps", "I64", "[1]", 0, 8)),
                &f32x2,
            ),
            "tensor 'steps' has dtype I64: only F32, F64, F16 and BF16 can be read".into(),
        ),
        (
            "deep",
            file_with(
                &format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100)),
                &[],
            ),
            "nested too deeply".into(),
        ),
    ];
    for (name, bytes, problem) in cases {
        let path = dir.join(name);
        fs::write(&path, &bytes).unwrap();
        let err = checkpoint::read(&path).expect_err(name);
        assert_err(err, &path, &problem);
        // The byte-slice parser gives the same problem without the file name.
        assert!(checkpoint::parse(&bytes).unwrap_err().contains(&problem));
    }
    let missing = dir.join("missing.safetensors");
    assert_err(
        checkpoint::read(&missing).unwrap_err(),
        &missing,
        "cannot read checkpoint",
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn reader_accepts_what_the_reference_accepts() {
    // Unpadded header, extra fields in an entry, whitespace, no metadata, a zero-sized tensor
    // anywhere in the order, offsets listed out of order in the header.
    let header = r#" {"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8],"extra":{"x":[1]}},
                     "e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},
                     "a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}  "#
        .trim_start();
    let mut data = 1.5f32.to_le_bytes().to_vec();
    data.extend_from_slice(&(-2.0f32).to_le_bytes());
    let c = checkpoint::parse(&file_with(header, &data)).unwrap();
    let names: Vec<&str> = c.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "e", "b"]); // data order
    assert_eq!(c.tensor("a").unwrap().data, [1.5]);
    assert_eq!(c.tensor("b").unwrap().data, [-2.0]);
    assert!(c.tensor("e").unwrap().data.is_empty());
    assert!(c.metadata.is_empty());
    // An empty checkpoint is valid.
    assert_eq!(
        checkpoint::parse(&file_with("{}", &[])).unwrap(),
        Checkpoint::default()
    );
}

#[test]
fn f64_f16_bf16_are_converted_written_by_pytorch() {
    let c = checkpoint::read(&fixture("pytorch_dtypes.safetensors")).unwrap();
    let values = [
        0.0f32,
        -0.0,
        1.0,
        -2.5,
        0.375,
        2f32.powi(-24),
        65280.0,
        -1024.0,
    ];
    for name in ["as_f32", "as_f64", "as_f16", "as_bf16"] {
        let t = c.tensor(name).unwrap();
        assert_eq!(t.shape, [2, 4], "{name}");
        let got: Vec<u32> = t.data.iter().map(|v| v.to_bits()).collect();
        let want: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want, "{name}");
    }
    let int = fixture("pytorch_int64.safetensors");
    assert_err(
        checkpoint::read(&int).unwrap_err(),
        &int,
        "tensor 'steps' has dtype I64",
    );
}

#[test]
fn f64_f16_bf16_conversion_of_hand_built_files() {
    // F64 rounds to nearest f32; F16 and BF16 are exact.
    let mut data = Vec::new();
    for v in [0.1f64, -1e300, 3.0] {
        data.extend_from_slice(&v.to_le_bytes());
    }
    for h in [0x3c00u16, 0x0001, 0xfc00, 0x7bff] {
        data.extend_from_slice(&h.to_le_bytes());
    }
    for b in [0x3f80u16, 0xc0a0, 0x0001] {
        data.extend_from_slice(&b.to_le_bytes());
    }
    let header = r#"{"d":{"dtype":"F64","shape":[3],"data_offsets":[0,24]},"h":{"dtype":"F16","shape":[4],"data_offsets":[24,32]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[32,38]}}"#;
    let c = checkpoint::parse(&file_with(header, &data)).unwrap();
    assert_eq!(
        c.tensor("d").unwrap().data,
        [0.1f32, f32::NEG_INFINITY, 3.0]
    );
    assert_eq!(
        c.tensor("h").unwrap().data,
        [1.0, 2f32.powi(-24), f32::NEG_INFINITY, 65504.0]
    );
    assert_eq!(
        c.tensor("b").unwrap().data,
        [1.0, -5.0, f32::from_bits(0x0001_0000)]
    );
}

#[test]
fn read_expected_names_every_missing_unexpected_and_misshaped_tensor() {
    let dir = temp_dir("expected");
    let path = dir.join("m.safetensors");
    let w = vec![0.5f32; 6];
    checkpoint::write(
        &path,
        &[
            ("extra.weight", &[6], &w),
            ("fc.bias", &[6], &w),
            ("fc.weight", &[2, 3], &w),
        ],
        &[],
    )
    .unwrap();
    let err = checkpoint::read_expected(
        &path,
        &[
            ("fc.weight", &[3, 2]),
            ("fc.bias", &[6]),
            ("conv.weight", &[1]),
            ("conv.bias", &[1]),
        ],
    )
    .unwrap_err();
    assert_err(
        err,
        &path,
        "checkpoint does not match the model: missing tensors: conv.weight, conv.bias; \
         unexpected tensors: extra.weight; wrong shapes: fc.weight has shape [2, 3], expected [3, 2]",
    );
    // A match comes back in the expected order.
    let c = checkpoint::read_expected(
        &path,
        &[
            ("fc.weight", &[2, 3]),
            ("extra.weight", &[6]),
            ("fc.bias", &[6]),
        ],
    )
    .unwrap();
    let names: Vec<&str> = c.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["fc.weight", "extra.weight", "fc.bias"]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn pytorch_written_lenet_state_dict_reads_strictly() {
    let path = fixture("pytorch_written.safetensors");
    let c = checkpoint::read_expected(&path, &LENET).unwrap();
    assert_eq!(c.tensors.len(), 10);
    for (t, (name, shape)) in c.tensors.iter().zip(LENET) {
        assert_eq!((t.name.as_str(), t.shape.as_slice()), (name, shape));
        // PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), weights and biases.
        let fan_in: usize = match name {
            "conv1.weight" | "conv1.bias" => 25,
            "conv2.weight" | "conv2.bias" => 150,
            "fc1.weight" | "fc1.bias" => 400,
            "fc2.weight" | "fc2.bias" => 120,
            _ => 84,
        };
        let bound = 1.0 / (fan_in as f32).sqrt();
        assert!(
            t.data.iter().all(|v| v.abs() <= bound),
            "{name} out of its init bound"
        );
        assert!(t.data.iter().any(|&v| v != 0.0));
    }
    assert_eq!(c.meta("format"), Some("pt"));
    let total: usize = c.tensors.iter().map(|t| t.data.len()).sum();
    assert_eq!(total, 61_706);
}
