//! Opening bundle files without trusting the directory: a bundle may come from anyone, and the
//! engine reads it inside a server that must not hang or read outside it.
//!
//! Only regular files that live in the bundle directory are opened. A symlink is followed only
//! when its target stays inside the directory; devices, FIFOs and sockets are refused before
//! they are opened (a FIFO would block `open`, `/dev/zero` would never end), and the open
//! itself is non-blocking and `O_NOFOLLOW`, then re-checked on the descriptor, so a file
//! swapped between the check and the open is still caught.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Largest `manifest.json` the engine reads: manifests are a few KB, and an unbounded read of
/// a hostile one is an allocation the attacker sizes.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// A bundle file opened for reading, with the size its descriptor reports.
#[derive(Debug)]
pub struct BundleFile {
    pub path: PathBuf,
    pub file: File,
    pub len: u64,
}

/// Whether `name` is a plain file name (no separators, no `.`-prefix, no NUL, not empty).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\\', '\0']) && !name.starts_with('.')
}

fn regular(path: &Path, meta: &Metadata) -> Result<()> {
    if meta.is_file() {
        return Ok(());
    }
    let kind = if meta.is_dir() { "a directory" } else { "not a regular file (device, FIFO or socket?)" };
    Err(Error::bundle(path, format!("{kind}: bundle files must be regular files")))
}

/// The real path of `name` inside `dir` (the canonical `dir`), after following a symlink that
/// must stay inside it.
fn resolve(dir: &Path, name: &str) -> Result<PathBuf> {
    if !is_plain_name(name) {
        return Err(Error::bundle(dir, format!("manifest names a file outside the bundle: {name:?}")));
    }
    let path = dir.join(name);
    let link = std::fs::symlink_metadata(&path).map_err(|e| Error::bundle(&path, format!("missing file: {e}")))?;
    if !link.file_type().is_symlink() {
        regular(&path, &link)?;
        return Ok(path);
    }
    let target = std::fs::canonicalize(&path).map_err(|e| Error::bundle(&path, format!("broken symlink: {e}")))?;
    if target.parent() != Some(dir) {
        return Err(Error::bundle(&path, format!("symlink to {} leaves the bundle directory", target.display())));
    }
    Ok(target)
}

#[cfg(unix)]
fn open_options() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = OpenOptions::new();
    // O_NONBLOCK: opening a FIFO that appeared after the check returns at once instead of
    // waiting for a writer. O_NOFOLLOW: the resolved path must not have become a link.
    o.read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC);
    o
}

#[cfg(not(unix))]
fn open_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true);
    o
}

/// Opens `name` in the bundle directory `dir` (canonicalised by the caller with
/// [`canonical_dir`]), refusing anything but a regular file inside it.
pub fn open(dir: &Path, name: &str) -> Result<BundleFile> {
    let path = resolve(dir, name)?;
    let file = open_options().open(&path).map_err(|e| Error::bundle(&path, format!("cannot open: {e}")))?;
    let meta = file.metadata().map_err(|e| Error::bundle(&path, format!("cannot stat: {e}")))?;
    regular(&path, &meta)?;
    Ok(BundleFile { path, file, len: meta.len() })
}

/// The canonical form of a bundle directory, or a typed error when it is not one.
pub fn canonical_dir(dir: &Path) -> Result<PathBuf> {
    let real = std::fs::canonicalize(dir).map_err(|e| Error::bundle(dir, format!("cannot open the bundle directory: {e}")))?;
    if !real.is_dir() {
        return Err(Error::bundle(dir, "not a directory"));
    }
    Ok(real)
}

impl BundleFile {
    /// The whole file, read from its start, refusing one longer than `limit` bytes (checked on
    /// the descriptor and again while reading, since a file can grow while it is read).
    /// The whole file, memory-mapped read-only; its length must still be the one checked
    /// against the manifest.
    pub fn map(&self) -> Result<memmap2::Mmap> {
        // SAFETY: a read-only, private mapping of a regular file opened by this module. Bundle
        // files are immutable once written (writers replace whole directories); the mapping
        // is only read through the returned `Mmap`, like every `.npy` array of the bundle.
        let map = unsafe { memmap2::Mmap::map(&self.file) }.map_err(|e| Error::bundle(&self.path, format!("cannot map: {e}")))?;
        if map.len() as u64 != self.len {
            return Err(Error::bundle(&self.path, format!("mapped {} bytes, its size is {} (changed while opened?)", map.len(), self.len)));
        }
        Ok(map)
    }

    pub fn read_all(&self, limit: u64) -> Result<Vec<u8>> {
        if self.len > limit {
            return Err(Error::bundle(&self.path, format!("{} bytes, more than the {limit} allowed", self.len)));
        }
        let mut out = Vec::with_capacity(self.len as usize);
        let mut reader = &self.file;
        reader.seek(SeekFrom::Start(0)).map_err(|e| Error::bundle(&self.path, format!("cannot seek: {e}")))?;
        reader.take(limit + 1).read_to_end(&mut out).map_err(|e| Error::bundle(&self.path, format!("cannot read: {e}")))?;
        if out.len() as u64 != self.len {
            return Err(Error::bundle(&self.path, format!("read {} bytes, its size is {} (changed while read?)", out.len(), self.len)));
        }
        Ok(out)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn dir_with_file() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a.npy"), b"hello").unwrap();
        let dir = canonical_dir(t.path()).unwrap();
        (t, dir)
    }

    #[test]
    fn opens_a_regular_file_and_reads_it() {
        let (_t, dir) = dir_with_file();
        let f = open(&dir, "a.npy").unwrap();
        assert_eq!(f.len, 5);
        assert_eq!(f.read_all(5).unwrap(), b"hello");
        assert!(open(&dir, "a.npy").unwrap().read_all(4).is_err());
    }

    #[test]
    fn refuses_names_that_leave_the_directory() {
        let (_t, dir) = dir_with_file();
        for name in ["../a.npy", "", ".hidden", "a/b", "a\0b"] {
            assert!(matches!(open(&dir, name), Err(Error::Bundle { .. })), "{name:?}");
        }
    }

    #[test]
    fn follows_only_links_that_stay_inside() {
        let (_t, dir) = dir_with_file();
        std::os::unix::fs::symlink(dir.join("a.npy"), dir.join("inside.npy")).unwrap();
        assert_eq!(open(&dir, "inside.npy").unwrap().len, 5);
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero.npy")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join("out.npy")).unwrap();
        std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("broken.npy")).unwrap();
        for name in ["zero.npy", "out.npy", "broken.npy"] {
            assert!(matches!(open(&dir, name), Err(Error::Bundle { .. })), "{name}");
        }
    }

    #[test]
    fn refuses_fifos_and_directories_without_blocking() {
        let (_t, dir) = dir_with_file();
        let fifo = std::ffi::CString::new(dir.join("fifo.npy").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a directory entry.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        std::fs::create_dir(dir.join("sub.npy")).unwrap();
        for name in ["fifo.npy", "sub.npy"] {
            let err = open(&dir, name).unwrap_err().to_string();
            assert!(err.contains("regular file"), "{name}: {err}");
        }
    }
}
