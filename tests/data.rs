//! IDX reading (raw and gzip), every malformed case, data source resolution and the embedded
//! subset.

use simdnet::data::{
    self, embedded, parse_images, parse_labels, read_dataset, read_images, read_labels, Source,
    FASHION_MNIST_CLASSES, MNIST_CLASSES,
};
use std::fs;
use std::path::{Path, PathBuf};

/// A fresh, empty directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("simdnet-data-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn images_idx(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for d in [count, rows, cols] {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

fn labels_idx(labels: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 1];
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

/// `n` 28x28 images with distinct, deterministic pixels, and labels cycling through 0..10.
fn sample(n: usize) -> (Vec<u8>, Vec<u8>) {
    let pixels = (0..n * 784).map(|i| (i * 7 % 251) as u8).collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    (pixels, labels)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

fn assert_err_names(err: impl std::fmt::Display, path: &Path, problem: &str) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "error does not name {}: {msg}",
        path.display()
    );
    assert!(
        msg.contains(problem),
        "error does not say '{problem}': {msg}"
    );
}

/// Builds a gzip member by hand: header with FNAME (as gzip(1) writes), raw deflate, trailer.
#[cfg(feature = "gzip")]
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut v = vec![0x1f, 0x8b, 8, 0x08, 0, 0, 0, 0, 0, 3];
    v.extend_from_slice(b"file.idx\0");
    v.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 6));
    v.extend_from_slice(&data::gzip::crc32(data).to_le_bytes());
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v
}

#[test]
fn raw_images_and_labels_parse_exactly() {
    let (pixels, labels) = sample(3);
    let images = parse_images(&images_idx(3, 28, 28, &pixels)).unwrap();
    assert_eq!((images.count, images.rows, images.cols), (3, 28, 28));
    assert_eq!(images.pixels, pixels);
    assert_eq!(parse_labels(&labels_idx(&labels)).unwrap(), labels);
    // Zero images is a valid (empty) file.
    assert_eq!(parse_images(&images_idx(0, 28, 28, &[])).unwrap().count, 0);
}

#[test]
fn raw_dataset_from_files() {
    let dir = temp_dir("raw");
    let (pixels, labels) = sample(5);
    let ip = write(&dir, "imgs", &images_idx(5, 28, 28, &pixels));
    let lp = write(&dir, "lbls", &labels_idx(&labels));
    let ds = read_dataset(&ip, &lp).unwrap();
    assert_eq!(ds.len(), 5);
    assert!(!ds.is_empty());
    assert_eq!(ds.image(4), &pixels[4 * 784..]);
    assert_eq!(ds.labels, labels);
    fs::remove_dir_all(dir).unwrap();
}

#[cfg(feature = "gzip")]
#[test]
fn gzip_dataset_from_files_equals_raw() {
    let dir = temp_dir("gz");
    let (pixels, labels) = sample(7);
    let ip = write(&dir, "i.gz", &gzip(&images_idx(7, 28, 28, &pixels)));
    let lp = write(&dir, "l.gz", &gzip(&labels_idx(&labels)));
    let ds = read_dataset(&ip, &lp).unwrap();
    assert_eq!(ds.images, pixels);
    assert_eq!(ds.labels, labels);
    fs::remove_dir_all(dir).unwrap();
}

