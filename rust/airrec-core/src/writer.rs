//! The one bundle writer (docs/online-path.md §0): a complete bundle directory from in-memory
//! arrays. `airrec.bundle.write_bundle` in Python validates and converts its arguments and
//! calls [`BundleArrays::write`] through the binding; this crate's tests and benches call it
//! directly.
//!
//! - [`npy_bytes`] / [`write_npy`]: `.npy` version 1 files (header padded to 64 bytes,
//!   little-endian, C order), as `np.save` writes them, so every array can be memory-mapped.
//! - [`BundleArrays::write`]: the arrays, the folded arrays of format v2 ([`Composer::fold`]),
//!   usearch index files (cosine, f32) keyed by item id per domain and by leaf node id, any
//!   extra files, and the manifest last (sha256 and byte size of every file). Files are
//!   fsynced; the caller writes into a fresh directory and renames it into place.

use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::bundle::{Dims, FORMAT_VERSION, MANIFEST, MAX_ABS_VALUE};
use crate::compose::{ComposeWeights, Composer};
use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::npy::Array;

// ------------------------------------------------------------------------------------------
// .npy
// ------------------------------------------------------------------------------------------

/// An element type `.npy` files can hold here.
pub trait NpyWrite: Copy {
    const DESCR: &'static str;
    fn put(self, out: &mut Vec<u8>);
}

