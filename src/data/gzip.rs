//! gzip (RFC 1952) members, read by hand around a raw-deflate decoder.
//!
//! A member is a 10-byte header (magic `1f 8b`, method 8 = deflate, flags, mtime, extra flags,
//! OS), optional fields the flags announce (FEXTRA: a length-prefixed blob; FNAME and FCOMMENT:
//! zero-terminated strings; FHCRC: the low 16 bits of the CRC-32 of the header so far), the
//! raw deflate stream, and an 8-byte trailer: the CRC-32 of the uncompressed data and its length
//! modulo 2^32 (ISIZE), both little-endian.
//!
//! [`Decoder`] decompresses on demand into buffers the caller sizes, so the IDX reader can read
//! and check the header before it allocates anything for the data; [`Decoder::finish`] then
//! checks that the stream ends exactly there and that CRC-32 and ISIZE agree. Only one member
//! per file is accepted: bytes after its trailer are an error.
//!
//! The CRC-32 (the IEEE polynomial, reflected, as gzip and zip use) is always compiled; the
//! decoder needs the `gzip` feature (`miniz_oxide` does the inflating).

/// The first two bytes of every gzip member.
pub const MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `bytes` starts like a gzip member.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// The byte-at-a-time table of the reflected CRC-32 polynomial 0xEDB88320, built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// A running CRC-32 (gzip's checksum).
#[derive(Clone, Copy, Debug)]
pub struct Crc32(u32);

impl Default for Crc32 {
    fn default() -> Self {
        Crc32::new()
    }
}

impl Crc32 {
    pub fn new() -> Crc32 {
        Crc32(0xFFFF_FFFF)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        let mut c = self.0;
        for &b in bytes {
            c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    pub fn value(&self) -> u32 {
        !self.0
    }
}

/// The CRC-32 of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update(bytes);
    c.value()
}

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const RESERVED: u8 = 0xe0;

/// Where the deflate data of the gzip member in `bytes` begins, after checking its header.
pub fn deflate_start(bytes: &[u8]) -> Result<usize, String> {
    const TRUNCATED: &str = "gzip header is truncated";
    if bytes.len() < 10 {
        return Err(TRUNCATED.to_string());
    }
    if !is_gzip(bytes) {
        return Err("not a gzip file (bad magic bytes)".to_string());
    }
    if bytes[2] != 8 {
        return Err(format!(
            "gzip compression method {} is not deflate (8)",
            bytes[2]
        ));
    }
    let flags = bytes[3];
    if flags & RESERVED != 0 {
        return Err(format!(
            "gzip header has reserved flag bits set (0x{flags:02x})"
        ));
    }
    let mut pos = 10usize;
    if flags & FEXTRA != 0 {
        let len = bytes.get(pos..pos + 2).ok_or(TRUNCATED)?;
        let xlen = usize::from(u16::from_le_bytes([len[0], len[1]]));
        pos += 2;
        if bytes.len() - pos < xlen {
            return Err(TRUNCATED.to_string());
        }
        pos += xlen;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let nul = bytes[pos..].iter().position(|&b| b == 0).ok_or(TRUNCATED)?;
            pos += nul + 1;
        }
    }
    if flags & FHCRC != 0 {
        let stored = bytes.get(pos..pos + 2).ok_or(TRUNCATED)?;
        let stored = u16::from_le_bytes([stored[0], stored[1]]);
        let computed = (crc32(&bytes[..pos]) & 0xffff) as u16;
        if stored != computed {
            return Err(format!(
                "gzip header CRC mismatch (stored 0x{stored:04x}, computed 0x{computed:04x})"
            ));
        }
        pos += 2;
    }
    Ok(pos)
}

/// The ISIZE field of the member's trailer (the last 4 bytes): the uncompressed length modulo
/// 2^32, as the file claims it. `None` if the file is too short to hold a trailer.
pub fn trailer_isize(bytes: &[u8]) -> Option<u32> {
    let tail = bytes.len().checked_sub(4).map(|start| &bytes[start..])?;
    Some(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]))
}

/// Deflate cannot expand data by more than about 1032:1 (a 258-byte match in under two bits);
/// anything promising more than this from the compressed size is a lie, checked before any
/// allocation.
pub const MAX_DEFLATE_RATIO: u64 = 1032;

#[cfg(feature = "gzip")]
pub use decoder::Decoder;

#[cfg(feature = "gzip")]
mod decoder {
    use super::{deflate_start, trailer_isize, Crc32, MAX_DEFLATE_RATIO};
    use miniz_oxide::inflate::stream::{inflate, InflateState};
    use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