/// Every malformed file: the error names the file and the problem.
#[test]
fn malformed_raw_files_are_rejected_with_file_and_problem() {
    let dir = temp_dir("bad-raw");
    let (pixels, labels) = sample(2);
    let good = images_idx(2, 28, 28, &pixels);

    let mut bad_magic = good.clone();
    bad_magic[0] = 0x12;
    let p = write(&dir, "bad-magic", &bad_magic);
    assert_err_names(
        read_images(&p).unwrap_err(),
        &p,
        "bad magic number 0x12000803",
    );

    let mut wrong_type = good.clone();
    wrong_type[2] = 0x0d;
    let p = write(&dir, "wrong-type", &wrong_type);
    assert_err_names(read_images(&p).unwrap_err(), &p, "element type 0x0d");

    let p = write(&dir, "labels-as-images", &labels_idx(&labels));
    assert_err_names(read_images(&p).unwrap_err(), &p, "(a labels file)");
    let p = write(&dir, "images-as-labels", &good);
    assert_err_names(read_labels(&p).unwrap_err(), &p, "(an images file)");

    let p = write(&dir, "32x32", &images_idx(1, 32, 32, &[0; 1024]));
    assert_err_names(
        read_images(&p).unwrap_err(),
        &p,
        "images are 32x32, expected 28x28",
    );

    let p = write(&dir, "truncated", &good[..good.len() - 1]);
    assert_err_names(read_images(&p).unwrap_err(), &p, "file is truncated");
    let p = write(&dir, "short-header", &good[..10]);
    assert_err_names(
        read_images(&p).unwrap_err(),
        &p,
        "file ends inside the IDX header",
    );
    let p = write(&dir, "empty", &[]);
    assert_err_names(
        read_labels(&p).unwrap_err(),
        &p,
        "file ends inside the IDX header",
    );

    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0, 0, 0]);
    let p = write(&dir, "trailing", &trailing);
    assert_err_names(read_images(&p).unwrap_err(), &p, "3 bytes of trailing data");

    let p = write(&dir, "label-10", &labels_idx(&[1, 2, 10, 3]));
    assert_err_names(
        read_labels(&p).unwrap_err(),
        &p,
        "label 10 at index 2 is not below 10",
    );

    let mut short_labels = labels_idx(&labels);
    short_labels.pop();
    let p = write(&dir, "short-labels", &short_labels);
    assert_err_names(read_labels(&p).unwrap_err(), &p, "file is truncated");

    // A header promising 2^32-1 images in a 16-byte file: rejected without allocating 3 TB.
    let p = write(&dir, "huge-promise", &images_idx(u32::MAX, 28, 28, &[]));
    assert_err_names(read_images(&p).unwrap_err(), &p, "file is truncated");

    let missing = dir.join("no-such-file");
    assert_err_names(read_images(&missing).unwrap_err(), &missing, "cannot read");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn image_and_label_counts_must_agree() {
    let dir = temp_dir("count");
    let (pixels, labels) = sample(3);
    let ip = write(&dir, "imgs", &images_idx(3, 28, 28, &pixels));
    let lp = write(&dir, "lbls", &labels_idx(&labels[..2]));
    let err = read_dataset(&ip, &lp).unwrap_err().to_string();
    assert!(err.contains(&ip.display().to_string()) && err.contains(&lp.display().to_string()));
    assert!(
        err.contains("holds 3 images") && err.contains("holds 2 labels"),
        "{err}"
    );
    fs::remove_dir_all(dir).unwrap();
}

