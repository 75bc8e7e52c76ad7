//! Writing bundles from Rust, for tests, benchmarks and examples (cargo feature `testing`, off by
//! default; this crate's own tests, benches and examples turn it on).
//!
//! - [`npy_bytes`] / [`write_npy`]: `.npy` version 1 files (header padded to 64 bytes,
//!   little-endian, C order), as `np.save` writes them.
//! - [`BundleArrays::write`]: a complete bundle directory from in-memory arrays, with the manifest
//!   laid out as `python/airrec/bundle.py` writes it (same keys, same order, sha256 and byte size
//!   of every file) and usearch index files (cosine, f32) keyed by item id per domain and by
//!   leaf node id.
//! - [`Fixture`]: a small hand-made bundle (nodes and items added one by one) for exact tests.
//! - [`SyntheticSpec`]: a random but structured bundle like `airrec.synthetic` makes (children
//!   near their parents, items near their leaves, ~2% items without paths), deterministic for a
//!   seed, plus [`synthetic_histories`] and [`synthetic_candidates`].
//! - [`replace_file`], [`edit_manifest`]: change a written bundle (and keep its manifest
//!   consistent, or not) to test the loader's checks.
//!
//! Random numbers come from a small self-contained generator ([`Rng`]), so the data for a seed
//! never changes with a dependency's version. (It differs from NumPy's for the same seed.)

use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::bundle::{Dims, FORMAT_VERSION};
use crate::config::EngineConfig;
use crate::error::{Error, Result};

// ------------------------------------------------------------------------------------------
// Random numbers
// ------------------------------------------------------------------------------------------

/// SplitMix64: tiny, fast, good enough for test data, and stable forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Exponential with mean 1.
    pub fn exponential(&mut self) -> f64 {
        -(1.0 - self.uniform()).ln()
    }
}

/// `v / |v|` in f64, as f32. Panics on a zero vector (a fixture bug).
pub fn unit(v: &[f64]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!(norm > 0.0 && norm.is_finite(), "cannot normalise {v:?}");
    v.iter().map(|x| (x / norm) as f32).collect()
}

fn noisy_unit(rng: &mut Rng, centre: &[f64], spread: f64) -> Vec<f64> {
    let s = spread / (centre.len() as f64).sqrt();
    let v: Vec<f64> = centre.iter().map(|c| c + s * rng.normal()).collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

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

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::bundle(path, format!("cannot write: {e}"))
}

