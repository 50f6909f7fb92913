//! Datasets: MNIST-layout IDX files (Fashion-MNIST, MNIST), where to find them, and a real
//! subset of Fashion-MNIST built into the binary.
//!
//! ## Where the data comes from ([`load`])
//!
//! 1. `--data DIR` when given: an error if it lacks the files (training needs all four,
//!    evaluation the two `t10k` files) and so do torchvision's `DIR/FashionMNIST/raw` and
//!    `DIR/MNIST/raw`; `--data builtin` picks the embedded subset (4.);
//! 2. else `$SIMDNET_DATA` when set: an error if it is empty or lacks the files (never silently
//!    skipped);
//! 3. else `/usr/share/datasets/fashion-mnist` (Debian's `dataset-fashion-mnist`) when it holds
//!    the files (its `.gz` files count only when the `gzip` feature is on);
//! 4. else the embedded subset: 5,000 training images (the first 500 of each class in
//!    Fashion-MNIST's training file) and 1,000 test images (the first 100 of each class in its
//!    test file), raw IDX, built by `src/data/fashion-mnist-subset/make_subset.py`.
//!
//! In a directory each file is `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte` or `t10k-labels-idx1-ubyte`, raw or with `.gz` appended (the raw one
//! is preferred when both exist). Whether a file is compressed is decided by its content.
//!
//! The IDX format and every check are described in [`idx`]; gzip in [`gzip`].

pub mod gzip;
pub mod idx;

pub use idx::{parse_images, parse_labels, Images};

use crate::error::{Error, Result};
use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable naming a data directory (used when `--data` is not given).
pub const DATA_ENV_VAR: &str = "SIMDNET_DATA";

/// Where Debian's `dataset-fashion-mnist` package installs the dataset.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST's class names, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// MNIST's class names: the digits.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// The file names of the four IDX files.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// Images and their labels: image `i` is `images[i * rows * cols..][..rows * cols]`, row-major,
/// one byte per pixel (0 = background), its class `labels[i]` (below 10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
}

impl Dataset {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let size = self.rows * self.cols;
        &self.images[i * size..(i + 1) * size]
    }

    /// Pairs parsed images with parsed labels, checking their counts agree.
    pub fn from_parts(images: Images, labels: Vec<u8>) -> std::result::Result<Dataset, String> {
        if images.count != labels.len() {
            return Err(format!(
                "{} images but {} labels",
                images.count,
                labels.len()
            ));
        }
        Ok(Dataset {
            images: images.pixels,
            labels,
            rows: images.rows,
            cols: images.cols,
        })
    }
}

/// Where a dataset was found. `Display` says which, for the first lines of `train` and `eval`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `--data DIR`.
    Flag(PathBuf),
    /// `$SIMDNET_DATA`.
    Env(PathBuf),
    /// Debian's `dataset-fashion-mnist` directory.
    Debian(PathBuf),
    /// The Fashion-MNIST subset built into the binary.
    Embedded,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(p) => write!(f, "{} (--data)", p.display()),
            Source::Env(p) => write!(f, "{} (${DATA_ENV_VAR})", p.display()),
            Source::Debian(p) => write!(f, "{} (Debian's dataset-fashion-mnist)", p.display()),
            Source::Embedded => write!(
                f,
                "the embedded Fashion-MNIST subset ({} training, {} test images)",
                embedded::TRAIN_COUNT,
                embedded::TEST_COUNT
            ),
        }
    }
}

impl Source {
    /// The class names of the data when they are known: Fashion-MNIST's for Debian's package,
    /// the embedded subset and a path that mentions "fashion"; digits for a path that mentions
    /// "mnist" (and not "fashion"); `None` otherwise.
    pub fn class_names(&self) -> Option<[&'static str; 10]> {
        match self {
            Source::Debian(_) | Source::Embedded => Some(FASHION_MNIST_CLASSES),
            Source::Flag(p) | Source::Env(p) => class_names_for_path(p),
        }
    }
}

fn class_names_for_path(path: &Path) -> Option<[&'static str; 10]> {
    // Canonicalise so that `--data .` inside a `fashion-mnist` directory is recognised too.
    let full = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let text = full.to_string_lossy().to_lowercase();
    if text.contains("fashion") {
        Some(FASHION_MNIST_CLASSES)
    } else if text.contains("mnist") {
        Some(MNIST_CLASSES)
    } else {
        None
    }
}

