//! IDX files, the format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! ```text
//! magic   4 bytes: 0x00 0x00, the element type (0x08 = unsigned byte), the number of dimensions
//! dims    one big-endian u32 per dimension
//! data    the elements, row-major: exactly the product of the dimensions, nothing after
//! ```
//!
//! Images files have magic 0x00000803 and dimensions `[count, 28, 28]`; labels files
//! 0x00000801 and `[count]`, every label below 10.
//!
//! The header is read and checked before anything is allocated for the data: for a raw file the
//! size it promises must equal the file's length; for a gzip file (recognised by its magic
//! bytes, whatever its name) it must agree with the gzip trailer's ISIZE and be reachable from
//! the compressed size, and then exactly that many bytes are decompressed before checking that
//! the stream ends there and its CRC-32 matches.
//!
//! Files on disk ([`open`]) are read the same way: the path must be a regular file (checked
//! before it is opened), a raw file is read through its handle (header first, then exactly the
//! body the header promises), and a gzip file's compressed bytes (at most the file's size) are
//! held in memory. [`super::read_dataset`] reads both headers and checks that images and labels
//! agree in count before it reads either body.

use super::gzip;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The element type code of unsigned bytes.
const UBYTE: u8 = 0x08;
/// Image side length the model takes.
pub const SIDE: usize = 28;

/// The pixels of an images file: `count` images of `rows x cols` bytes, one after another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    pub pixels: Vec<u8>,
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
}

/// Parses an images file (IDX magic 0x00000803, `[count, 28, 28]`), raw or gzip.
pub fn parse_images(bytes: &[u8]) -> Result<Images, String> {
    let mut s = Stream::open(bytes)?;
    let count = images_header(&mut s)?;
    images_body(s, count)
}

/// Parses a labels file (IDX magic 0x00000801, `[count]`, every label below 10), raw or gzip.
pub fn parse_labels(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut s = Stream::open(bytes)?;
    let count = labels_header(&mut s)?;
    labels_body(s, count)
}

/// Reads and checks an images header (the size it promises included); returns the count.
pub(crate) fn images_header(s: &mut Stream) -> Result<usize, String> {
    let dims = read_header(s, 3, "images")?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows != SIDE || cols != SIDE {
        return Err(format!("images are {rows}x{cols}, expected {SIDE}x{SIDE}"));
    }
    let payload = (count as u64) * (rows * cols) as u64;
    s.check_promise(16, payload, &format!("{count} images of {rows}x{cols}"))?;
    Ok(count)
}

/// The body of an images file whose header [`images_header`] read.
pub(crate) fn images_body(mut s: Stream, count: usize) -> Result<Images, String> {
    let (rows, cols) = (SIDE, SIDE);
    // The size was checked against the file, so it fits in memory as the file does.
    let mut pixels = vec![0u8; count * rows * cols];
    s.read_exact(&mut pixels)?;
    s.finish()?;
    Ok(Images {
        pixels,
        count,
        rows,
        cols,
    })
}

/// Reads and checks a labels header (the size it promises included); returns the count.
pub(crate) fn labels_header(s: &mut Stream) -> Result<usize, String> {
    let dims = read_header(s, 1, "labels")?;
    let count = dims[0];
    s.check_promise(8, count as u64, &format!("{count} labels"))?;
    Ok(count)
}

/// The body of a labels file whose header [`labels_header`] read.
pub(crate) fn labels_body(mut s: Stream, count: usize) -> Result<Vec<u8>, String> {
    let mut labels = vec![0u8; count];
    s.read_exact(&mut labels)?;
    s.finish()?;
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= 10) {
        return Err(format!("label {l} at index {i} is not below 10"));
    }
    Ok(labels)
}