/// Writes `data` with `shape` as a `.npy` file.
pub fn write_npy<T: NpyWrite>(path: &Path, data: &[T], shape: &[usize]) -> Result<()> {
    std::fs::write(path, npy_bytes(data, shape)).map_err(|e| io_err(path, e))
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

    /// The untrained init of `airrec.bundle.Composition.init` (same construction, this crate's
    /// RNG): a shared random basis `Q` `[d, a]` with `wk = wv = Q`, `wo = Qᵀ`,
    /// `wq = Q · 4 H sqrt(dk)`, small type offsets, `weight_bias = 1`, score head `u · x`.
    pub fn init(dim: usize, attn_dim: usize, n_heads: usize, max_depth: usize, seed: u64) -> Self {
        let mut c = Composition::zeros(dim, attn_dim, n_heads, max_depth);
        let mut rng = Rng::new(seed ^ 0xC0FF_EE00);
        let (d, a) = (dim, attn_dim);
        let dk = a / n_heads;
        let basis: Vec<f64> = (0..d * a).map(|_| rng.normal() / (a as f64).sqrt()).collect();
        let temperature = 4.0 * n_heads as f64 * (dk as f64).sqrt();
        for i in 0..d {
            for j in 0..a {
                let b = basis[i * a + j];
                c.wq[i * a + j] = (b * temperature) as f32;
                c.wk[i * a + j] = b as f32;
                c.wv[i * a + j] = b as f32;
                c.wo[j * d + i] = b as f32;
            }
        }
        for v in c.type_key.iter_mut().chain(c.type_value.iter_mut()) {
            *v = (0.02 * rng.normal()) as f32;
        }
        c.weight_bias.fill(1.0);
        c.score_w_inter.fill(1.0);
        c
    }

    /// Every weight random and non-zero (biases included), so a test exercises every term of
    /// the composition and the score head.
    pub fn random(dim: usize, attn_dim: usize, n_heads: usize, max_depth: usize, seed: u64) -> Self {
        let mut c = Composition::zeros(dim, attn_dim, n_heads, max_depth);
        let mut rng = Rng::new(seed ^ 0xBADC_0DE5);
        let s_in = 1.0 / (dim as f64).sqrt();
        let s_attn = 1.0 / (attn_dim as f64).sqrt();
        let mut fill = |v: &mut Vec<f32>, s: f64| v.iter_mut().for_each(|x| *x = (s * rng.normal()) as f32);
        fill(&mut c.wq, 3.0 * s_in);
        fill(&mut c.wk, s_in);
        fill(&mut c.wv, s_in);
        fill(&mut c.wo, s_attn);
        fill(&mut c.bo, 0.1);
        fill(&mut c.type_key, 0.3);
        fill(&mut c.type_value, 0.3);
        fill(&mut c.weight_bias, 0.5);
        fill(&mut c.score_w_out, 0.5);
        fill(&mut c.score_w_inter, 0.5);
        fill(&mut c.score_bias, 0.5);
        c
    }

    /// `(bundle array name, values, shape)` in the order the Python writer lists them.
    fn arrays(&self) -> [(&'static str, &[f32], Vec<usize>); 11] {
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
    pub domains: Vec<String>,
    pub dim: usize,
    pub path_slots: usize,
    /// Its `max_depth` must be the trie's depth.
    pub composition: Composition,
    pub config: EngineConfig,
    pub index: IndexSpec,
    pub meta: serde_json::Value,
}

/// The manifest, in the key order of `python/airrec/bundle.py`.
#[derive(Serialize)]
struct ManifestOut<'a> {
    format: &'static str,
    format_version: u64,
    created_by: String,
    dims: &'a Dims,
    domains: &'a [String],
    config: &'a EngineConfig,
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
        Ok(())
    }

    /// Writes the bundle into `dir` (created if needed; existing files are replaced) and returns
    /// `dir`. The files are those of `airrec.bundle.write_bundle`, manifest last.
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<PathBuf> {
        let dir = dir.as_ref();
        self.check()?;
        let dims = self.dims()?;
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let (n, d) = (self.n_nodes(), self.dim);
        let depth = trie_depths(&self.trie_parent)?;
        let mut phrase_offsets = vec![0i64];
        let mut phrase_bytes = Vec::new();
        for p in &self.trie_phrases {
            phrase_bytes.extend_from_slice(p.as_bytes());
            phrase_offsets.push(phrase_bytes.len() as i64);
        }
        let mut files: Vec<(String, FileOut)> = Vec::new();
        let mut put = |name: String, bytes: Vec<u8>| -> Result<()> {
            let path = dir.join(&name);
            std::fs::write(&path, &bytes).map_err(|e| io_err(&path, e))?;
            files.push((name, FileOut { sha256: sha256_hex(&bytes), bytes: bytes.len() as u64 }));
            Ok(())
        };
        put("trie_parent.npy".into(), npy_bytes(&self.trie_parent, &[n]))?;
        put("trie_depth.npy".into(), npy_bytes(&depth, &[n]))?;
        put("trie_phrase_offsets.npy".into(), npy_bytes(&phrase_offsets, &[n + 1]))?;
        put("trie_phrase_bytes.npy".into(), npy_bytes(&phrase_bytes, &[phrase_bytes.len()]))?;
        put("item_path_offsets.npy".into(), npy_bytes(&self.item_path_offsets, &[self.item_path_offsets.len()]))?;
        put("item_path_leaves.npy".into(), npy_bytes(&self.item_path_leaves, &[self.item_path_leaves.len()]))?;
        put("node_vectors.npy".into(), npy_bytes(&self.node_vectors, &[n, d]))?;
        put("item_vectors.npy".into(), npy_bytes(&self.item_vectors, &[self.n_items(), d]))?;
        put("item_domain.npy".into(), npy_bytes(&self.item_domain, &[self.n_items()]))?;
        for (name, values, shape) in self.composition.arrays() {
            put(format!("{name}.npy"), npy_bytes(values, &shape))?;
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
            put(name, bytes)?;
        }
        let manifest = ManifestOut {
            format: "airrec-bundle",
            format_version: FORMAT_VERSION,
            created_by: format!("airrec-core {} (testing)", env!("CARGO_PKG_VERSION")),
            dims: &dims,
            domains: &self.domains,
            config: &self.config,
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
        let path = dir.join("manifest.json");
        std::fs::write(&path, text).map_err(|e| io_err(&path, e))?;
        Ok(dir.to_path_buf())
    }
}

// ------------------------------------------------------------------------------------------
// Changing a written bundle
// ------------------------------------------------------------------------------------------

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::bundle(path, e.to_string()))
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| Error::Input(e.to_string()))?;
    text.push('\n');
    std::fs::write(path, text).map_err(|e| io_err(path, e))
}

