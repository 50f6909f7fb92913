//! Interop with PyTorch both ways, without PyTorch at test time (tests/fixtures/generate.py
//! wrote the PyTorch side):
//! - a checkpoint PyTorch's `safetensors.torch.save_file` wrote loads strictly, and our logits
//!   on a fixed batch of real images match the ones PyTorch computed from it;
//! - a checkpoint simdnet wrote (committed; `write_simdnet_checkpoint` below regenerates it)
//!   was loaded by the script with `load_state_dict(strict=True)` into PyTorch's LeNet-5, and
//!   our logits on its batch match PyTorch's;
//! - a save/load round trip is bit-exact and carries the metadata.
//!
//! Logit tolerance: f32 on both sides with different summation orders: `max |ours - torch| <=
//! 1e-5 * max |torch| + 1e-6` (observed differences are ~1e-7 relative).

use std::path::{Path, PathBuf};

use simdnet::checkpoint;
use simdnet::kernels::Kernels;
use simdnet::lenet::{LeNet5, CLASSES, IMAGE_LEN, NUM_PARAMS, PARAMS};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Our logits for the batch in `logits_file` against the ones recorded there.
fn assert_logits_match(model: &LeNet5, logits_file: &str) {
    let f = checkpoint::read(&fixture(logits_file)).unwrap();
    let pixels: Vec<u8> = f
        .tensor("pixels")
        .unwrap()
        .data
        .iter()
        .map(|&p| p as u8)
        .collect();
    let torch = &f.tensor("logits").unwrap().data;
    let batch = pixels.len() / IMAGE_LEN;
    assert_eq!(torch.len(), batch * CLASSES);
    for kernels in Kernels::all() {
        let mut ws = model.workspace(&kernels, batch).unwrap();
        ws.load_images(pixels.chunks(IMAGE_LEN)).unwrap();
        model.forward(&kernels, &mut ws, batch).unwrap();
        let ours = ws.logits(batch);
        let scale = torch.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = ours
            .iter()
            .zip(torch)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= 1e-5 * scale + 1e-6,
            "{}: max |ours - torch| = {err:e} (scale {scale})",
            kernels.isa()
        );
    }
}

#[test]
fn a_checkpoint_pytorch_wrote_loads_and_gives_pytorchs_logits() {
    let model = LeNet5::load(&fixture("pytorch_written.safetensors")).unwrap();
    assert_eq!(model.params().len(), NUM_PARAMS);
    assert_logits_match(&model, "pytorch_written_logits.safetensors");
}

#[test]
fn pytorch_strictly_loaded_the_checkpoint_simdnet_wrote_and_agrees_on_its_logits() {
    let path = fixture("simdnet_written.safetensors");
    let ckpt = checkpoint::read(&path).unwrap();
    assert_eq!(ckpt.meta("format"), Some("pt"));
    // Exactly the ten tensors, in PyTorch's names and shapes.
    let mut names: Vec<(&str, &[usize])> = ckpt
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    names.sort();
    let mut expected: Vec<(&str, &[usize])> = PARAMS.to_vec();
    expected.sort();
    assert_eq!(names, expected);
    let model = LeNet5::load(&path).unwrap();
    assert_logits_match(&model, "simdnet_written_logits.safetensors");
}

#[test]
fn save_then_load_is_bit_exact_with_metadata() {
    let dir = std::env::temp_dir().join(format!("simdnet-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("roundtrip.safetensors");
    let model = LeNet5::new(42);
    model
        .save(
            &path,
            &[
                ("epoch", "3"),
                ("test_accuracy", "0.8571"),
                ("version", "0.1.0"),
            ],
        )
        .unwrap();
    let back = LeNet5::load(&path).unwrap();
    assert!(model
        .params()
        .iter()
        .zip(back.params())
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    let ckpt = checkpoint::read(&path).unwrap();
    assert_eq!(ckpt.meta("format"), Some("pt"));
    assert_eq!(ckpt.meta("epoch"), Some("3"));
    assert_eq!(ckpt.meta("test_accuracy"), Some("0.8571"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_with_a_wrong_shape_is_refused_with_its_name() {
    let dir = std::env::temp_dir().join(format!("simdnet-interop-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.safetensors");
    let model = LeNet5::new(1);
    let split = simdnet::lenet::split(model.params());
    // fc3.weight saved as [84, 10] instead of [10, 84].
    let tensors: Vec<(&str, &[usize], &[f32])> = PARAMS
        .iter()
        .zip(split)
        .map(|(&(name, shape), data)| {
            (
                name,
                if name == "fc3.weight" {
                    &[84usize, 10][..]
                } else {
                    shape
                },
                data,
            )
        })
        .collect();
    checkpoint::write(&path, &tensors, &[]).unwrap();
    let err = LeNet5::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("fc3.weight") && err.contains("bad.safetensors"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Regenerates tests/fixtures/simdnet_written.safetensors (then run
/// `python3 tests/fixtures/generate.py` to record PyTorch's logits for it).
#[test]
#[ignore = "writes the committed fixture; run by hand"]
fn write_simdnet_checkpoint() {
    let model = LeNet5::new(2024);
    model
        .save(
            &fixture("simdnet_written.safetensors"),
            &[
                ("epoch", "0"),
                ("test_accuracy", "0"),
                ("version", env!("CARGO_PKG_VERSION")),
            ],
        )
        .unwrap();
}
