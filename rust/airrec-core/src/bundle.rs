//! The on-disk bundle (docs/online-path.md §0): a directory with `manifest.json`, `.npy` arrays
//! and usearch index files, written by [`crate::writer`] (which `airrec.bundle.write_bundle`
//! calls from Python).
//!
//! Loading checks the format version, every file's size and sha256, every array's dtype and
//! shape, index ranges, finiteness of every weight, the trie's structure, and that the folded
//! arrays are what the weights give. Any mismatch is a typed [`Error`], never a panic. The
//! arrays are memory-mapped, the folded ones included, so processes that load the same bundle
//! share its pages.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::compose::{ComposeWeights, Composer, Folded, FOLDED_ARRAYS};
use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::files;
use crate::index::VectorIndex;
use crate::index_file::Expected;
use crate::item_ids::ExternalIds;
use crate::npy::{self, Array, Element};
use crate::trie::Trie;

/// The bundle format version this build reads and writes. Version 2 added the folded arrays
/// ([`crate::compose::FOLDED_ARRAYS`]), version 3 the items' external ids
/// ([`crate::item_ids`]); older bundles are refused with a message to rebuild or re-export
/// them.
pub const FORMAT_VERSION: u64 = 3;
pub(crate) const FORMAT_NAME: &str = "airrec-bundle";
pub(crate) const MANIFEST: &str = "manifest.json";

/// Largest magnitude of any float a bundle stores (weights and vectors). Scores are sums of
/// products of a few of them over `dim`- and `attn_dim`-wide rows: a bound this size keeps every
/// intermediate far below `f32::MAX` at any realistic width (trained weights are O(1), vectors
/// unit-norm), where finite-but-huge values (3.4e38 in a projection) made every score NaN.
pub const MAX_ABS_VALUE: f32 = 1e4;

/// Largest magnitude of a folded value (projections of unit vectors through weights within
/// [`MAX_ABS_VALUE`] at widths up to [`MAX_WIDTH`] stay below ~3e13); with it every score and
/// intent vector stays finite even when the folded arrays are not recomputed at load.
pub const MAX_ABS_FOLDED: f32 = 1e14;

/// Widest `dim` / `attn_dim` a bundle may declare; with [`MAX_ABS_VALUE`] it bounds every
/// score below ~1e31 (docs/online-path.md §0).
pub const MAX_WIDTH: usize = 4096;

/// Deepest trie a bundle may hold: slot types are `u8` (depth − 1 for chain nodes, then
/// `D` for evidence and `D + 1` for the null slot, [`crate::slots::PAD_TYPE`] = 255 for
/// padding), so `D + 1 < 255`.
pub const MAX_DEPTH: usize = 254;

/// Most domains a bundle may name: domain ids are `u8`.
pub const MAX_DOMAINS: usize = 255;

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct Dims {
    pub n_nodes: usize,
    pub n_items: usize,
    pub dim: usize,
    pub attn_dim: usize,
    pub n_heads: usize,
    pub max_depth: usize,
    pub path_slots: usize,
    pub n_domains: usize,
}

#[derive(Debug, Clone, Deserialize)]
struct FileEntry {
    sha256: String,
    bytes: u64,
}

/// usearch build/search settings recorded by the writer; `expansion_search` is not stored in the
/// index file itself, so the engine applies it from here.
#[derive(Debug, Clone, Deserialize)]
pub struct IndexSettings {
    #[serde(default = "default_expansion_search")]
    pub expansion_search: usize,
}

fn default_expansion_search() -> usize {
    64
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings { expansion_search: default_expansion_search() }
    }
}

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(default)]
    index: IndexSettings,
    dims: Dims,
    domains: Vec<String>,
    config: EngineConfig,
    config_sha256: String,
    files: BTreeMap<String, FileEntry>,
    #[serde(default)]
    meta: serde_json::Value,
}

/// How to load a bundle.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Verify every file's sha256 (a few tens of ms per 100 MB). Off trusts the files.
    pub verify_checksums: bool,
    /// Concurrent searches the vector indexes must support.
    pub search_threads: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { verify_checksums: true, search_threads: 4 * std::thread::available_parallelism().map_or(4, |n| n.get()) }
    }
}