#[cfg(feature = "gzip")]
#[test]
fn malformed_gzip_files_are_rejected_with_file_and_problem() {
    let dir = temp_dir("bad-gz");
    let (pixels, _) = sample(3);
    let idx = images_idx(3, 28, 28, &pixels);
    let gz = gzip(&idx);

    // Cut inside the deflate data.
    let p = write(&dir, "truncated.gz", &gz[..gz.len() / 2]);
    let err = read_images(&p).unwrap_err();
    assert_err_names(&err, &p, "");
    let msg = err.to_string();
    assert!(
        msg.contains("truncated") || msg.contains("ISIZE") || msg.contains("gzip trailer"),
        "{msg}"
    );
    // Cut inside the trailer only.
    let p = write(&dir, "no-trailer.gz", &gz[..gz.len() - 3]);
    assert_err_names(read_images(&p).unwrap_err(), &p, "truncated");

    let mut bad_crc = gz.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff;
    let p = write(&dir, "bad-crc.gz", &bad_crc);
    assert_err_names(read_images(&p).unwrap_err(), &p, "CRC-32 mismatch");

    let mut trailing = gz.clone();
    trailing.extend_from_slice(b"junk");
    let p = write(&dir, "trailing.gz", &trailing);
    // The trailer is no longer at the end: the ISIZE read there disagrees with the header.
    assert_err_names(read_images(&p).unwrap_err(), &p, "gzip trailer says");

    // A second copy of the trailer after the member: the ISIZE at the end agrees, the data
    // decodes, and then the extra bytes are found.
    let mut doubled = gz.clone();
    doubled.extend_from_slice(&gz[gz.len() - 8..]);
    let p = write(&dir, "doubled-trailer.gz", &doubled);
    assert_err_names(
        read_images(&p).unwrap_err(),
        &p,
        "8 bytes of trailing data after the gzip member",
    );

    // A correct gzip member whose decompressed data is longer than the header promises.
    let mut long = idx.clone();
    long.extend_from_slice(&[1, 2]);
    let mut long_gz = gzip(&long);
    let n = long_gz.len();
    long_gz[n - 4..].copy_from_slice(&(idx.len() as u32).to_le_bytes()); // ISIZE agrees with header
    let p = write(&dir, "longer.gz", &long_gz);
    assert_err_names(read_images(&p).unwrap_err(), &p, "continues past");

    // An oversized header promise: 2^32-1 images from a few hundred compressed bytes.
    let p = write(
        &dir,
        "huge.gz",
        &gzip(&images_idx(u32::MAX, 28, 28, &pixels)),
    );
    assert_err_names(read_images(&p).unwrap_err(), &p, "more than the");

    // A promise the ratio allows but ISIZE contradicts.
    let p = write(&dir, "isize.gz", &gzip(&images_idx(4, 28, 28, &pixels)));
    assert_err_names(read_images(&p).unwrap_err(), &p, "gzip trailer says");

    // Corrupt deflate data (a reserved block type 3 right at the start).
    let mut corrupt = gz.clone();
    corrupt[19] = 0xff;
    let p = write(&dir, "corrupt.gz", &corrupt);
    assert!(read_images(&p).is_err());

    let mut bad_method = gz.clone();
    bad_method[2] = 7;
    let p = write(&dir, "method.gz", &bad_method);
    assert_err_names(read_images(&p).unwrap_err(), &p, "compression method 7");

    // A malformed IDX inside a valid gzip member is reported like a raw one.
    let mut bad_magic = idx;
    bad_magic[3] = 2;
    let p = write(&dir, "magic.gz", &gzip(&bad_magic));
    assert_err_names(
        read_images(&p).unwrap_err(),
        &p,
        "bad magic number 0x00000802",
    );
    fs::remove_dir_all(dir).unwrap();
}

#[cfg(not(feature = "gzip"))]
#[test]
fn gzip_without_the_feature_says_how_to_fix_it() {
    let dir = temp_dir("nogz");
    let p = write(&dir, "x.gz", &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]);
    assert_err_names(read_images(&p).unwrap_err(), &p, "`gzip` feature");
    assert!(read_labels(&p).unwrap_err().to_string().contains("gunzip"));
    fs::remove_dir_all(dir).unwrap();
}

/// A directory with the four (or two) files, `n` images each.
fn data_dir(name: &str, n: usize, with_train: bool) -> PathBuf {
    let dir = temp_dir(name);
    let (pixels, labels) = sample(n);
    let mut names = vec![
        ("t10k-images-idx3-ubyte", true),
        ("t10k-labels-idx1-ubyte", false),
    ];
    if with_train {
        names.push(("train-images-idx3-ubyte", true));
        names.push(("train-labels-idx1-ubyte", false));
    }
    for (file, is_images) in names {
        let bytes = if is_images {
            images_idx(n as u32, 28, 28, &pixels)
        } else {
            labels_idx(&labels)
        };
        write(&dir, file, &bytes);
    }
    dir
}