/// A training set (when asked for), a test set, where they came from and their class names.
#[derive(Clone, Debug)]
pub struct Splits {
    pub train: Option<Dataset>,
    pub test: Dataset,
    pub source: Source,
    pub class_names: Option<[&'static str; 10]>,
}

/// Finds and reads the data (see the module documentation for the order tried). With
/// `need_train` false only the test files are needed and read, and `train` is `None`.
///
/// # Errors
/// A given directory (flag or environment) that does not exist or lacks a needed file, and any
/// malformed file; the message names the path and the problem.
pub fn load(data_flag: Option<&Path>, need_train: bool) -> Result<Splits> {
    load_with(
        data_flag,
        std::env::var_os(DATA_ENV_VAR).map(PathBuf::from),
        Path::new(DEBIAN_DIR),
        need_train,
    )
}

/// Which data [`load`] would read, checking only that the needed files exist (for `info`).
pub fn resolve(data_flag: Option<&Path>, need_train: bool) -> Result<Source> {
    resolve_with(
        data_flag,
        std::env::var_os(DATA_ENV_VAR).map(PathBuf::from),
        Path::new(DEBIAN_DIR),
        need_train,
    )
}

/// [`resolve`] with the environment value and the Debian directory given explicitly.
pub fn resolve_with(
    data_flag: Option<&Path>,
    env_value: Option<PathBuf>,
    debian_dir: &Path,
    need_train: bool,
) -> Result<Source> {
    if let Some(dir) = data_flag {
        if dir.as_os_str() == BUILTIN {
            return Ok(Source::Embedded);
        }
        let dir = torchvision_layout(dir, need_train);
        check_dir(&dir, need_train, "--data")?;
        Ok(Source::Flag(dir))
    } else if let Some(dir) = env_value {
        if dir.as_os_str().is_empty() {
            return Err(Error::new(format!(
                "${DATA_ENV_VAR} is set but empty: set it to a data directory or unset it"
            )));
        }
        if dir.as_os_str() == BUILTIN {
            return Ok(Source::Embedded);
        }
        let dir = torchvision_layout(&dir, need_train);
        check_dir(&dir, need_train, &format!("${DATA_ENV_VAR}"))?;
        Ok(Source::Env(dir))
    } else if debian_usable(debian_dir, need_train) {
        Ok(Source::Debian(debian_dir.to_path_buf()))
    } else {
        Ok(Source::Embedded)
    }
}

/// [`load`] with the environment value and the Debian directory given explicitly (for tests).
pub fn load_with(
    data_flag: Option<&Path>,
    env_value: Option<PathBuf>,
    debian_dir: &Path,
    need_train: bool,
) -> Result<Splits> {
    let source = resolve_with(data_flag, env_value, debian_dir, need_train)?;
    let (train, test) = match &source {
        Source::Flag(dir) | Source::Env(dir) | Source::Debian(dir) => {
            let train = if need_train {
                Some(read_dataset(
                    &find_file(dir, TRAIN_IMAGES),
                    &find_file(dir, TRAIN_LABELS),
                )?)
            } else {
                None
            };
            let test = read_dataset(&find_file(dir, TEST_IMAGES), &find_file(dir, TEST_LABELS))?;
            (train, test)
        }
        Source::Embedded => {
            let (train, test) = embedded::splits()?;
            (need_train.then_some(train), test)
        }
    };
    Ok(Splits {
        train,
        test,
        class_names: source.class_names(),
        source,
    })
}

/// The `--data` value that picks the embedded subset (a directory of that name is `./builtin`).
pub const BUILTIN: &str = "builtin";

/// `dir` itself when it holds the needed files or when no torchvision layout below it does;
/// otherwise torchvision's `dir/FashionMNIST/raw` or `dir/MNIST/raw` (the first complete one),
/// so the root a PyTorch script passes to `torchvision.datasets.FashionMNIST` works as is.
fn torchvision_layout(dir: &Path, need_train: bool) -> PathBuf {
    if missing_files(dir, need_train).is_empty() {
        return dir.to_path_buf();
    }
    ["FashionMNIST", "MNIST"]
        .iter()
        .map(|name| dir.join(name).join("raw"))
        .find(|raw| raw.is_dir() && missing_files(raw, need_train).is_empty())
        .unwrap_or_else(|| dir.to_path_buf())
}

/// The needed file names that `dir` lacks (raw or `.gz`).
fn missing_files(dir: &Path, need_train: bool) -> Vec<&'static str> {
    needed(need_train)
        .iter()
        .copied()
        .filter(|name| !find_file(dir, name).exists())
        .collect()
}

/// Whether Debian's directory holds every needed file in a form this build can read: Debian
/// ships `.gz` files, which need the `gzip` feature; without it they do not count, and the
/// embedded subset is used instead.
fn debian_usable(dir: &Path, need_train: bool) -> bool {
    missing_files(dir, need_train).is_empty()
        && needed(need_train)
            .iter()
            .all(|name| cfg!(feature = "gzip") || dir.join(name).is_file())
}

fn needed(need_train: bool) -> &'static [&'static str] {
    if need_train {
        &[TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]
    } else {
        &[TEST_IMAGES, TEST_LABELS]
    }
}