macro_rules! npy_write {
    ($t:ty, $d:expr) => {
        impl NpyWrite for $t {
            const DESCR: &'static str = $d;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
npy_write!(u8, "|u1");
npy_write!(i32, "<i4");
npy_write!(i64, "<i8");
npy_write!(f32, "<f4");
npy_write!(f64, "<f8");

/// The bytes of a `.npy` (format 1.0) file holding `data` with `shape`, C order. Panics if the
/// shape does not match the data length.
pub fn npy_bytes<T: NpyWrite>(data: &[T], shape: &[usize]) -> Vec<u8> {
    assert_eq!(shape.iter().product::<usize>(), data.len(), "shape {shape:?} for {} values", data.len());
    let shape_text = match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        dims => format!("({})", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}", T::DESCR);
    // Magic (6) + version (2) + header length (2) + header, padded with spaces and a final
    // newline to a multiple of 64 bytes so the data is aligned.
    let unpadded = 10 + header.len() + 1;
    header.extend(std::iter::repeat_n(' ', unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 8);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in data {
        v.put(&mut out);
    }
    out
}

pub(crate) fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::bundle(path, format!("cannot write: {e}"))
}

/// Writes `bytes` to `path` and fsyncs it (a crash after [`BundleArrays::write`] returns loses
/// nothing).
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| io_err(path, e))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| io_err(path, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(|e| io_err(dir, e))
}

/// Writes `data` with `shape` as a `.npy` file.
pub fn write_npy<T: NpyWrite>(path: &Path, data: &[T], shape: &[usize]) -> Result<()> {
    std::fs::write(path, npy_bytes(data, shape)).map_err(|e| io_err(path, e))
}

/// The manifest's `config_sha256`: sha256 of the config's canonical JSON (this crate's
/// serialisation: fixed key order, shortest round-trip floats), so a config edited after
/// writing is caught like any edited file, whatever the manifest's whitespace.
pub fn config_sha256(config: &EngineConfig) -> String {
    sha256_hex(serde_json::to_string(config).expect("a config serialises").as_bytes())
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

// ------------------------------------------------------------------------------------------
// Composition weights
// ------------------------------------------------------------------------------------------

/// The composition and score-head weights of docs/online-path.md §4 (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Composition {
    pub dim: usize,
    pub attn_dim: usize,
    pub n_heads: usize,
    pub max_depth: usize,
    /// `[d, a]`
    pub wq: Vec<f32>,
    pub wk: Vec<f32>,
    pub wv: Vec<f32>,
    /// `[a, d]`
    pub wo: Vec<f32>,
    /// `[d]`
    pub bo: Vec<f32>,
    /// `[D + 2, a]`
    pub type_key: Vec<f32>,
    pub type_value: Vec<f32>,
    /// `[H]`
    pub weight_bias: Vec<f32>,
    /// `[d]`
    pub score_w_out: Vec<f32>,
    pub score_w_inter: Vec<f32>,
    /// `[1]`
    pub score_bias: Vec<f32>,
}

impl Composition {
    /// All weights zero (set the ones a test needs).
    pub fn zeros(dim: usize, attn_dim: usize, n_heads: usize, max_depth: usize) -> Self {
        assert!(dim > 0 && n_heads > 0 && attn_dim > 0 && attn_dim % n_heads == 0 && max_depth > 0);
        let (d, a, t) = (dim, attn_dim, max_depth + 2);
        Composition {
            dim,
            attn_dim,
            n_heads,
            max_depth,
            wq: vec![0.0; d * a],
            wk: vec![0.0; d * a],
            wv: vec![0.0; d * a],
            wo: vec![0.0; a * d],
            bo: vec![0.0; d],
            type_key: vec![0.0; t * a],
            type_value: vec![0.0; t * a],
            weight_bias: vec![0.0; n_heads],
            score_w_out: vec![0.0; d],
            score_w_inter: vec![0.0; d],
            score_bias: vec![0.0],
        }
    }

    /// The weights as the engine holds them (copied).
    pub fn weights(&self) -> ComposeWeights {
        let [wq, wk, wv, wo, bo, type_key, type_value, weight_bias, score_w_out, score_w_inter, score_bias] =
            self.arrays().map(|(_, values, shape)| Array::from_vec(values.to_vec(), shape));
        ComposeWeights { wq, wk, wv, wo, bo, type_key, type_value, weight_bias, score_w_out, score_w_inter, score_bias }
    }

    /// Every array has its shape's number of values, each finite and within
    /// [`MAX_ABS_VALUE`]; `Err` names the first array that does not. The writer checks a
    /// bundle's weights with this, [`crate::Engine::with_composition`] in-memory ones.
    pub fn check_values(&self) -> Result<()> {
        check_floats(self.arrays())
    }

    /// `(bundle array name, values, shape)` in bundle order.
    pub fn arrays(&self) -> [(&'static str, &[f32], Vec<usize>); 11] {
        let (d, a, h, t) = (self.dim, self.attn_dim, self.n_heads, self.max_depth + 2);
        [
            ("compose_wq", &self.wq, vec![d, a]),
            ("compose_wk", &self.wk, vec![d, a]),
            ("compose_wv", &self.wv, vec![d, a]),
            ("compose_wo", &self.wo, vec![a, d]),
            ("compose_bo", &self.bo, vec![d]),
            ("compose_type_key", &self.type_key, vec![t, a]),
            ("compose_type_value", &self.type_value, vec![t, a]),
            ("compose_weight_bias", &self.weight_bias, vec![h]),
            ("score_w_out", &self.score_w_out, vec![d]),
            ("score_w_inter", &self.score_w_inter, vec![d]),
            ("score_bias", &self.score_bias, vec![1]),
        ]
    }
}

// ------------------------------------------------------------------------------------------
// Bundle writer
// ------------------------------------------------------------------------------------------

/// usearch HNSW settings (manifest `index`; metric is always `"cos"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpec {
    pub connectivity: usize,
    pub expansion_add: usize,
    pub expansion_search: usize,
}

impl Default for IndexSpec {
    fn default() -> Self {
        IndexSpec { connectivity: 16, expansion_add: 128, expansion_search: 64 }
    }
}

/// Everything a bundle holds, in memory (docs/online-path.md §0). Vectors are row-major and
/// written as given: normalise them (see [`unit`]) before writing.
#[derive(Debug, Clone)]
pub struct BundleArrays {
    pub trie_parent: Vec<i32>,
    pub trie_phrases: Vec<String>,
    pub item_path_offsets: Vec<i64>,
    pub item_path_leaves: Vec<i32>,
    /// `[n_nodes, dim]`
    pub node_vectors: Vec<f32>,
    /// `[n_items, dim]`
    pub item_vectors: Vec<f32>,
    pub item_domain: Vec<u8>,
    /// Each item's external id (the dataset's own name for it), unique; see
    /// [`crate::item_ids::check_external_id`] for what an id may be.
    pub item_ext_ids: Vec<String>,
    pub domains: Vec<String>,
    pub dim: usize,
    pub path_slots: usize,
    /// Its `max_depth` must be the trie's depth.
    pub composition: Composition,
    pub config: EngineConfig,
    pub index: IndexSpec,
    pub meta: serde_json::Value,
    /// Files written into the bundle as they are and checksummed with it, e.g. the projection
    /// that maps new items' text embeddings into the bundle's vector space. Plain names only.
    pub extra_files: Vec<(String, Vec<u8>)>,
    /// The manifest's `created_by` (e.g. `airrec 0.4.0`).
    pub created_by: String,
}

/// The manifest (key order as documented in docs/online-path.md §0).
#[derive(Serialize)]
struct ManifestOut<'a> {
    format: &'static str,
    format_version: u64,
    created_by: String,
    dims: &'a Dims,
    domains: &'a [String],
    config: &'a EngineConfig,
    config_sha256: String,
    index: IndexOut,
    files: FilesOut<'a>,
    meta: &'a serde_json::Value,
}

#[derive(Serialize)]
struct IndexOut {
    metric: &'static str,
    connectivity: usize,
    expansion_add: usize,
    expansion_search: usize,
}

#[derive(Serialize)]
struct FileOut {
    sha256: String,
    bytes: u64,
}

/// Files in writing order (a JSON object that keeps insertion order).
struct FilesOut<'a>(&'a [(String, FileOut)]);

