//! Test data for tests, benchmarks and examples (cargo feature `testing`, off by default; this
//! crate's own tests, benches and examples turn it on). Bundles are written by the one writer,
//! [`crate::writer`] (re-exported here).
//!
//! - [`Composition::init`] / [`Composition::random`]: untrained and fully random weights.
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

use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::writer::io_err;

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

pub use crate::writer::*;

/// The `created_by` of bundles this module makes.
pub const TESTING_WRITER: &str = concat!("airrec-core ", env!("CARGO_PKG_VERSION"), " (testing)");

// ------------------------------------------------------------------------------------------
// Composition weights for tests
// ------------------------------------------------------------------------------------------

impl Composition {
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
            item_ext_ids: (0..self.items.len()).map(|i| format!("item-{i}")).collect(),
            domains: self.domains.clone(),
            dim: self.dim,
            path_slots: self.path_slots,
            composition: self.composition(),
            config: self.config.clone(),
            index: self.index,
            meta: serde_json::json!({"fixture": "airrec_core::testing::Fixture"}),
            extra_files: Vec::new(),
            created_by: TESTING_WRITER.into(),
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
            item_ext_ids: (0..s.n_items).map(|i| format!("sku-{i:06}")).collect(),
            domains: (0..s.n_domains).map(|k| format!("d{k}")).collect(),
            dim: d,
            path_slots: 1,
            composition: Composition::init(d, d, s.n_heads, s.depth, s.seed),
            config: EngineConfig::default(),
            index: IndexSpec::default(),
            meta: serde_json::json!({"synthetic": {"seed": s.seed, "depth": s.depth, "paths_per_item": s.paths_per_item, "writer": "airrec_core::testing"}}),
            extra_files: Vec::new(),
            created_by: TESTING_WRITER.into(),
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