/// A loaded, validated bundle. Immutable; shared by engines through an `Arc`.
#[derive(Debug)]
pub struct Bundle {
    pub path: PathBuf,
    pub dims: Dims,
    pub domains: Vec<String>,
    /// The configuration stored in the bundle (engines may override it).
    pub config: EngineConfig,
    pub meta: serde_json::Value,
    /// sha256 of the `manifest.json` bytes this bundle was loaded and verified from.
    pub manifest_sha256: String,
    pub trie: Trie,
    pub(crate) item_path_offsets: Array<i64>,
    pub(crate) item_path_leaves: Array<i32>,
    pub node_vectors: Array<f32>,
    pub item_vectors: Array<f32>,
    pub item_domain: Array<u8>,
    /// Each item's external id (the dataset's own), with the lookup back to internal ids.
    pub external_ids: ExternalIds,
    pub composer: Composer,
    pub(crate) item_indexes: Vec<VectorIndex>,
    pub(crate) leaf_index: VectorIndex,
}

fn sha256_hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_reader(mut reader: impl Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(sha256_hex(&hasher.finalize()))
}

fn check_digest(path: &Path, digest: &str, entry: &FileEntry) -> Result<()> {
    if digest.eq_ignore_ascii_case(&entry.sha256) {
        return Ok(());
    }
    Err(Error::BundleChecksum {
        path: path.to_path_buf(),
        message: format!("sha256 {digest}, manifest says {} (corrupted?)", entry.sha256),
    })
}

/// The manifest and the sha256 of its bytes (what a service reports as the bundle's identity:
/// exactly the manifest the files were verified against).
fn read_manifest(dir: &Path) -> Result<(Manifest, String)> {
    let file = files::open(dir, MANIFEST)?;
    let path = file.path.clone();
    let bytes = file.read_all(files::MAX_MANIFEST_BYTES)?;
    let digest = sha256_hex(&Sha256::digest(&bytes));
    let text = String::from_utf8(bytes).map_err(|e| Error::bundle(&path, format!("not UTF-8: {e}")))?;
    let raw: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::bundle(&path, format!("invalid JSON: {e}")))?;
    if raw.get("format").and_then(|v| v.as_str()) != Some(FORMAT_NAME) {
        return Err(Error::bundle(&path, format!("not an airrec bundle manifest (format != {FORMAT_NAME:?})")));
    }
    // The version is checked before the rest so an old or new bundle gets a version error.
    let version = raw.get("format_version").and_then(|v| v.as_u64()).ok_or_else(|| Error::bundle(&path, "no format_version"))?;
    if version != FORMAT_VERSION {
        return Err(Error::BundleVersion { path: dir.to_path_buf(), found: version, supported: FORMAT_VERSION });
    }
    let manifest = serde_json::from_value(raw).map_err(|e| Error::bundle(&path, format!("invalid manifest: {e}")))?;
    Ok((manifest, digest))
}

/// Opens every file the manifest lists (regular files inside the bundle only, see
/// [`files::open`]), checks its size against the manifest before anything reads it, and its
/// sha256 when `checksums` is on. Index files are hashed where they are read
/// ([`Loader::index`]), so they are read once.
fn open_files(dir: &Path, entries: &BTreeMap<String, FileEntry>, checksums: bool) -> Result<BTreeMap<String, files::BundleFile>> {
    entries
        .par_iter()
        .map(|(name, entry)| {
            if name == MANIFEST {
                return Err(Error::bundle(dir, "the manifest cannot list itself"));
            }
            let file = files::open(dir, name)?;
            if file.len != entry.bytes {
                return Err(Error::BundleChecksum {
                    path: file.path,
                    message: format!("size {} bytes, manifest says {} (truncated or replaced?)", file.len, entry.bytes),
                });
            }
            if checksums && !name.ends_with(".usearch") {
                let digest = sha256_reader(&file.file).map_err(|e| Error::bundle(&file.path, format!("cannot read: {e}")))?;
                check_digest(&file.path, &digest, entry)?;
            }
            Ok((name.clone(), file))
        })
        .collect()
}

struct Loader<'a> {
    dir: &'a Path,
    entries: &'a BTreeMap<String, FileEntry>,
    files: BTreeMap<String, files::BundleFile>,
    checksums: bool,
}