fn check_dir(dir: &Path, need_train: bool, what: &str) -> Result<()> {
    if !dir.is_dir() {
        return Err(Error::in_file(
            dir,
            format!("data directory (from {what}) does not exist or is not a directory"),
        ));
    }
    let missing = missing_files(dir, need_train);
    if !missing.is_empty() {
        return Err(Error::in_file(
            dir,
            format!(
                "data directory (from {what}) lacks {} (raw or .gz; also looked in torchvision's \
                 FashionMNIST/raw and MNIST/raw under it); {} needs {}",
                missing.join(", "),
                if need_train { "training" } else { "evaluation" },
                if need_train {
                    "all four IDX files"
                } else {
                    "the two t10k files"
                }
            ),
        ));
    }
    Ok(())
}

/// `dir/name` if it exists, else `dir/name.gz` (which may not exist either). Whatever exists
/// counts: a path that is not a regular file is refused by name when it is opened.
fn find_file(dir: &Path, name: &str) -> PathBuf {
    let raw = dir.join(name);
    if raw.exists() {
        raw
    } else {
        dir.join(format!("{name}.gz"))
    }
}

/// Reads and checks an images file (raw or gzip).
pub fn read_images(path: &Path) -> Result<Images> {
    let mut opened = idx::open(path, "images file")?;
    let at = |e: String| Error::in_file(path, e);
    let mut s = opened.stream().map_err(at)?;
    let count = idx::images_header(&mut s).map_err(at)?;
    idx::images_body(s, count).map_err(at)
}

/// Reads and checks a labels file (raw or gzip).
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let mut opened = idx::open(path, "labels file")?;
    let at = |e: String| Error::in_file(path, e);
    let mut s = opened.stream().map_err(at)?;
    let count = idx::labels_header(&mut s).map_err(at)?;
    idx::labels_body(s, count).map_err(at)
}

/// Reads an images file and a labels file, checking from their headers that they hold the same
/// number of items before reading either body.
pub fn read_dataset(images_path: &Path, labels_path: &Path) -> Result<Dataset> {
    let mut images_file = idx::open(images_path, "images file")?;
    let mut labels_file = idx::open(labels_path, "labels file")?;
    let at_images = |e: String| Error::in_file(images_path, e);
    let at_labels = |e: String| Error::in_file(labels_path, e);
    let mut images = images_file.stream().map_err(at_images)?;
    let mut labels = labels_file.stream().map_err(at_labels)?;
    let image_count = idx::images_header(&mut images).map_err(at_images)?;
    let label_count = idx::labels_header(&mut labels).map_err(at_labels)?;
    if image_count != label_count {
        return Err(Error::new(format!(
            "{} holds {image_count} images but {} holds {label_count} labels: the counts must \
             agree",
            images_path.display(),
            labels_path.display(),
        )));
    }
    let images = idx::images_body(images, image_count).map_err(at_images)?;
    let labels = idx::labels_body(labels, label_count).map_err(at_labels)?;
    Dataset::from_parts(images, labels).map_err(Error::new)
}

/// The files `source` reads (none for the embedded subset), in the order train images, train
/// labels, test images, test labels (the first two only with `need_train`).
pub fn input_files(source: &Source, need_train: bool) -> Vec<PathBuf> {
    match source {
        Source::Flag(dir) | Source::Env(dir) | Source::Debian(dir) => needed(need_train)
            .iter()
            .map(|name| find_file(dir, name))
            .collect(),
        Source::Embedded => Vec::new(),
    }
}

/// The Fashion-MNIST subset compiled into the binary.
pub mod embedded {
    use super::{parse_images, parse_labels, Dataset};
    use crate::error::{Error, Result};

    /// Training images in the subset (the first 500 of each class).
    pub const TRAIN_COUNT: usize = 5000;
    /// Test images in the subset (the first 100 of each class).
    pub const TEST_COUNT: usize = 1000;

    const TRAIN_IMAGES: &[u8] = include_bytes!("fashion-mnist-subset/train-images-idx3-ubyte");
    const TRAIN_LABELS: &[u8] = include_bytes!("fashion-mnist-subset/train-labels-idx1-ubyte");
    const TEST_IMAGES: &[u8] = include_bytes!("fashion-mnist-subset/t10k-images-idx3-ubyte");
    const TEST_LABELS: &[u8] = include_bytes!("fashion-mnist-subset/t10k-labels-idx1-ubyte");

    fn parse(name: &str, images: &[u8], labels: &[u8]) -> Result<Dataset> {
        let what = |e: String| Error::new(format!("embedded {name} set: {e}"));
        Dataset::from_parts(
            parse_images(images).map_err(what)?,
            parse_labels(labels).map_err(what)?,
        )
        .map_err(what)
    }

    /// The embedded training and test sets.
    pub fn splits() -> Result<(Dataset, Dataset)> {
        Ok((
            parse("training", TRAIN_IMAGES, TRAIN_LABELS)?,
            parse("test", TEST_IMAGES, TEST_LABELS)?,
        ))
    }
}