    /// Decompresses one gzip member incrementally into caller-sized buffers.
    pub struct Decoder<'a> {
        file: &'a [u8],
        /// Where the deflate data begins in `file`.
        start: usize,
        /// Position in `file` of the next compressed byte.
        pos: usize,
        state: Box<InflateState>,
        crc: Crc32,
        produced: u64,
        ended: bool,
    }

    impl<'a> Decoder<'a> {
        /// Checks the gzip header of `file` and prepares to inflate its data.
        pub fn new(file: &'a [u8]) -> Result<Decoder<'a>, String> {
            let pos = deflate_start(file)?;
            Ok(Decoder {
                file,
                start: pos,
                pos,
                state: InflateState::new_boxed(DataFormat::Raw),
                crc: Crc32::new(),
                produced: 0,
                ended: false,
            })
        }

        /// The most bytes the compressed data after the header could possibly inflate to.
        pub fn max_output(&self) -> u64 {
            (self.file.len() - self.start) as u64 * MAX_DEFLATE_RATIO
        }

        /// The uncompressed length modulo 2^32 the trailer claims (`None` when the file is too
        /// short to hold a trailer).
        pub fn claimed_isize(&self) -> Option<u32> {
            trailer_isize(self.file)
        }

        /// How many bytes have been decompressed so far.
        pub fn produced(&self) -> u64 {
            self.produced
        }

        /// Fills `out` with the next decompressed bytes, or fails if the data ends first or is
        /// corrupt.
        pub fn read_exact(&mut self, out: &mut [u8]) -> Result<(), String> {
            let mut filled = 0;
            while filled < out.len() {
                if self.ended {
                    return Err(format!(
                        "decompressed data ends after {} bytes",
                        self.produced
                    ));
                }
                let r = inflate(
                    &mut self.state,
                    &self.file[self.pos..],
                    &mut out[filled..],
                    MZFlush::None,
                );
                self.pos += r.bytes_consumed;
                self.crc.update(&out[filled..filled + r.bytes_written]);
                filled += r.bytes_written;
                self.produced += r.bytes_written as u64;
                match r.status {
                    Ok(MZStatus::StreamEnd) => self.ended = true,
                    Ok(_) if r.bytes_consumed == 0 && r.bytes_written == 0 => {
                        return Err(truncated());
                    }
                    Ok(_) => {}
                    Err(MZError::Buf) => return Err(truncated()),
                    Err(_) => return Err("corrupt compressed data".to_string()),
                }
            }
            Ok(())
        }

        /// Checks that the deflate stream ends here, that the trailer's CRC-32 and ISIZE match
        /// the data, and that nothing follows the trailer.
        pub fn finish(mut self) -> Result<(), String> {
            if !self.ended {
                // Ask for one more byte: the stream must end without producing it.
                let mut probe = [0u8; 1];
                let r = inflate(
                    &mut self.state,
                    &self.file[self.pos..],
                    &mut probe,
                    MZFlush::None,
                );
                self.pos += r.bytes_consumed;
                if r.bytes_written > 0 {
                    return Err(format!(
                        "decompressed data continues past the {} bytes the IDX header promises",
                        self.produced
                    ));
                }
                match r.status {
                    Ok(MZStatus::StreamEnd) => {}
                    Ok(_) | Err(MZError::Buf) => return Err(truncated()),
                    Err(_) => return Err("corrupt compressed data".to_string()),
                }
            }
            let trailer = self
                .file
                .get(self.pos..self.pos + 8)
                .ok_or("gzip trailer is truncated")?;
            let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
            let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
            if crc != self.crc.value() {
                return Err(format!(
                    "gzip CRC-32 mismatch: the trailer says 0x{crc:08x}, the data gives 0x{:08x} \
                     (the file is corrupt)",
                    self.crc.value()
                ));
            }
            if isize != self.produced as u32 {
                return Err(format!(
                    "gzip ISIZE mismatch: the trailer says {isize} bytes, the data is {}",
                    self.produced
                ));
            }
            let rest = self.file.len() - (self.pos + 8);
            if rest > 0 {
                return Err(format!(
                    "{rest} bytes of trailing data after the gzip member"
                ));
            }
            Ok(())
        }
    }

    fn truncated() -> String {
        "compressed data ends early (the file is truncated)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miri_crc32_matches_the_standard_check_value() {
        // The CRC-32 check value of "123456789" (from the CRC catalogue).
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        let mut running = Crc32::new();
        running.update(b"12345");
        running.update(b"6789");
        assert_eq!(running.value(), 0xCBF4_3926);
    }

    #[test]
    fn miri_gzip_header_fields_are_skipped_and_checked() {
        // FEXTRA (2 bytes), FNAME "a", FCOMMENT "b", FHCRC.
        let mut h = vec![
            0x1f,
            0x8b,
            8,
            FEXTRA | FNAME | FCOMMENT | FHCRC,
            0,
            0,
            0,
            0,
            0,
            3,
        ];
        h.extend_from_slice(&[2, 0, 0xaa, 0xbb, b'a', 0, b'b', 0]);
        let crc = (crc32(&h) & 0xffff) as u16;
        h.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(deflate_start(&h), Ok(h.len()));
        let mut bad = h.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(deflate_start(&bad).unwrap_err().contains("header CRC"));
        assert!(deflate_start(&h[..15]).unwrap_err().contains("truncated"));
        let mut reserved = h.clone();
        reserved[3] |= 0x20;
        assert!(deflate_start(&reserved).unwrap_err().contains("reserved"));
        let mut method = h;
        method[2] = 7;
        assert!(deflate_start(&method).unwrap_err().contains("method"));
    }
}
