//! Any bytes, as an images file and as a labels file (raw or gzip): `Ok` or `Err`, never a
//! panic, a hang or an allocation the input did not justify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use simdnet::data::{parse_images, parse_labels};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(images) = parse_images(bytes) {
        assert_eq!(
            images.pixels.len(),
            images.count * images.rows * images.cols
        );
    }
    if let Ok(labels) = parse_labels(bytes) {
        assert!(labels.iter().all(|&l| l < 10));
    }
});