/// Applies `f` to the bundle's parsed `manifest.json` and writes it back.
pub fn edit_manifest(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) -> Result<()> {
    let path = dir.join("manifest.json");
    let mut m = read_json(&path)?;
    f(&mut m);
    write_json(&path, &m)
}

/// Replaces (or adds) bundle file `name` and records its new sha256 and size in the manifest,
/// so that only the content checks can catch what is wrong with it.
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).map_err(|e| io_err(&path, e))?;
    f.write_all(bytes).map_err(|e| io_err(&path, e))?;
    let (sha, len) = (sha256_hex(bytes), bytes.len());
    edit_manifest(dir, |m| {
        m["files"][name] = serde_json::json!({"sha256": sha, "bytes": len});
    })
}

// ------------------------------------------------------------------------------------------
// Hand-made fixtures
// ------------------------------------------------------------------------------------------

/// A small bundle built node by node and item by item, for tests whose expected values are
/// computed by hand.
///
/// ```
/// # use airrec_core::testing::Fixture;
/// let mut f = Fixture::new(2);
/// let root = f.node(None, "sport", &[1.0, 0.0]);
/// let leaf = f.node(Some(root), "running", &[1.0, 1.0]);
/// let shoe = f.item(&[1.0, 0.5], 0, &[leaf]);
/// let dir = tempfile::tempdir().unwrap();
/// let engine = f.engine(dir.path()).unwrap();
/// let tree = engine.build_tree(&[shoe as i64], &[0], &[0.0]).unwrap();
/// assert_eq!(tree.nodes().len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Fixture {
    pub dim: usize,
    /// `(parent, phrase, unit vector)`
    pub nodes: Vec<(Option<u32>, String, Vec<f32>)>,
    /// `(unit vector, domain, leaves of each path slot)`
    pub items: Vec<(Vec<f32>, u8, Vec<Vec<u32>>)>,
    pub domains: Vec<String>,
    pub path_slots: usize,
    pub config: EngineConfig,
    /// `None`: [`Composition::init`] with `n_heads`, `attn_dim` and `seed`.
    pub composition: Option<Composition>,
    pub n_heads: usize,
    pub attn_dim: usize,
    pub seed: u64,
    pub index: IndexSpec,
}

impl Fixture {
    /// An empty fixture of vector dimension `dim`: one domain `"d0"`, one path slot, default
    /// config, one head, `attn_dim = dim`.
    pub fn new(dim: usize) -> Self {
        Fixture {
            dim,
            nodes: Vec::new(),
            items: Vec::new(),
            domains: vec!["d0".into()],
            path_slots: 1,
            config: EngineConfig::default(),
            composition: None,
            n_heads: 1,
            attn_dim: dim,
            seed: 0,
            index: IndexSpec::default(),
        }
    }

    /// Adds a node (its vector is L2-normalised) and returns its id. Parents must exist.
    pub fn node(&mut self, parent: Option<u32>, phrase: &str, vector: &[f64]) -> u32 {
        assert_eq!(vector.len(), self.dim);
        if let Some(p) = parent {
            assert!((p as usize) < self.nodes.len(), "parent {p} does not exist yet");
        }
        self.nodes.push((parent, phrase.to_string(), unit(vector)));
        (self.nodes.len() - 1) as u32
    }