impl Serialize for FilesOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// `(name, values, shape)` arrays: each has its shape's number of values (an empty shape:
/// any number) and every value is finite and within [`MAX_ABS_VALUE`].
fn check_floats<'a>(arrays: impl IntoIterator<Item = (&'a str, &'a [f32], Vec<usize>)>) -> Result<()> {
    for (name, values, shape) in arrays {
        let want: usize = shape.iter().product();
        if !shape.is_empty() && values.len() != want {
            return Err(Error::Input(format!("{name} has {} values, its shape {shape:?} needs {want}", values.len())));
        }
        if let Some(v) = values.iter().find(|v| !v.is_finite() || v.abs() > MAX_ABS_VALUE) {
            return Err(Error::Input(format!("{name} holds {v}: bundle floats must be finite and within ±{MAX_ABS_VALUE:e}")));
        }
    }
    Ok(())
}

/// Depth of every node (roots 1) from parent links; `Err` unless `parent[n]` is -1 or `< n`.
pub fn trie_depths(parent: &[i32]) -> Result<Vec<u8>> {
    let mut depth = Vec::with_capacity(parent.len());
    for (n, &p) in parent.iter().enumerate() {
        let d = match p {
            -1 => 1,
            p if p >= 0 && (p as usize) < n => depth[p as usize] as u32 + 1,
            p => return Err(Error::Input(format!("trie_parent[{n}] = {p}: parents must be -1 or < the node's id"))),
        };
        if d as usize > crate::bundle::MAX_DEPTH {
            return Err(Error::Input(format!("the trie is deeper than {} levels", crate::bundle::MAX_DEPTH)));
        }
        depth.push(d as u8);
    }
    Ok(depth)
}

/// Strings as a CSR of UTF-8 bytes: `(offsets, bytes)`, string `k` at `offsets[k]..offsets[k + 1]`.
fn string_csr(strings: &[String]) -> (Vec<i64>, Vec<u8>) {
    let mut offsets = Vec::with_capacity(strings.len() + 1);
    offsets.push(0i64);
    let mut bytes = Vec::with_capacity(strings.iter().map(String::len).sum());
    for s in strings {
        bytes.extend_from_slice(s.as_bytes());
        offsets.push(bytes.len() as i64);
    }
    (offsets, bytes)
}

/// Ids of the nodes without children, ascending.
pub fn trie_leaves(parent: &[i32]) -> Vec<u32> {
    let mut has_child = vec![false; parent.len()];
    parent.iter().filter(|&&p| p >= 0).for_each(|&p| has_child[p as usize] = true);
    (0..parent.len() as u32).filter(|&n| !has_child[n as usize]).collect()
}

/// Builds a cosine / f32 usearch index of `vectors` (row-major `[keys.len(), dim]`) and saves it.
/// Small indexes are built on one thread (the file is then reproducible), large ones in parallel.
pub fn write_index(path: &Path, keys: &[u64], vectors: &[f32], dim: usize, spec: &IndexSpec) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::Index(format!("{}: {e}", path.display()));
    let options = IndexOptions {
        dimensions: dim,
        metric: MetricKind::Cos,
        quantization: ScalarKind::F32,
        connectivity: spec.connectivity,
        expansion_add: spec.expansion_add,
        expansion_search: spec.expansion_search,
        multi: false,
    };
    let index = Index::new(&options).map_err(|e| err(&e))?;
    let parallel = keys.len() >= 20_000;
    let threads = if parallel { rayon::current_num_threads() } else { 1 };
    index.reserve_capacity_and_threads(keys.len().max(1), threads).map_err(|e| err(&e))?;
    let add = |(k, &key): (usize, &u64)| index.add(key, &vectors[k * dim..(k + 1) * dim]).map_err(|e| err(&e));
    if parallel {
        keys.par_iter().enumerate().try_for_each(add)?;
    } else {
        keys.iter().enumerate().try_for_each(add)?;
    }
    let path_str = path.to_str().ok_or_else(|| err(&"path is not UTF-8"))?;
    index.save(path_str).map_err(|e| err(&e))
}

