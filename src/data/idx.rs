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

use super::gzip;

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
    let dims = read_header(&mut s, 3, "images")?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows != SIDE || cols != SIDE {
        return Err(format!("images are {rows}x{cols}, expected {SIDE}x{SIDE}"));
    }
    let payload = (count as u64) * (rows * cols) as u64;
    s.check_promise(16, payload, &format!("{count} images of {rows}x{cols}"))?;
    // The size is now known to match the file, so it fits in memory as the file does.
    let mut pixels = vec![0u8; payload as usize];
    s.read_exact(&mut pixels)?;
    s.finish()?;
    Ok(Images {
        pixels,
        count,
        rows,
        cols,
    })
}

/// Parses a labels file (IDX magic 0x00000801, `[count]`, every label below 10), raw or gzip.
pub fn parse_labels(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut s = Stream::open(bytes)?;
    let dims = read_header(&mut s, 1, "labels")?;
    let count = dims[0];
    s.check_promise(8, count as u64, &format!("{count} labels"))?;
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

/// The decompressed bytes of a file, raw or gzip.
enum Stream<'a> {
    Raw {
        bytes: &'a [u8],
        pos: usize,
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
            #[cfg(feature = "gzip")]
            Stream::Gzip(d) => d.read_exact(out),
        }
    }

    /// Checks, before allocating, that `header + payload` bytes is what the file holds.
    fn check_promise(&self, header: u64, payload: u64, what: &str) -> Result<(), String> {
        let total = header + payload;
        match self {
            Stream::Raw { bytes, .. } => {
                let len = bytes.len() as u64;
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
            Stream::Raw { .. } => Ok(()), // the length was checked against the header
            #[cfg(feature = "gzip")]
            Stream::Gzip(d) => d.finish(),
        }
    }
}