    /// Adds an item whose one path slot holds the paths ending at `leaves`; returns its id.
    pub fn item(&mut self, vector: &[f64], domain: u8, leaves: &[u32]) -> u32 {
        self.item_slots(vector, domain, &[leaves])
    }

    /// Adds an item with one list of path leaves per path slot.
    pub fn item_slots(&mut self, vector: &[f64], domain: u8, slots: &[&[u32]]) -> u32 {
        assert_eq!(vector.len(), self.dim);
        self.items.push((unit(vector), domain, slots.iter().map(|s| s.to_vec()).collect()));
        (self.items.len() - 1) as u32
    }

    pub fn max_depth(&self) -> usize {
        let parent: Vec<i32> = self.nodes.iter().map(|n| n.0.map_or(-1, |p| p as i32)).collect();
        trie_depths(&parent).map(|d| d.into_iter().max().unwrap_or(0) as usize).unwrap_or(0)
    }

    /// The composition the bundle will hold.
    pub fn composition(&self) -> Composition {
        self.composition
            .clone()
            .unwrap_or_else(|| Composition::init(self.dim, self.attn_dim, self.n_heads, self.max_depth().max(1), self.seed))
    }

    pub fn arrays(&self) -> BundleArrays {
        let mut offsets = vec![0i64];
        let mut leaves = Vec::new();
        for (_, _, slots) in &self.items {
            assert_eq!(slots.len(), self.path_slots, "every item needs {} path slots", self.path_slots);
            for s in slots {
                leaves.extend(s.iter().map(|&l| l as i32));
                offsets.push(leaves.len() as i64);
            }
        }
        BundleArrays {
            trie_parent: self.nodes.iter().map(|n| n.0.map_or(-1, |p| p as i32)).collect(),
            trie_phrases: self.nodes.iter().map(|n| n.1.clone()).collect(),
            item_path_offsets: offsets,
            item_path_leaves: leaves,
            node_vectors: self.nodes.iter().flat_map(|n| n.2.iter().copied()).collect(),
            item_vectors: self.items.iter().flat_map(|i| i.0.iter().copied()).collect(),
            item_domain: self.items.iter().map(|i| i.1).collect(),
            domains: self.domains.clone(),
            dim: self.dim,
            path_slots: self.path_slots,
            composition: self.composition(),
            config: self.config.clone(),
            index: self.index,
            meta: serde_json::json!({"fixture": "airrec_core::testing::Fixture"}),
        }
    }

    pub fn write(&self, dir: impl AsRef<Path>) -> Result<PathBuf> {
        self.arrays().write(dir)
    }

    /// Writes the bundle into `dir` and loads an engine from it.
    pub fn engine(&self, dir: impl AsRef<Path>) -> Result<crate::Engine> {
        let dir = self.write(dir)?;
        crate::Engine::load(dir, &crate::LoadOptions::default(), None)
    }
}

// ------------------------------------------------------------------------------------------
// Synthetic bundles
// ------------------------------------------------------------------------------------------

/// Noise norm added to a parent's vector to make a child's (as in `airrec.synthetic`).
pub const CHILD_SPREAD: f64 = 0.6;
/// Noise norm added to a leaf's vector to make its item's.
pub const ITEM_SPREAD: f64 = 0.3;
/// Share of items without cached paths (they exercise cold start).
pub const COLD_ITEM_SHARE: f64 = 0.02;
/// Largest step (in leaf order) from one of an item's paths to the next.
pub const PATH_STEP: u64 = 8;

/// The shape of a synthetic bundle. `Default` is the reference shape of the benchmarks
/// (100k nodes, 40k items, d = 64, 4 heads, depth 3, 3 paths per item, 2 domains).
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSpec {
    pub n_nodes: usize,
    pub n_items: usize,
    pub dim: usize,
    pub n_heads: usize,
    pub depth: usize,
    pub paths_per_item: usize,
    pub n_domains: usize,
    pub seed: u64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec { n_nodes: 100_000, n_items: 40_000, dim: 64, n_heads: 4, depth: 3, paths_per_item: 3, n_domains: 2, seed: 0 }
    }
}

