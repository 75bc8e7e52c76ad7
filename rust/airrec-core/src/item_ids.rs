//! Items' external ids: the dataset's own names for them (ASINs, SKUs, URLs), stored in the
//! bundle beside the dense internal ids `0..n_items` the hot path uses.
//!
//! The ids are a CSR of UTF-8 bytes (`item_ext_offsets.npy`, `item_ext_bytes.npy`, memory
//! mapped like the trie's phrases). Lookups by external id use one sorted permutation of the
//! items (4 bytes per item, built at load), so a service resolves a request's ids with a
//! binary search and no second copy of the strings.

use std::path::Path;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::npy::Array;

/// Longest external id, in UTF-8 bytes: ids are names, not payloads (and an error message
/// quoting a hostile 1 MB "id" would be a payload).
pub const MAX_EXTERNAL_ID_BYTES: usize = 256;

/// Characters of an unknown id an error message quotes before cutting it short.
const QUOTED_CHARS: usize = 64;

/// Why `id` cannot be an external id, if it cannot.
pub fn check_external_id(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("an external id must not be empty".into());
    }
    if id.len() > MAX_EXTERNAL_ID_BYTES {
        return Some(format!("external id {} is {} bytes long (at most {MAX_EXTERNAL_ID_BYTES})", quoted(id), id.len()));
    }
    if id.chars().any(char::is_control) {
        return Some(format!("external id {} holds a control character", quoted(id)));
    }
    None
}

/// `id` in quotes for a message, cut to [`QUOTED_CHARS`] characters.
pub(crate) fn quoted(id: &str) -> String {
    match id.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{:?}…", &id[..cut]),
        None => format!("{id:?}"),
    }
}

/// The external ids of a bundle's items, validated: UTF-8, non-empty, at most
/// [`MAX_EXTERNAL_ID_BYTES`], no control characters, unique.
#[derive(Debug)]
pub struct ExternalIds {
    offsets: Array<i64>,
    bytes: Array<u8>,
    /// Item ids ordered by their external id's bytes.
    sorted: Vec<u32>,
}

impl ExternalIds {
    /// Validates the CSR (already shape-checked: `offsets` has `n_items + 1` entries) and
    /// builds the lookup order; `offsets_path` and `bytes_path` name the files in errors.
    pub(crate) fn new(offsets: Array<i64>, bytes: Array<u8>, offsets_path: &Path, bytes_path: &Path) -> Result<Self> {
        let n_bytes = bytes.len() as i64;
        if offsets.first() != Some(&0) || offsets.last() != Some(&n_bytes) || offsets.windows(2).any(|w| w[1] < w[0]) {
            return Err(Error::bundle(offsets_path, format!("offsets must start at 0, never decrease and end at {n_bytes}")));
        }
        let n = offsets.len() - 1;
        let str_at = |i: usize| std::str::from_utf8(&bytes[offsets[i] as usize..offsets[i + 1] as usize]);
        (0..n).into_par_iter().try_for_each(|i| {
            let id = str_at(i).map_err(|_| Error::bundle(bytes_path, format!("the external id of item {i} is not UTF-8")))?;
            match check_external_id(id) {
                Some(why) => Err(Error::bundle(bytes_path, format!("item {i}: {why}"))),
                None => Ok(()),
            }
        })?;
        let raw = |i: u32| &bytes[offsets[i as usize] as usize..offsets[i as usize + 1] as usize];
        let mut sorted: Vec<u32> = (0..n as u32).collect();
        sorted.par_sort_unstable_by(|&a, &b| raw(a).cmp(raw(b)).then(a.cmp(&b)));
        if let Some(w) = sorted.windows(2).find(|w| raw(w[0]) == raw(w[1])) {
            let id = String::from_utf8_lossy(raw(w[0]));
            return Err(Error::bundle(bytes_path, format!("items {} and {} share the external id {}", w[0], w[1], quoted(&id))));
        }
        Ok(ExternalIds { offsets, bytes, sorted })
    }

    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The external id of `item` (which must be `< len()`).
    pub fn get(&self, item: u32) -> &str {
        // Validated as UTF-8 at load.
        std::str::from_utf8(self.raw(item)).unwrap_or("")
    }

    fn raw(&self, item: u32) -> &[u8] {
        &self.bytes[self.offsets[item as usize] as usize..self.offsets[item as usize + 1] as usize]
    }

    /// The internal id of the item named `id`, if the bundle has one.
    pub fn find(&self, id: &str) -> Option<u32> {
        let at = self.sorted.binary_search_by(|&i| self.raw(i).cmp(id.as_bytes())).ok()?;
        Some(self.sorted[at])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Result<ExternalIds> {
        let mut offsets = vec![0i64];
        let mut bytes = Vec::new();
        for n in names {
            bytes.extend_from_slice(n.as_bytes());
            offsets.push(bytes.len() as i64);
        }
        ExternalIds::new(
            Array::from_vec(offsets, vec![names.len() + 1]),
            Array::from_vec(bytes.clone(), vec![bytes.len()]),
            Path::new("o"),
            Path::new("b"),
        )
    }

    #[test]
    fn finds_every_id_and_nothing_else() {
        let e = ids(&["B00X4WHP5E", "sku-17", "42", "küche", "a"]).unwrap();
        for (i, name) in ["B00X4WHP5E", "sku-17", "42", "küche", "a"].iter().enumerate() {
            assert_eq!(e.find(name), Some(i as u32));
            assert_eq!(e.get(i as u32), *name);
        }
        for missing in ["", "b", "sku-1", "sku-170", "4", "B00X4WHP5e"] {
            assert_eq!(e.find(missing), None, "{missing}");
        }
    }

    #[test]
    fn refuses_duplicates_empty_control_and_long_ids() {
        let dup = ids(&["x", "y", "x"]).unwrap_err().to_string();
        assert!(dup.contains("items 0 and 2 share the external id \"x\""), "{dup}");
        assert!(ids(&["x", ""]).unwrap_err().to_string().contains("item 1: an external id must not be empty"));
        assert!(ids(&["a\nb"]).unwrap_err().to_string().contains("control character"));
        let long = "z".repeat(MAX_EXTERNAL_ID_BYTES + 1);
        let msg = ids(&[&long]).unwrap_err().to_string();
        assert!(msg.contains("257 bytes long") && msg.contains('…') && msg.len() < 200, "{msg}");
    }

    #[test]
    fn refuses_bad_offsets_and_bytes() {
        let bad = |offsets: Vec<i64>, bytes: Vec<u8>| {
            let n = offsets.len();
            let m = bytes.len();
            ExternalIds::new(Array::from_vec(offsets, vec![n]), Array::from_vec(bytes, vec![m]), Path::new("o"), Path::new("b"))
                .unwrap_err()
                .to_string()
        };
        assert!(bad(vec![0, 2, 1], b"ab".to_vec()).contains("never decrease"));
        assert!(bad(vec![1, 2], b"ab".to_vec()).contains("start at 0"));
        assert!(bad(vec![0, 2], vec![0xff, 0xfe]).contains("not UTF-8"));
    }
}