impl Loader<'_> {
    fn file(&self, name: &str) -> Result<&files::BundleFile> {
        self.files.get(name).ok_or_else(|| Error::bundle(self.dir, format!("manifest does not list required file {name:?}")))
    }

    fn array<T: Element>(&self, stem: &str, shape: &[Option<usize>]) -> Result<Array<T>> {
        let f = self.file(&format!("{stem}.npy"))?;
        npy::load_shaped_from(&f.file, &f.path, shape)
    }

    fn finite(&self, stem: &str, shape: &[Option<usize>]) -> Result<Array<f32>> {
        self.bounded(stem, shape, MAX_ABS_VALUE)
    }

    /// A float array whose every value is finite and within ±`bound`.
    fn bounded(&self, stem: &str, shape: &[Option<usize>], bound: f32) -> Result<Array<f32>> {
        let a: Array<f32> = self.array(stem, shape)?;
        if let Some(pos) = a.par_iter().position_any(|v| !v.is_finite() || v.abs() > bound) {
            return Err(Error::bundle(
                self.dir.join(format!("{stem}.npy")),
                format!("non-finite or out-of-range value {} at flat index {pos} (must be finite and within ±{bound:e})", a[pos]),
            ));
        }
        Ok(a)
    }

    /// An index file, memory-mapped, hashed when checksums are on, validated and viewed.
    fn index(&self, name: &str, expected: &Expected<'_>, threads: usize, expansion_search: usize) -> Result<VectorIndex> {
        let f = self.file(name)?;
        let map = f.map()?;
        if self.checksums {
            check_digest(&f.path, &sha256_hex(&Sha256::digest(&map[..])), &self.entries[name])?;
        }
        VectorIndex::from_map(&f.path, map, expected, threads, expansion_search)
    }
}

fn check_csr(path: &Path, offsets: &[i64], n_values: usize) -> Result<()> {
    if offsets.first() != Some(&0) || *offsets.last().unwrap_or(&-1) != n_values as i64 {
        return Err(Error::bundle(path, format!("offsets must start at 0 and end at {n_values}")));
    }
    if offsets.windows(2).any(|w| w[1] < w[0]) {
        return Err(Error::bundle(path, "offsets must be non-decreasing"));
    }
    Ok(())
}