/// Nodes per depth: about `n^(1/depth)` roots, growing geometrically below.
fn level_sizes(n_nodes: usize, depth: usize) -> Vec<usize> {
    let roots = ((n_nodes as f64).powf(1.0 / depth as f64).round() as usize).max(1);
    let (mut lo, mut hi) = (1.0f64, n_nodes as f64);
    for _ in 0..64 {
        let mid = (lo + hi) / 2.0;
        let total: f64 = (0..depth).map(|k| roots as f64 * mid.powi(k as i32)).sum();
        if total < n_nodes as f64 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let mut sizes: Vec<usize> = (0..depth).map(|k| ((roots as f64 * lo.powi(k as i32)).round() as usize).max(1)).collect();
    let above: usize = sizes[..depth - 1].iter().sum();
    sizes[depth - 1] = n_nodes.saturating_sub(above);
    while sizes[depth - 1] < 1 {
        let largest = (0..depth - 1).max_by_key(|&k| (sizes[k], std::cmp::Reverse(k))).expect("depth > 1");
        sizes[largest] -= 1;
        sizes[depth - 1] += 1;
    }
    sizes
}

impl SyntheticSpec {
    /// A small shape for unit tests (hundreds of nodes and items, d = 16, 2 heads, 2 domains).
    pub fn small(seed: u64) -> Self {
        SyntheticSpec { n_nodes: 300, n_items: 200, dim: 16, n_heads: 2, depth: 3, paths_per_item: 2, n_domains: 2, seed }
    }

    /// The bundle's arrays: a trie laid out level by level (each node picks a random parent on
    /// the level above; siblings are contiguous), children's vectors near their parent's, items
    /// along the leaves (ids follow the trie) with vectors near their first path's leaf and
    /// further paths to nearby leaves, ~2% of items without paths, domains as contiguous
    /// blocks of item ids, [`Composition::init`] weights and the default config.
    pub fn arrays(&self) -> Result<BundleArrays> {
        let s = self;
        if s.depth == 0
            || s.depth > crate::bundle::MAX_DEPTH
            || s.n_nodes < s.depth
            || s.n_items == 0
            || s.dim == 0
            || s.n_heads == 0
            || s.dim % s.n_heads != 0
        {
            return Err(Error::Config(format!("invalid synthetic spec {s:?}")));
        }
        if s.n_domains == 0 || s.n_domains > s.n_items.min(crate::bundle::MAX_DOMAINS) {
            return Err(Error::Config(format!("need 1 <= n_domains <= min(n_items, 255), got {}", s.n_domains)));
        }
        let mut rng = Rng::new(s.seed);
        let (n, d) = (s.n_nodes, s.dim);

        // Trie.
        let sizes = level_sizes(n, s.depth);
        let mut parent = vec![-1i32; n];
        let mut phrases = Vec::with_capacity(n);
        let mut vectors = vec![0.0f64; n * d];
        for r in 0..sizes[0] {
            let v = noisy_unit(&mut rng, &vec![0.0; d], 1.0);
            vectors[r * d..(r + 1) * d].copy_from_slice(&v);
            phrases.push(format!("r{r}"));
        }
        let mut start = sizes[0];
        for level in 1..s.depth {
            let above = start - sizes[level - 1];
            let mut parents: Vec<usize> = (0..sizes[level]).map(|_| above + rng.below((start - above) as u64) as usize).collect();
            parents.sort_unstable();
            let letter = if level == s.depth - 1 { "l" } else { "c" };
            let mut sibling = 0;
            for (k, &p) in parents.iter().enumerate() {
                let node = start + k;
                parent[node] = p as i32;
                let centre = vectors[p * d..(p + 1) * d].to_vec();
                let v = noisy_unit(&mut rng, &centre, CHILD_SPREAD);
                vectors[node * d..(node + 1) * d].copy_from_slice(&v);
                sibling = if k > 0 && parents[k - 1] == p { sibling + 1 } else { 0 };
                phrases.push(format!("{letter}{sibling}"));
            }
            start += sizes[level];
        }
        let leaves = trie_leaves(&parent);
        let nl = leaves.len() as u64;

        // Items.
        let mut first: Vec<u64> = (0..s.n_items).map(|_| rng.below(nl)).collect();
        first.sort_unstable();
        let mut offsets = vec![0i64];
        let mut path_leaves = Vec::new();
        let mut item_vectors = Vec::with_capacity(s.n_items * d);
        for &f in &first {
            let cold = rng.uniform() < COLD_ITEM_SHARE;
            let mut pos = f;
            for p in 0..s.paths_per_item {
                if p > 0 {
                    pos += 1 + rng.below(PATH_STEP);
                }
                if !cold {
                    path_leaves.push(leaves[(pos % nl) as usize] as i32);
                }
            }
            offsets.push(path_leaves.len() as i64);
            let l = leaves[f as usize] as usize;
            item_vectors.extend(noisy_unit(&mut rng, &vectors[l * d..(l + 1) * d], ITEM_SPREAD).iter().map(|&x| x as f32));
        }
        let item_domain: Vec<u8> = (0..s.n_items).map(|i| (i * s.n_domains / s.n_items) as u8).collect();
        Ok(BundleArrays {
            trie_parent: parent,
            trie_phrases: phrases,
            item_path_offsets: offsets,
            item_path_leaves: path_leaves,
            node_vectors: vectors.iter().map(|&x| x as f32).collect(),
            item_vectors,
            item_domain,
            domains: (0..s.n_domains).map(|k| format!("d{k}")).collect(),
            dim: d,
            path_slots: 1,
            composition: Composition::init(d, d, s.n_heads, s.depth, s.seed),
            config: EngineConfig::default(),
            index: IndexSpec::default(),
            meta: serde_json::json!({"synthetic": {"seed": s.seed, "depth": s.depth, "paths_per_item": s.paths_per_item, "writer": "airrec_core::testing"}}),
        })
    }

    /// Writes the bundle into `dir` and returns `dir`.
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<PathBuf> {
        self.arrays()?.write(dir)
    }
}

/// Users' histories in CSR form, owned (see [`crate::Histories`] for the borrowed view).
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticHistories {
    pub offsets: Vec<i64>,
    pub items: Vec<i64>,
    pub behaviours: Vec<i64>,
    pub timestamps: Vec<f64>,
}

impl SyntheticHistories {
    pub fn as_histories(&self) -> crate::Histories<'_> {
        crate::Histories { offsets: &self.offsets, items: &self.items, behaviours: &self.behaviours, timestamps: &self.timestamps }
    }

    pub fn n_users(&self) -> usize {
        self.offsets.len() - 1
    }

    /// User `u`'s events as `(items, behaviours, timestamps)`.
    pub fn user(&self, u: usize) -> (&[i64], &[i64], &[f64]) {
        let (a, b) = (self.offsets[u] as usize, self.offsets[u + 1] as usize);
        (&self.items[a..b], &self.behaviours[a..b], &self.timestamps[a..b])
    }
}

