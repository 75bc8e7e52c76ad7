//! A minimal, defensive reader for `.npy` files: memory-mapped when the data is aligned,
//! copied otherwise. Only what bundles use: little-endian `u1`, `i4`, `i8`, `f4`, C order.
//!
//! Every malformed header, unsupported dtype or size mismatch is an [`Error::Bundle`]; nothing here
//! can read past the end of the file.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::{Error, Result};

mod sealed {
    /// Only the four types below implement [`super::Element`]: arrays are built with
    /// `slice::from_raw_parts` over file bytes, which is sound only for plain-old-data types
    /// whose every bit pattern is valid.
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for i32 {}
    impl Sealed for i64 {}
    impl Sealed for f32 {}
}

/// A plain-old-data element type that may appear in a bundle array (sealed: `u8`, `i32`,
/// `i64`, `f32`).
pub trait Element: sealed::Sealed + Copy + Send + Sync + 'static {
    /// The numpy `descr` strings accepted for this type.
    const DESCRS: &'static [&'static str];
    const NAME: &'static str;
}

impl Element for u8 {
    const DESCRS: &'static [&'static str] = &["|u1", "<u1"];
    const NAME: &'static str = "uint8";
}
impl Element for i32 {
    const DESCRS: &'static [&'static str] = &["<i4"];
    const NAME: &'static str = "int32";
}
impl Element for i64 {
    const DESCRS: &'static [&'static str] = &["<i8"];
    const NAME: &'static str = "int64";
}
impl Element for f32 {
    const DESCRS: &'static [&'static str] = &["<f4"];
    const NAME: &'static str = "float32";
}

enum Storage<T> {
    Mapped { map: Arc<Mmap>, offset: usize, len: usize },
    Owned(Vec<T>),
}

/// A read-only n-dimensional array (row-major) of `T`, backed by a memory map or a vector.
pub struct Array<T: Element> {
    storage: Storage<T>,
    shape: Vec<usize>,
}

impl<T: Element> Array<T> {
    /// An owned array (used for arrays the engine derives at load time).
    pub fn from_vec(data: Vec<T>, shape: Vec<usize>) -> Self {
        debug_assert_eq!(data.len(), shape.iter().product::<usize>());
        Array { storage: Storage::Owned(data), shape }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Whether the data are pages of the file (shared by every process that maps it) rather
    /// than a private copy.
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped { .. })
    }

    /// Row `i` of a 2-D array.
    #[inline(always)]
    pub fn row(&self, i: usize) -> &[T] {
        let cols = self.shape[1];
        &self[i * cols..(i + 1) * cols]
    }
}

impl<T: Element> Deref for Array<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        match &self.storage {
            // SAFETY: `load` checked that `offset` is aligned for `T`, that
            // `offset + len * size_of::<T>()` lies inside the map, and every bit pattern is a
            // valid `T` (integers and floats). The map is read-only and lives as long as `self`.
            Storage::Mapped { map, offset, len } => unsafe { std::slice::from_raw_parts(map.as_ptr().add(*offset) as *const T, *len) },
            Storage::Owned(v) => v,
        }
    }
}

impl<T: Element> std::fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Array<{}>{:?}", T::NAME, self.shape)
    }
}

struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
    data_offset: usize,
}

fn parse_header(bytes: &[u8], path: &Path) -> Result<Header> {
    let bad = |m: &str| Error::bundle(path, format!("not a valid .npy file: {m}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("missing magic string"));
    }
    let major = bytes[6];
    let (header_len, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated header"));
            }
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(bad(&format!("unsupported npy version {v}"))),
    };
    let end = start.checked_add(header_len).ok_or_else(|| bad("header length overflow"))?;
    if end > bytes.len() {
        return Err(bad("truncated header"));
    }
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header is not text"))?;
    let descr =
        dict_value(text, "descr").map(|v| v.trim_matches(|c| c == '\'' || c == '"').to_string()).ok_or_else(|| bad("no 'descr'"))?;
    let fortran_order = match dict_value(text, "fortran_order") {
        Some("False") => false,
        Some("True") => true,
        _ => return Err(bad("no 'fortran_order'")),
    };
    let shape_text = dict_value(text, "shape").ok_or_else(|| bad("no 'shape'"))?;
    let inner = shape_text.trim().trim_start_matches('(').trim_end_matches(')');
    let mut shape = Vec::new();
    for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        shape.push(part.parse::<usize>().map_err(|_| bad("bad 'shape'"))?);
    }
    Ok(Header { descr, fortran_order, shape, data_offset: end })
}

/// The raw text of `key`'s value in a numpy header dict (up to the next top-level comma).
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let pos = text.find(&format!("'{key}'"))?;
    let rest = &text[pos + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    None
}