/// Reads and checks the magic and the dimensions; returns the dimensions.
fn read_header(s: &mut Stream, ndims: usize, what: &str) -> Result<Vec<usize>, String> {
    let mut magic = [0u8; 4];
    s.read_exact(&mut magic)
        .map_err(|e| format!("file ends inside the IDX header ({e})"))?;
    let expected = 0x0800 | ndims as u32;
    let found = u32::from_be_bytes(magic);
    if magic[0] != 0 || magic[1] != 0 {
        return Err(format!(
            "bad magic number 0x{found:08x}: not an IDX file (expected 0x{expected:08x} for {what})"
        ));
    }
    if magic[2] != UBYTE {
        return Err(format!(
            "element type 0x{:02x} is not unsigned byte (0x08): bad magic number 0x{found:08x}, \
             expected 0x{expected:08x} for {what}",
            magic[2]
        ));
    }
    if usize::from(magic[3]) != ndims {
        let kind = match magic[3] {
            1 => " (a labels file)",
            3 => " (an images file)",
            _ => "",
        };
        return Err(format!(
            "bad magic number 0x{found:08x}: {} dimension(s){kind}, expected {ndims} for {what} \
             (magic 0x{expected:08x})",
            magic[3]
        ));
    }
    let mut raw = [0u8; 12];
    let raw = &mut raw[..4 * ndims];
    s.read_exact(raw)
        .map_err(|e| format!("file ends inside the IDX header ({e})"))?;
    Ok(raw
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        .collect())
}

/// A file opened for reading: its handle and size (raw), or its compressed bytes (gzip).
pub(crate) enum Opened {
    Raw { file: File, len: u64 },
    Compressed(Vec<u8>),
}

/// Opens `path` (`what` names it in messages): a regular file, checked before it is opened;
/// a gzip file is read whole (exactly its size), a raw one is left to [`Opened::stream`].
pub(crate) fn open(path: &Path, what: &str) -> crate::Result<Opened> {
    let fail = |e: std::io::Error| crate::Error::in_file(path, format!("cannot read: {e}"));
    crate::outputs::require_regular_file(path, what)?;
    let mut file = File::open(path).map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if !meta.is_file() {
        return Err(crate::Error::refusal(format!(
            "{}: {what} is not a regular file",
            path.display()
        )));
    }
    let len = meta.len();
    let mut magic = [0u8; 2];
    let got = (&mut file).take(2).read(&mut magic).map_err(fail)?;
    if got == 2 && gzip::is_gzip(&magic) {
        let mut bytes = Vec::with_capacity(len.min(1 << 30) as usize);
        bytes.extend_from_slice(&magic);
        (&mut file)
            .take(len.saturating_sub(2))
            .read_to_end(&mut bytes)
            .map_err(fail)?;
        return Ok(Opened::Compressed(bytes));
    }
    use std::io::Seek;
    file.rewind().map_err(fail)?;
    Ok(Opened::Raw { file, len })
}

impl Opened {
    /// The decompressed bytes of the file, from its start.
    pub(crate) fn stream(&mut self) -> Result<Stream<'_>, String> {
        match self {
            Opened::Raw { file, len } => Ok(Stream::File {
                file,
                len: *len,
                pos: 0,
            }),
            Opened::Compressed(bytes) => Stream::open(bytes),
        }
    }
}

/// The decompressed bytes of a file, raw or gzip.
pub(crate) enum Stream<'a> {
    Raw {
        bytes: &'a [u8],
        pos: usize,
    },
    File {
        file: &'a mut File,
        len: u64,
        pos: u64,
    },
    #[cfg(feature = "gzip")]
    Gzip(gzip::Decoder<'a>),
}