impl BundleArrays {
    pub fn n_nodes(&self) -> usize {
        self.trie_parent.len()
    }

    pub fn n_items(&self) -> usize {
        self.item_domain.len()
    }

    /// The manifest `dims` of these arrays.
    pub fn dims(&self) -> Result<Dims> {
        let depth = trie_depths(&self.trie_parent)?;
        Ok(Dims {
            n_nodes: self.n_nodes(),
            n_items: self.n_items(),
            dim: self.dim,
            attn_dim: self.composition.attn_dim,
            n_heads: self.composition.n_heads,
            max_depth: depth.iter().copied().max().unwrap_or(0) as usize,
            path_slots: self.path_slots,
            n_domains: self.domains.len(),
        })
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Input(m));
        let (n, i, d) = (self.n_nodes(), self.n_items(), self.dim);
        let dims = self.dims()?;
        if n == 0 || d == 0 {
            return bad("a bundle needs at least one node and dim >= 1".into());
        }
        if self.trie_phrases.len() != n || self.node_vectors.len() != n * d || self.item_vectors.len() != i * d {
            return bad(format!("phrases / node_vectors / item_vectors do not fit {n} nodes, {i} items, dim {d}"));
        }
        if self.item_path_offsets.len() != i * self.path_slots + 1 {
            return bad(format!("item_path_offsets needs n_items * path_slots + 1 = {} entries", i * self.path_slots + 1));
        }
        if self.composition.dim != d || self.composition.max_depth != dims.max_depth {
            return bad(format!(
                "the composition is for dim {}, max_depth {}; the bundle has dim {d}, max_depth {}",
                self.composition.dim, self.composition.max_depth, dims.max_depth
            ));
        }
        if self.domains.is_empty() || self.item_domain.iter().any(|&k| k as usize >= self.domains.len()) {
            return bad("item_domain must index into a non-empty domains list".into());
        }
        if self.item_ext_ids.len() != i {
            return bad(format!("{} external ids for {i} items", self.item_ext_ids.len()));
        }
        if let Some(why) = self.item_ext_ids.iter().find_map(|id| crate::item_ids::check_external_id(id)) {
            return bad(why);
        }
        let mut seen = std::collections::HashSet::with_capacity(i);
        if let Some(dup) = self.item_ext_ids.iter().find(|id| !seen.insert(id.as_str())) {
            return bad(format!("external id {} is given to more than one item", crate::item_ids::quoted(dup)));
        }
        let offsets = &self.item_path_offsets;
        if offsets.first() != Some(&0)
            || offsets.last() != Some(&(self.item_path_leaves.len() as i64))
            || offsets.windows(2).any(|w| w[1] < w[0])
        {
            return bad("item_path_offsets must start at 0, never decrease and end at len(item_path_leaves)".into());
        }
        if let Some(l) = self.item_path_leaves.iter().find(|&&l| l < 0 || l as usize >= n) {
            return bad(format!("item_path_leaves holds node id {l}, outside 0..{n}"));
        }
        let floats = [("node_vectors", &self.node_vectors[..]), ("item_vectors", &self.item_vectors[..])];
        check_floats(floats.into_iter().map(|(n, v)| (n, v, vec![])))?;
        self.composition.check_values()?;
        for (name, _) in &self.extra_files {
            let plain = !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']);
            if !plain || name == MANIFEST || name.ends_with(".npy") || name.ends_with(".usearch") {
                return bad(format!("extra file name {name:?} must be a plain name, not the manifest, .npy or .usearch"));
            }
        }
        Ok(())
    }

    /// Writes the bundle into `dir` (created if needed; existing files are replaced) and returns
    /// `dir`: every array, the folded arrays, the indexes and extra files, each fsynced, then
    /// the manifest and the directory. Write into a fresh directory and rename it into place so
    /// readers never see half a bundle (`airrec.bundle.write_bundle` does).
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<PathBuf> {
        let dir = dir.as_ref();
        self.check()?;
        let dims = self.dims()?;
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let (n, d) = (self.n_nodes(), self.dim);
        let depth = trie_depths(&self.trie_parent)?;
        let (phrase_offsets, phrase_bytes) = string_csr(&self.trie_phrases);
        let (ext_offsets, ext_bytes) = string_csr(&self.item_ext_ids);
        let mut files: Vec<(String, FileOut)> = Vec::new();
        let mut put = |name: String, bytes: &[u8]| -> Result<()> {
            let path = dir.join(&name);
            write_synced(&path, bytes)?;
            files.push((name, FileOut { sha256: sha256_hex(bytes), bytes: bytes.len() as u64 }));
            Ok(())
        };
        put("trie_parent.npy".into(), &npy_bytes(&self.trie_parent, &[n]))?;
        put("trie_depth.npy".into(), &npy_bytes(&depth, &[n]))?;
        put("trie_phrase_offsets.npy".into(), &npy_bytes(&phrase_offsets, &[n + 1]))?;
        put("trie_phrase_bytes.npy".into(), &npy_bytes(&phrase_bytes, &[phrase_bytes.len()]))?;
        put("item_path_offsets.npy".into(), &npy_bytes(&self.item_path_offsets, &[self.item_path_offsets.len()]))?;
        put("item_path_leaves.npy".into(), &npy_bytes(&self.item_path_leaves, &[self.item_path_leaves.len()]))?;
        put("node_vectors.npy".into(), &npy_bytes(&self.node_vectors, &[n, d]))?;
        put("item_vectors.npy".into(), &npy_bytes(&self.item_vectors, &[self.n_items(), d]))?;
        put("item_domain.npy".into(), &npy_bytes(&self.item_domain, &[self.n_items()]))?;
        put("item_ext_offsets.npy".into(), &npy_bytes(&ext_offsets, &[ext_offsets.len()]))?;
        put("item_ext_bytes.npy".into(), &npy_bytes(&ext_bytes, &[ext_bytes.len()]))?;
        for (name, values, shape) in self.composition.arrays() {
            put(format!("{name}.npy"), &npy_bytes(values, &shape))?;
        }
        // Format v2: the folded arrays the hot path reads, so a loaded engine maps them.
        let composer = Composer::fold(self.composition.weights(), &self.node_vectors, &self.item_vectors, d, self.composition.n_heads);
        for (name, array) in composer.folded().arrays() {
            put(format!("{name}.npy"), &npy_bytes(array, array.shape()))?;
        }
        drop(composer);
        for (name, bytes) in &self.extra_files {
            put(name.clone(), bytes)?;
        }
        // Indexes: the items of each domain (key = item id), then the leaves (key = node id).
        let mut index_files: Vec<(String, Vec<u64>, Vec<f32>)> = (0..self.domains.len())
            .map(|k| {
                let keys: Vec<u64> = (0..self.n_items()).filter(|&i| self.item_domain[i] as usize == k).map(|i| i as u64).collect();
                let vectors = keys.iter().flat_map(|&i| &self.item_vectors[i as usize * d..(i as usize + 1) * d]).copied().collect();
                (format!("index_items_{k}.usearch"), keys, vectors)
            })
            .collect();
        let leaves: Vec<u64> = trie_leaves(&self.trie_parent).into_iter().map(u64::from).collect();
        let leaf_vectors = leaves.iter().flat_map(|&l| &self.node_vectors[l as usize * d..(l as usize + 1) * d]).copied().collect();
        index_files.push(("index_leaves.usearch".into(), leaves, leaf_vectors));
        for (name, keys, vectors) in index_files {
            let path = dir.join(&name);
            write_index(&path, &keys, &vectors, d, &self.index)?;
            let bytes = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
            put(name, &bytes)?;
        }
        let manifest = ManifestOut {
            format: "airrec-bundle",
            format_version: FORMAT_VERSION,
            created_by: self.created_by.clone(),
            dims: &dims,
            domains: &self.domains,
            config: &self.config,
            config_sha256: config_sha256(&self.config),
            index: IndexOut {
                metric: "cos",
                connectivity: self.index.connectivity,
                expansion_add: self.index.expansion_add,
                expansion_search: self.index.expansion_search,
            },
            files: FilesOut(&files),
            meta: &self.meta,
        };
        let mut text = serde_json::to_string_pretty(&manifest).map_err(|e| Error::Input(e.to_string()))?;
        text.push('\n');
        write_synced(&dir.join(MANIFEST), text.as_bytes())?;
        sync_dir(dir)?;
        Ok(dir.to_path_buf())
    }
}