/// `events_per_user` time-ordered events for each of `n_users` users, as `airrec.synthetic`
/// makes them: each user has 3 interests (centres in item-id order, which follows the trie), an
/// event picks an interest and an item near its centre; behaviours are uniform over
/// `n_behaviours`; timestamps increase by exponential gaps of mean 1.
pub fn synthetic_histories(n_users: usize, events_per_user: usize, n_items: usize, n_behaviours: usize, seed: u64) -> SyntheticHistories {
    assert!(n_items > 0 && n_behaviours > 0);
    let mut rng = Rng::new(seed ^ 0x4157_4F52);
    let spread = (n_items as f64 / 500.0).max(1.0);
    let mut h = SyntheticHistories {
        offsets: (0..=n_users).map(|u| (u * events_per_user) as i64).collect(),
        items: Vec::with_capacity(n_users * events_per_user),
        behaviours: Vec::with_capacity(n_users * events_per_user),
        timestamps: Vec::with_capacity(n_users * events_per_user),
    };
    for _ in 0..n_users {
        let centres: Vec<f64> = (0..3).map(|_| rng.below(n_items as u64) as f64).collect();
        let mut t = 0.0;
        for _ in 0..events_per_user {
            let c = centres[rng.below(3) as usize];
            let item = (c + (spread * rng.normal()).round()).clamp(0.0, (n_items - 1) as f64);
            t += rng.exponential();
            h.items.push(item as i64);
            h.behaviours.push(rng.below(n_behaviours as u64) as i64);
            h.timestamps.push(t);
        }
    }
    h
}

