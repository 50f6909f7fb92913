//! Files a run writes: checked before any work starts, written atomically.
//!
//! ## Writing ([`write_atomically`])
//!
//! The bytes go to a temporary file in the output's own directory, named
//! `.simdnet-PPPPPPPPNNNNNNNN.tmp` (the process id and a per-process counter, 8 hex digits each):
//! short and of fixed length whatever the output is called, so a legal long output name never
//! makes the temporary name too long. The file is synced, renamed over the output, and the
//! directory is synced so that the rename itself survives a crash. A kill at any moment
//! therefore leaves the output either as it was or complete; what it can leave behind is a
//! temporary file, which [`remove_stale_temporaries`] deletes once its process is gone (Linux:
//! `/proc/PID` no longer exists; elsewhere stale files are left alone).
//!
//! ## Pre-flight ([`preflight`])
//!
//! Before a run reads or trains anything, every output (named by its flag) is checked:
//!
//! - it is not the same file as any input or any other output: paths are resolved (symlinks,
//!   `..`) and existing files compared by device and inode too, so a hard link is caught;
//! - if it exists, it is a regular file (a directory, device, FIFO or socket is refused: the
//!   rename would replace it);
//! - its directory exists, is a directory and accepts a new file (a probe temporary file is
//!   created and removed), and its name fits in 255 bytes.
//!
//! Each refusal is an [`Error::refusal`] naming the flag and the file; nothing is touched.

use crate::{Error, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The prefix and suffix of every temporary file simdnet writes.
const TEMP_PREFIX: &str = ".simdnet-";
const TEMP_SUFFIX: &str = ".tmp";

/// The longest file name most file systems take.
const NAME_MAX: usize = 255;

/// The directory of `path` (`.` for a bare file name).
pub fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A fresh temporary path in `dir`.
fn temporary_in(dir: &Path) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        "{TEMP_PREFIX}{:08x}{n:08x}{TEMP_SUFFIX}",
        std::process::id()
    ))
}

/// Writes `bytes` to `path` atomically (see the module documentation). On error `path` is
/// untouched and the temporary file is removed; the message names `path` and `what` it is.
pub fn write_atomically(path: &Path, bytes: &[u8], what: &str) -> Result<()> {
    if path.file_name().is_none() {
        return Err(Error::in_file(path, "not a file name"));
    }
    let dir = directory_of(path);
    let tmp = temporary_in(&dir);
    let result = (|| -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        // Make the rename durable where directories can be synced.
        #[cfg(unix)]
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::in_file(path, format!("cannot write {what}: {e}"))
    })
}

/// The process id in a temporary file name of ours, if `name` is one.
fn temporary_owner(name: &str) -> Option<u32> {
    let hex = name.strip_prefix(TEMP_PREFIX)?.strip_suffix(TEMP_SUFFIX)?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(&hex[..8], 16).ok()
}