impl<'a> Stream<'a> {
    fn open(bytes: &'a [u8]) -> Result<Stream<'a>, String> {
        if gzip::is_gzip(bytes) {
            #[cfg(feature = "gzip")]
            return Ok(Stream::Gzip(gzip::Decoder::new(bytes)?));
            #[cfg(not(feature = "gzip"))]
            return Err(
                "the file is gzip-compressed, but this simdnet was built without the \
                        `gzip` feature: rebuild with default features (or `--features gzip`), \
                        or decompress it with `gunzip`"
                    .to_string(),
            );
        }
        Ok(Stream::Raw { bytes, pos: 0 })
    }

    fn read_exact(&mut self, out: &mut [u8]) -> Result<(), String> {
        match self {
            Stream::Raw { bytes, pos } => {
                let end = *pos + out.len();
                if end > bytes.len() {
                    return Err(format!("the file is only {} bytes long", bytes.len()));
                }
                out.copy_from_slice(&bytes[*pos..end]);
                *pos = end;
                Ok(())
            }
            Stream::File { file, len, pos } => {
                let end = *pos + out.len() as u64;
                if end > *len {
                    return Err(format!("the file is only {len} bytes long"));
                }
                file.read_exact(out)
                    .map_err(|e| format!("cannot read: {e}"))?;
                *pos = end;
                Ok(())
            }
            #[cfg(feature = "gzip")]
            Stream::Gzip(d) => d.read_exact(out),
        }
    }

    /// Checks, before allocating, that `header + payload` bytes is what the file holds.
    fn check_promise(&self, header: u64, payload: u64, what: &str) -> Result<(), String> {
        let total = header + payload;
        let raw_len = match self {
            Stream::Raw { bytes, .. } => Some(bytes.len() as u64),
            Stream::File { len, .. } => Some(*len),
            #[cfg(feature = "gzip")]
            Stream::Gzip(_) => None,
        };
        match self {
            Stream::Raw { .. } | Stream::File { .. } => {
                let len = raw_len.expect("a raw stream's length");
                if len < total {
                    Err(format!(
                        "file is truncated: the header promises {what} ({total} bytes in all) but \
                         the file holds {len} bytes"
                    ))
                } else if len > total {
                    Err(format!(
                        "{} bytes of trailing data after the {what} the header promises ({total} \
                         bytes)",
                        len - total
                    ))
                } else {
                    Ok(())
                }
            }
            #[cfg(feature = "gzip")]
            Stream::Gzip(d) => {
                if total > d.max_output() {
                    return Err(format!(
                        "the header promises {what} ({total} bytes), more than the {} compressed \
                         bytes can hold: the file is truncated or corrupt",
                        d.max_output() / gzip::MAX_DEFLATE_RATIO
                    ));
                }
                match d.claimed_isize() {
                    Some(isize) if isize == total as u32 => Ok(()),
                    Some(isize) => Err(format!(
                        "the header promises {what} ({total} bytes) but the gzip trailer says \
                         the data is {isize} bytes (modulo 2^32): the file is truncated or \
                         corrupt"
                    )),
                    None => Err("gzip trailer is missing".to_string()),
                }
            }
        }
    }

    fn finish(self) -> Result<(), String> {
        match self {
            // The length was checked against the header.
            Stream::Raw { .. } | Stream::File { .. } => Ok(()),
            #[cfg(feature = "gzip")]
            Stream::Gzip(d) => d.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels_file(labels: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, 1];
        b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        b.extend_from_slice(labels);
        b
    }

    #[test]
    fn miri_idx_reads_raw_files_and_rejects_every_truncation() {
        let file = labels_file(&[0, 9, 3]);
        assert_eq!(parse_labels(&file), Ok(vec![0, 9, 3]));
        for n in 0..file.len() {
            assert!(parse_labels(&file[..n]).is_err(), "{n} bytes accepted");
        }
        let mut longer = file.clone();
        longer.push(1);
        assert!(parse_labels(&longer).unwrap_err().contains("trailing"));
        assert!(parse_labels(&labels_file(&[10]))
            .unwrap_err()
            .contains("label 10"));
        // A header promising 2^32-1 images is refused before anything is allocated for them.
        let mut images = vec![0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 28, 0, 0, 0, 28];
        assert!(parse_images(&images).unwrap_err().contains("truncated"));
        images[4..8].copy_from_slice(&1u32.to_be_bytes());
        images.extend(std::iter::repeat_n(7u8, SIDE * SIDE));
        let parsed = parse_images(&images).unwrap();
        assert_eq!((parsed.count, parsed.pixels.len()), (1, SIDE * SIDE));
        assert!(parse_labels(&images).unwrap_err().contains("magic"));
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn miri_idx_reads_gzip_files_and_checks_their_trailer() {
        let gz = include_bytes!("../../fuzz/corpus/idx/valid-labels-5.gz");
        let labels = parse_labels(gz).unwrap();
        assert_eq!(labels.len(), 5);
        let mut bad = gz.to_vec();
        let n = bad.len();
        bad[n - 8] ^= 1; // the CRC-32
        assert!(parse_labels(&bad).is_err());
        assert!(parse_labels(&gz[..n - 1]).is_err());
    }
}