#[test]
fn data_flag_is_used_and_checked() {
    let nowhere = temp_dir("none").join("missing-dir");
    let err = data::load_with(Some(&nowhere), None, &nowhere, true).unwrap_err();
    assert_err_names(err, &nowhere, "does not exist");

    let dir = data_dir("flag-test-only", 4, false);
    let err = data::load_with(Some(&dir), None, &nowhere, true).unwrap_err();
    assert_err_names(
        &err,
        &dir,
        "train-images-idx3-ubyte, train-labels-idx1-ubyte",
    );
    // Evaluation needs only the t10k files.
    let splits = data::load_with(Some(&dir), None, &nowhere, false).unwrap();
    assert!(splits.train.is_none());
    assert_eq!(splits.test.len(), 4);
    assert_eq!(splits.source, Source::Flag(dir.clone()));
    assert_eq!(splits.class_names, None);

    let full = data_dir("flag-full", 3, true);
    // The flag wins over the environment.
    let splits = data::load_with(Some(&full), Some(dir.clone()), &nowhere, true).unwrap();
    assert_eq!(splits.train.as_ref().unwrap().len(), 3);
    assert_eq!(splits.source, Source::Flag(full.clone()));
    assert!(splits.source.to_string().contains("--data"));
    fs::remove_dir_all(dir).unwrap();
    fs::remove_dir_all(full).unwrap();
}