/// Deletes the temporary files in `dir` whose process no longer runs (Linux only: elsewhere
/// there is no cheap, safe way to tell, and nothing is deleted). Returns how many it removed.
pub fn remove_stale_temporaries(dir: &Path) -> usize {
    if !Path::new("/proc/self").exists() {
        return 0;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temporary_owner) else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        if !alive && regular && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// What kind of thing `meta` describes, for messages.
fn kind_of(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Checks that `path` names a regular file before it is opened for reading (so a FIFO never
/// blocks and a device is never read); `what` names it in the message.
pub fn require_regular_file(path: &Path, what: &str) -> Result<fs::Metadata> {
    let meta =
        fs::metadata(path).map_err(|e| Error::in_file(path, format!("cannot read {what}: {e}")))?;
    if !meta.is_file() {
        return Err(Error::refusal(format!(
            "{}: {what} is {}, not a regular file",
            path.display(),
            kind_of(&meta)
        )));
    }
    Ok(meta)
}

/// A file's identity: its resolved path, and device and inode when it exists.
#[derive(Debug, PartialEq, Eq)]
struct Identity {
    resolved: PathBuf,
    node: Option<(u64, u64)>,
}

impl Identity {
    fn of(path: &Path) -> Identity {
        let node = fs::metadata(path).ok().and_then(|m| node_of(&m));
        let resolved = fs::canonicalize(path).unwrap_or_else(|_| {
            let dir = fs::canonicalize(directory_of(path)).unwrap_or_else(|_| directory_of(path));
            match path.file_name() {
                Some(name) => dir.join(name),
                None => dir,
            }
        });
        Identity { resolved, node }
    }

    fn same_as(&self, other: &Identity) -> bool {
        self.resolved == other.resolved || (self.node.is_some() && self.node == other.node)
    }
}

#[cfg(unix)]
fn node_of(meta: &fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn node_of(_: &fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// One file of a run: the flag that names it and its path.
#[derive(Clone, Copy, Debug)]
pub struct Named<'a> {
    pub flag: &'a str,
    pub path: &'a Path,
}

/// The pre-flight checks of the module documentation over `outputs` and `inputs`. A pair in
/// `allowed` (output flag, input flag) may name the same file (`--state` and `--resume`).
/// Also removes stale temporary files from the outputs' directories.
pub fn preflight(outputs: &[Named], inputs: &[Named], allowed: &[(&str, &str)]) -> Result<()> {
    let ids: Vec<Identity> = outputs.iter().map(|o| Identity::of(o.path)).collect();
    let input_ids: Vec<Identity> = inputs.iter().map(|i| Identity::of(i.path)).collect();
    for (k, (o, id)) in outputs.iter().zip(&ids).enumerate() {
        for (i, iid) in inputs.iter().zip(&input_ids) {
            if id.same_as(iid) && !allowed.contains(&(o.flag, i.flag)) {
                return Err(Error::refusal(format!(
                    "{} {} is the same file as {} {}: an output must not overwrite an input",
                    o.flag,
                    o.path.display(),
                    i.flag,
                    i.path.display()
                )));
            }
        }
        for (other, oid) in outputs[..k].iter().zip(&ids) {
            if id.same_as(oid) {
                return Err(Error::refusal(format!(
                    "{} {} is the same file as {} {}: two outputs cannot share a file",
                    o.flag,
                    o.path.display(),
                    other.flag,
                    other.path.display()
                )));
            }
        }
        check_output(o)?;
    }
    for o in outputs {
        remove_stale_temporaries(&directory_of(o.path));
    }
    Ok(())
}

/// An output's own checks: a file name, a regular file if it exists, a writable directory.
fn check_output(o: &Named) -> Result<()> {
    let refuse = |what: String| Error::refusal(format!("{} {}: {what}", o.flag, o.path.display()));
    let Some(name) = o.path.file_name() else {
        return Err(refuse("not a file name".into()));
    };
    if name.len() > NAME_MAX {
        return Err(refuse(format!(
            "the file name is {} bytes long, more than the {NAME_MAX} a file system allows",
            name.len()
        )));
    }
    if let Ok(meta) = fs::metadata(o.path) {
        if !meta.is_file() {
            return Err(refuse(format!(
                "exists and is {}, not a regular file: refusing to replace it",
                kind_of(&meta)
            )));
        }
    }
    let dir = directory_of(o.path);
    match fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(refuse(format!("{} is not a directory", dir.display()))),
        Err(_) => {
            return Err(refuse(format!(
                "directory {} does not exist",
                dir.display()
            )))
        }
    }
    let probe = temporary_in(&dir);
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(f) => {
            drop(f);
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(refuse(format!(
            "cannot create a file in directory {}: {e}",
            dir.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_short_fixed_and_recognised() {
        let dir = Path::new("some/dir");
        let a = temporary_in(dir);
        let b = temporary_in(dir);
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), TEMP_PREFIX.len() + 16 + TEMP_SUFFIX.len());
        assert_eq!(temporary_owner(name), Some(std::process::id()));
        assert_eq!(temporary_owner(".simdnet-zz.tmp"), None);
        assert_eq!(temporary_owner("model.safetensors"), None);
    }
}