/// Loads `path` as an array of `T`, checking dtype, order and size against the header.
pub fn load<T: Element>(path: &Path) -> Result<Array<T>> {
    let file = File::open(path).map_err(|e| Error::bundle(path, format!("cannot open: {e}")))?;
    load_from(&file, path)
}

/// Loads an already opened file (a bundle opens its files with [`crate::files::open`], which
/// refuses devices, FIFOs and links out of the bundle); `path` names it in errors.
pub fn load_from<T: Element>(file: &File, path: &Path) -> Result<Array<T>> {
    // SAFETY: the bundle files are treated as immutable while loaded (documented); the map is
    // only ever read through bounds-checked slices built below.
    let map = unsafe { Mmap::map(file) }.map_err(|e| Error::bundle(path, format!("cannot map: {e}")))?;
    let header = parse_header(&map, path)?;
    if !T::DESCRS.contains(&header.descr.as_str()) {
        return Err(Error::bundle(path, format!("dtype {:?}, expected {} ({:?})", header.descr, T::NAME, T::DESCRS[0])));
    }
    if header.fortran_order && header.shape.len() > 1 {
        return Err(Error::bundle(path, "Fortran-ordered array; write it C-contiguous"));
    }
    let count = header.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| Error::bundle(path, "shape overflows"))?;
    let size = std::mem::size_of::<T>();
    let needed =
        count.checked_mul(size).and_then(|b| b.checked_add(header.data_offset)).ok_or_else(|| Error::bundle(path, "shape overflows"))?;
    if needed != map.len() {
        return Err(Error::bundle(path, format!("holds {} bytes, its header ({:?}) needs {needed}", map.len(), header.shape)));
    }
    let aligned = (map.as_ptr() as usize + header.data_offset) % std::mem::align_of::<T>() == 0;
    let storage = if aligned {
        Storage::Mapped { map: Arc::new(map), offset: header.data_offset, len: count }
    } else {
        let bytes = &map[header.data_offset..];
        let data = (0..count)
            .map(|i| {
                // SAFETY: `i * size + size <= bytes.len()` by the size check above.
                unsafe { std::ptr::read_unaligned(bytes.as_ptr().add(i * size) as *const T) }
            })
            .collect();
        Storage::Owned(data)
    };
    Ok(Array { storage, shape: header.shape })
}

/// Loads `path` and checks its shape; `None` in `expected` accepts any extent on that axis.
pub fn load_shaped<T: Element>(path: &Path, expected: &[Option<usize>]) -> Result<Array<T>> {
    let file = File::open(path).map_err(|e| Error::bundle(path, format!("cannot open: {e}")))?;
    load_shaped_from(&file, path, expected)
}

/// [`load_shaped`] on an already opened file (see [`load_from`]).
pub fn load_shaped_from<T: Element>(file: &File, path: &Path, expected: &[Option<usize>]) -> Result<Array<T>> {
    let array = load_from::<T>(file, path)?;
    let ok = array.shape.len() == expected.len() && array.shape.iter().zip(expected).all(|(&got, want)| want.is_none_or(|w| w == got));
    if !ok {
        let want: Vec<String> = expected.iter().map(|e| e.map_or("*".to_string(), |v| v.to_string())).collect();
        return Err(Error::bundle(path, format!("shape {:?}, expected ({})", array.shape, want.join(", "))));
    }
    Ok(array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_npy(path: &Path, descr: &str, shape: &str, data: &[u8]) {
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut f = File::create(path).unwrap();
        f.write_all(b"\x93NUMPY\x01\x00").unwrap();
        f.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
        f.write_all(header.as_bytes()).unwrap();
        f.write_all(data).unwrap();
    }

    #[test]
    fn reads_a_float_matrix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let vals: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        write_npy(&p, "<f4", "(2, 3)", &bytes);
        let a = load_shaped::<f32>(&p, &[Some(2), Some(3)]).unwrap();
        assert_eq!(a.row(1), &[3.0, 4.0, 5.0]);
    }

    #[test]
    fn refuses_wrong_dtype_truncation_and_shape() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_npy(&p, "<f8", "(2,)", &[0u8; 16]);
        assert!(load::<f32>(&p).unwrap_err().to_string().contains("dtype"));
        write_npy(&p, "<f4", "(4,)", &[0u8; 12]);
        assert!(load::<f32>(&p).unwrap_err().to_string().contains("bytes"));
        write_npy(&p, "<f4", "(3,)", &[0u8; 12]);
        assert!(load_shaped::<f32>(&p, &[Some(4)]).unwrap_err().to_string().contains("shape"));
        std::fs::write(&p, b"garbage").unwrap();
        assert!(load::<f32>(&p).is_err());
    }

    #[test]
    fn scalar_shape_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_npy(&p, "<i8", "(1,)", &7i64.to_le_bytes());
        assert_eq!(&*load::<i64>(&p).unwrap(), &[7]);
    }
}