/// `n_candidates` uniformly random item ids per user, row-major `[n_users, n_candidates]`.
pub fn synthetic_candidates(n_users: usize, n_candidates: usize, n_items: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed ^ 0xCA4D_1DA7);
    (0..n_users * n_candidates).map(|_| rng.below(n_items as u64) as u32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        for (k, shape) in [vec![0usize], vec![3], vec![2, 3], vec![1, 1, 6]].into_iter().enumerate() {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
            let bytes = npy_bytes(&data, &shape);
            let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + header_len) % 64, 0);
            assert_eq!(bytes[10 + header_len - 1], b'\n');
            let p = dir.path().join(format!("a{k}.npy"));
            std::fs::write(&p, &bytes).unwrap();
            let a = crate::npy::load::<f32>(&p).unwrap();
            assert_eq!(a.shape(), &shape[..]);
            assert_eq!(&*a, &data[..]);
        }
    }

    #[test]
    fn rng_is_deterministic_and_roughly_uniform() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        assert_eq!(xs, (0..100).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(Rng::new(8).next_u64(), xs[0]);
        let mut r = Rng::new(1);
        let mean = (0..20_000).map(|_| r.normal()).sum::<f64>() / 20_000.0;
        assert!(mean.abs() < 0.05, "{mean}");
        let counts = (0..10_000).fold([0usize; 4], |mut c, _| {
            c[r.below(4) as usize] += 1;
            c
        });
        assert!(counts.iter().all(|&c| (2200..2800).contains(&c)), "{counts:?}");
    }

    #[test]
    fn level_sizes_sum_to_n() {
        for (n, depth) in [(100_000, 3), (300, 3), (5, 5), (7, 1), (10, 4)] {
            let s = level_sizes(n, depth);
            assert_eq!(s.len(), depth);
            assert_eq!(s.iter().sum::<usize>(), n, "{n} {depth} {s:?}");
            assert!(s.iter().all(|&x| x >= 1));
        }
    }

    #[test]
    fn synthetic_arrays_are_structured_and_deterministic() {
        let spec = SyntheticSpec::small(3);
        let a = spec.arrays().unwrap();
        let b = spec.arrays().unwrap();
        assert_eq!(a.node_vectors, b.node_vectors);
        assert_eq!(a.item_path_leaves, b.item_path_leaves);
        assert_ne!(SyntheticSpec::small(4).arrays().unwrap().node_vectors, a.node_vectors);
        let dims = a.dims().unwrap();
        assert_eq!((dims.n_nodes, dims.n_items, dims.max_depth, dims.n_domains), (300, 200, 3, 2));
        let d = a.dim;
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| *p as f64 * *q as f64).sum::<f64>();
        // Unit rows; children closer to their parent than to a random other node, on average.
        for r in a.node_vectors.chunks(d).chain(a.item_vectors.chunks(d)) {
            assert!((dot(r, r) - 1.0).abs() < 1e-5);
        }
        let (mut near, mut far, mut count) = (0.0, 0.0, 0);
        for (node, &p) in a.trie_parent.iter().enumerate() {
            if p >= 0 {
                let v = &a.node_vectors[node * d..(node + 1) * d];
                near += dot(v, &a.node_vectors[p as usize * d..(p as usize + 1) * d]);
                far += dot(v, &a.node_vectors[((node * 7919) % 300) * d..((node * 7919) % 300 + 1) * d]);
                count += 1;
            }
        }
        assert!(near / count as f64 > 0.5 && far / (count as f64) < 0.5, "{near} {far}");
        // Path leaves are leaves; offsets fit.
        let leaves = trie_leaves(&a.trie_parent);
        assert!(a.item_path_leaves.iter().all(|l| leaves.binary_search(&(*l as u32)).is_ok()));
        assert_eq!(*a.item_path_offsets.last().unwrap() as usize, a.item_path_leaves.len());
        assert!(a.item_domain.windows(2).all(|w| w[0] <= w[1]));
    }
}