impl Bundle {
    /// Loads and validates the bundle in `dir`.
    pub fn load(dir: impl AsRef<Path>, options: &LoadOptions) -> Result<Bundle> {
        let dir = &files::canonical_dir(dir.as_ref())?;
        let (manifest, manifest_sha256) = read_manifest(dir)?;
        manifest.config.validate().map_err(|e| Error::bundle(dir.join(MANIFEST), e.to_string()))?;
        // The config lives in the manifest, which no file checksum covers: it has its own.
        let config_digest = crate::writer::config_sha256(&manifest.config);
        if options.verify_checksums && !config_digest.eq_ignore_ascii_case(&manifest.config_sha256) {
            return Err(Error::BundleChecksum {
                path: dir.join(MANIFEST),
                message: format!("config sha256 {config_digest}, manifest says {} (config edited?)", manifest.config_sha256),
            });
        }
        let opened = open_files(dir, &manifest.files, options.verify_checksums)?;
        let ld = Loader { dir, entries: &manifest.files, files: opened, checksums: options.verify_checksums };
        let d = &manifest.dims;
        let bad = |m: String| Error::bundle(dir.join(MANIFEST), m);
        if d.dim == 0 || d.n_heads == 0 || d.attn_dim == 0 || d.attn_dim % d.n_heads != 0 {
            return Err(bad(format!("dims: need dim > 0 and attn_dim ({}) a positive multiple of n_heads ({})", d.attn_dim, d.n_heads)));
        }
        if d.dim > MAX_WIDTH || d.attn_dim > MAX_WIDTH {
            return Err(bad(format!("dims: dim ({}) and attn_dim ({}) must be <= {MAX_WIDTH}", d.dim, d.attn_dim)));
        }
        if d.max_depth == 0 || d.max_depth > MAX_DEPTH {
            return Err(bad(format!("dims: max_depth must be in 1..={MAX_DEPTH}, got {}", d.max_depth)));
        }
        if d.path_slots == 0 {
            return Err(bad("dims: path_slots must be >= 1".into()));
        }
        if d.n_domains == 0 || d.n_domains > MAX_DOMAINS || manifest.domains.len() != d.n_domains {
            return Err(bad(format!(
                "dims: n_domains {} must be 1..={MAX_DOMAINS} and match the {} domain names",
                d.n_domains,
                manifest.domains.len()
            )));
        }
        if d.n_nodes > i32::MAX as usize || d.n_items > u32::MAX as usize / d.path_slots.max(1) {
            return Err(bad("dims: too many nodes or items".into()));
        }
        let (n, i, dim, a) = (Some(d.n_nodes), Some(d.n_items), Some(d.dim), Some(d.attn_dim));

        // Trie.
        let parent: Array<i32> = ld.array("trie_parent", &[n])?;
        let depth: Array<u8> = ld.array("trie_depth", &[n])?;
        let ppath = dir.join("trie_parent.npy");
        for (node, (&p, &dep)) in parent.iter().zip(depth.iter()).enumerate() {
            let want = if p < 0 {
                if p != -1 {
                    return Err(Error::bundle(&ppath, format!("node {node}: parent {p} (roots use -1)")));
                }
                1
            } else {
                if p as usize >= node {
                    return Err(Error::bundle(&ppath, format!("node {node}: parent {p} must be < {node} (topological order)")));
                }
                depth[p as usize] as usize + 1
            };
            if dep as usize != want || want > d.max_depth {
                return Err(Error::bundle(
                    dir.join("trie_depth.npy"),
                    format!("node {node}: depth {dep}, expected {want} (max_depth {})", d.max_depth),
                ));
            }
        }
        let phrase_offsets: Array<i64> = ld.array("trie_phrase_offsets", &[Some(d.n_nodes + 1)])?;
        let phrase_bytes: Array<u8> = ld.array("trie_phrase_bytes", &[None])?;
        let opath = dir.join("trie_phrase_offsets.npy");
        check_csr(&opath, &phrase_offsets, phrase_bytes.len())?;
        for node in 0..d.n_nodes {
            let bytes = &phrase_bytes[phrase_offsets[node] as usize..phrase_offsets[node + 1] as usize];
            if std::str::from_utf8(bytes).is_err() {
                return Err(Error::bundle(dir.join("trie_phrase_bytes.npy"), format!("phrase of node {node} is not UTF-8")));
            }
        }
        let trie = Trie::new(parent, depth, phrase_offsets, phrase_bytes);

        // Item → path leaves.
        let item_path_offsets: Array<i64> = ld.array("item_path_offsets", &[Some(d.n_items * d.path_slots + 1)])?;
        let item_path_leaves: Array<i32> = ld.array("item_path_leaves", &[None])?;
        check_csr(&dir.join("item_path_offsets.npy"), &item_path_offsets, item_path_leaves.len())?;
        if let Some(bad_leaf) = item_path_leaves.iter().find(|&&l| l < 0 || l as usize >= d.n_nodes) {
            return Err(Error::bundle(dir.join("item_path_leaves.npy"), format!("node id {bad_leaf} outside 0..{}", d.n_nodes)));
        }

        // Vectors.
        let node_vectors = ld.finite("node_vectors", &[n, dim])?;
        let item_vectors = ld.finite("item_vectors", &[i, dim])?;
        let item_domain: Array<u8> = ld.array("item_domain", &[i])?;
        if let Some(dm) = item_domain.iter().find(|&&x| x as usize >= d.n_domains) {
            return Err(Error::bundle(dir.join("item_domain.npy"), format!("domain {dm} outside 0..{}", d.n_domains)));
        }

        let ext_offsets: Array<i64> = ld.array("item_ext_offsets", &[Some(d.n_items + 1)])?;
        let ext_bytes: Array<u8> = ld.array("item_ext_bytes", &[None])?;
        let external_ids = ExternalIds::new(ext_offsets, ext_bytes, &dir.join("item_ext_offsets.npy"), &dir.join("item_ext_bytes.npy"))?;

        // Composition.
        let t = Some(d.max_depth + 2);
        let weights = ComposeWeights {
            wq: ld.finite("compose_wq", &[dim, a])?,
            wk: ld.finite("compose_wk", &[dim, a])?,
            wv: ld.finite("compose_wv", &[dim, a])?,
            wo: ld.finite("compose_wo", &[a, dim])?,
            bo: ld.finite("compose_bo", &[dim])?,
            type_key: ld.finite("compose_type_key", &[t, a])?,
            type_value: ld.finite("compose_type_value", &[t, a])?,
            weight_bias: ld.finite("compose_weight_bias", &[Some(d.n_heads)])?,
            score_w_out: ld.finite("score_w_out", &[dim])?,
            score_w_inter: ld.finite("score_w_inter", &[dim])?,
            score_bias: ld.finite("score_bias", &[Some(1)])?,
        };

        // Indexes: one per domain over its items, one over trie leaves; each must hold exactly
        // its keys with the bundle's (checked) vectors, because search results are used as ids.
        let mut per_domain = vec![0usize; d.n_domains];
        item_domain.iter().for_each(|&x| per_domain[x as usize] += 1);
        let (threads, ef) = (options.search_threads, manifest.index.expansion_search);
        let item_indexes = (0..d.n_domains)
            .map(|k| {
                let vector = |key: u64| {
                    let i = usize::try_from(key).ok().filter(|&i| i < d.n_items && item_domain[i] as usize == k)?;
                    Some(item_vectors.row(i))
                };
                let expected = Expected { what: format!("an item of domain {k}"), dim: d.dim, n: per_domain[k], vector: &vector };
                ld.index(&format!("index_items_{k}.usearch"), &expected, threads, ef)
            })
            .collect::<Result<Vec<_>>>()?;
        let leaf_vector = |key: u64| {
            let node = u32::try_from(key).ok().filter(|&n| (n as usize) < d.n_nodes && trie.is_leaf(n))?;
            Some(node_vectors.row(node as usize))
        };
        let expected = Expected { what: "a trie leaf".into(), dim: d.dim, n: trie.n_leaves(), vector: &leaf_vector };
        let leaf_index = ld.index("index_leaves.usearch", &expected, threads, ef)?;

        let composer = Composer::new(weights, Folded::empty(), d.dim, d.n_heads);
        let [rows, kv, nkv] = composer.expected_shapes(d.n_items, d.n_nodes).map(|s| [Some(s[0]), Some(s[1])]);
        let folded = Folded {
            item_rows: ld.bounded(FOLDED_ARRAYS[0], &rows, MAX_ABS_FOLDED)?,
            item_kv: ld.bounded(FOLDED_ARRAYS[1], &kv, MAX_ABS_FOLDED)?,
            node_kv: ld.bounded(FOLDED_ARRAYS[2], &nkv, MAX_ABS_FOLDED)?,
        };
        let composer = composer.with_folded(folded);
        // The folded arrays are derived data: with checksums on they must also be what the
        // weights give (a file edited and re-checksummed gives a typed error, not wrong scores).
        if options.verify_checksums {
            if let Err((name, (row, col, stored, expected))) = composer.verify_folded(&node_vectors, &item_vectors) {
                return Err(Error::bundle(
                    dir.join(format!("{name}.npy")),
                    format!(
                        "row {row}, column {col}: stored {stored}, the weights give {expected} (edited, or written for other weights?)"
                    ),
                ));
            }
        }
        Ok(Bundle {
            path: dir.to_path_buf(),
            dims: manifest.dims,
            domains: manifest.domains,
            config: manifest.config,
            meta: manifest.meta,
            manifest_sha256,
            trie,
            item_path_offsets,
            item_path_leaves,
            node_vectors,
            item_vectors,
            item_domain,
            external_ids,
            composer,
            item_indexes,
            leaf_index,
        })
    }

    /// Cached path leaves of CSR slot `slot`.
    #[inline]
    pub fn path_leaves(&self, slot: usize) -> &[i32] {
        let (a, b) = (self.item_path_offsets[slot], self.item_path_offsets[slot + 1]);
        &self.item_path_leaves[a as usize..b as usize]
    }

    #[inline(always)]
    pub fn node_vector(&self, node: u32) -> &[f32] {
        self.node_vectors.row(node as usize)
    }

    #[inline(always)]
    pub fn item_vector(&self, item: u32) -> &[f32] {
        self.item_vectors.row(item as usize)
    }

    pub fn n_items(&self) -> usize {
        self.dims.n_items
    }
}