#[test]
fn env_directory_is_used_and_never_silently_skipped() {
    let nowhere = temp_dir("env-none").join("missing");
    let err = data::load_with(None, Some(nowhere.clone()), &nowhere, false).unwrap_err();
    assert_err_names(&err, &nowhere, "$SIMDNET_DATA");
    let err = data::load_with(None, Some(PathBuf::new()), &nowhere, false).unwrap_err();
    assert!(
        err.to_string().contains("SIMDNET_DATA is set but empty"),
        "{err}"
    );

    let dir = data_dir("env-mnist", 2, true);
    let splits = data::load_with(None, Some(dir.clone()), &nowhere, true).unwrap();
    assert_eq!(splits.source, Source::Env(dir.clone()));
    assert!(splits.source.to_string().contains("$SIMDNET_DATA"));
    // The path mentions "mnist" (and not "fashion"): digit class names.
    assert_eq!(splits.class_names, Some(MNIST_CLASSES));

    // A malformed file in the environment's directory is an error, not a fallback.
    fs::write(dir.join("t10k-labels-idx1-ubyte"), [0, 0, 8, 1, 0, 0, 0, 5]).unwrap();
    let err = data::load_with(None, Some(dir.clone()), &nowhere, true).unwrap_err();
    assert_err_names(
        err,
        &dir.join("t10k-labels-idx1-ubyte"),
        "file is truncated",
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn debian_directory_then_embedded_subset() {
    let debian = data_dir("debian-fashion", 2, true);
    let splits = data::load_with(None, None, &debian, true).unwrap();
    assert_eq!(splits.source, Source::Debian(debian.clone()));
    assert_eq!(splits.class_names, Some(FASHION_MNIST_CLASSES));

    // A Debian directory without the files falls through to the embedded subset.
    fs::remove_file(debian.join("train-images-idx3-ubyte")).unwrap();
    let splits = data::load_with(None, None, &debian, true).unwrap();
    assert_eq!(splits.source, Source::Embedded);
    // ...but evaluation needs only the t10k files, which are there.
    let splits = data::load_with(None, None, &debian, false).unwrap();
    assert_eq!(splits.source, Source::Debian(debian.clone()));
    fs::remove_dir_all(debian).unwrap();
}

/// Debian ships `.gz` files: without the `gzip` feature they cannot be read, so the embedded
/// subset is used rather than failing.
#[test]
fn debian_gz_files_count_only_with_the_gzip_feature() {
    let debian = data_dir("debian-gz", 2, true);
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        let raw = debian.join(name);
        let bytes = fs::read(&raw).unwrap();
        #[cfg(feature = "gzip")]
        let bytes = gzip(&bytes);
        fs::write(debian.join(format!("{name}.gz")), bytes).unwrap();
        fs::remove_file(raw).unwrap();
    }
    let source = data::resolve_with(None, None, &debian, true).unwrap();
    if cfg!(feature = "gzip") {
        assert_eq!(source, Source::Debian(debian.clone()));
        assert_eq!(
            data::load_with(None, None, &debian, true)
                .unwrap()
                .test
                .len(),
            2
        );
    } else {
        assert_eq!(source, Source::Embedded);
    }
    fs::remove_dir_all(debian).unwrap();
}

#[test]
fn embedded_subset_is_class_balanced_fashion_mnist() {
    let nowhere = temp_dir("emb").join("missing");
    let splits = data::load_with(None, None, &nowhere, true).unwrap();
    assert_eq!(splits.source, Source::Embedded);
    assert_eq!(splits.class_names, Some(FASHION_MNIST_CLASSES));
    assert!(splits
        .source
        .to_string()
        .contains("5000 training, 1000 test"));
    let train = splits.train.unwrap();
    assert_eq!(
        (train.len(), train.rows, train.cols),
        (embedded::TRAIN_COUNT, 28, 28)
    );
    assert_eq!(splits.test.len(), embedded::TEST_COUNT);
    for (set, per_class) in [(&train, 500), (&splits.test, 100)] {
        let mut counts = [0; 10];
        for &l in &set.labels {
            counts[l as usize] += 1;
        }
        assert_eq!(counts, [per_class; 10]);
        // Real images, not blanks: the mean pixel of Fashion-MNIST is about 73.
        let mean = set.images.iter().map(|&p| p as f64).sum::<f64>() / set.images.len() as f64;
        assert!((60.0..90.0).contains(&mean), "mean pixel {mean}");
    }
    let total: usize = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    .iter()
    .map(|f| {
        fs::metadata(Path::new("src/data/fashion-mnist-subset").join(f))
            .unwrap()
            .len() as usize
    })
    .sum();
    assert!(total <= 5_000_000, "embedded subset is {total} bytes");
}

/// When Debian's package is installed, the embedded test subset is exactly the first 100
/// images of each class of its test file (what make_subset.py says it takes).
#[cfg(feature = "gzip")]
#[test]
fn embedded_subset_matches_debian_files_when_installed() {
    let dir = Path::new(data::DEBIAN_DIR);
    let images_path = dir.join("t10k-images-idx3-ubyte.gz");
    if !images_path.is_file() {
        eprintln!("skipped: {} is not installed", dir.display());
        return;
    }
    let full = read_dataset(&images_path, &dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(full.len(), 10_000);
    let (_, test) = embedded::splits().unwrap();
    let mut taken = [0; 10];
    let mut j = 0;
    for i in 0..full.len() {
        let l = full.labels[i] as usize;
        if taken[l] < 100 {
            taken[l] += 1;
            assert_eq!(test.labels[j], full.labels[i]);
            assert_eq!(test.image(j), full.image(i));
            j += 1;
        }
    }
    assert_eq!(j, 1000);
}

#[test]
fn class_names_follow_the_path() {
    let s = |p: &str| Source::Flag(PathBuf::from(p)).class_names();
    assert_eq!(s("/data/Fashion-MNIST/raw"), Some(FASHION_MNIST_CLASSES));
    assert_eq!(s("/data/fashion_mnist"), Some(FASHION_MNIST_CLASSES));
    assert_eq!(s("/data/MNIST/raw"), Some(MNIST_CLASSES));
    assert_eq!(s("/data/kmnist-like"), Some(MNIST_CLASSES));
    assert_eq!(s("/data/other"), None);
    assert_eq!(Source::Embedded.class_names(), Some(FASHION_MNIST_CLASSES));
}
