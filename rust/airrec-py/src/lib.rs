//! `airrec._airrec`: the PyO3 binding of `airrec-core`.
//!
//! Deliberately thin: it borrows NumPy arrays (zero-copy, typed: the Python layer in
//! `airrec/engine.py` converts and validates dtypes first), releases the GIL for all compute,
//! and maps core errors onto `airrec.errors`. The public, documented API is `airrec.Engine`.

mod errors;

use std::sync::{Arc, Mutex, OnceLock};

use airrec_core::{Candidates, Engine, Explanation, Histories, LoadOptions, SlotsOut, TreeSlotsOut, UserTree};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use errors::{py_error, IntoPyResult};

/// `(ids, scores)` arrays, as `retrieve` and `nearest_intents` return them.
type IdsAndScores<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f32>>);
/// One candidate's context: its chains (node ids, root first) and evidence event indices.
type ChainsAndEvidence = (Vec<Vec<u32>>, Vec<u32>);
/// Thread pools by thread count, least recently used first.
type PoolCache = Vec<(usize, Arc<rayon::ThreadPool>)>;

fn input_error(message: String) -> PyErr {
    py_error("InputError", message)
}

/// Item ids arrive as int64 (NumPy's default); the core uses u32 after a range check.
fn item_ids(engine: &Engine, ids: &[i64]) -> PyResult<Vec<u32>> {
    ids.iter().map(|&i| engine.item_id(i)).collect::<Result<_, _>>().py()
}

fn slice<'a, T: numpy::Element>(a: &'a PyReadonlyArray1<'_, T>, name: &str) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| input_error(format!("{name} must be C-contiguous")))
}

fn histories<'a>(
    offsets: &'a PyReadonlyArray1<'_, i64>,
    items: &'a PyReadonlyArray1<'_, i64>,
    behaviours: &'a PyReadonlyArray1<'_, i64>,
    timestamps: &'a PyReadonlyArray1<'_, f64>,
) -> PyResult<Histories<'a>> {
    Ok(Histories {
        offsets: slice(offsets, "offsets")?,
        items: slice(items, "items")?,
        behaviours: slice(behaviours, "behaviours")?,
        timestamps: slice(timestamps, "timestamps")?,
    })
}

/// The `[U, C]` candidates of a batch as checked item ids, with `U` and `C`; `U` must match the
/// histories.
fn batch_candidates(engine: &Engine, h: &Histories<'_>, candidates: &PyReadonlyArray2<'_, i64>) -> PyResult<(usize, usize, Vec<u32>)> {
    let (u, c) = (candidates.shape()[0], candidates.shape()[1]);
    if u != h.n_users() {
        return Err(input_error(format!("candidates has {u} rows but offsets describe {} users", h.n_users())));
    }
    let cand = item_ids(engine, candidates.as_slice().map_err(|_| input_error("candidates must be C-contiguous".into()))?)?;
    Ok((u, c, cand))
}

/// Most threads one batch call may ask for: beyond this a request is a mistake (or an attack:
/// `n_threads=2**63` made rayon spawn threads until the machine ran out, ~30k here).
const MAX_THREADS: usize = 256;
/// Pools kept for reuse; a further thread count replaces the least recently used pool (calls
/// still running on it keep it alive through their `Arc`), so distinct counts cannot pile up
/// idle threads (100 distinct values used to leave 10k threads behind).
const MAX_POOLS: usize = 4;

/// A rayon pool per requested thread count, built once and reused (a bounded cache).
fn pool(n_threads: Option<usize>) -> PyResult<Option<Arc<rayon::ThreadPool>>> {
    let Some(n) = n_threads else { return Ok(None) };
    if n == 0 || n > MAX_THREADS {
        return Err(input_error(format!("n_threads must be in 1..={MAX_THREADS}, got {n}")));
    }
    static POOLS: OnceLock<Mutex<PoolCache>> = OnceLock::new();
    let mut pools = POOLS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(at) = pools.iter().position(|(k, _)| *k == n) {
        let entry = pools.remove(at);
        let p = entry.1.clone();
        pools.push(entry); // most recently used last
        return Ok(Some(p));
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new().num_threads(n).build().map_err(|e| input_error(format!("cannot start {n} threads: {e}")))?,
    );
    if pools.len() >= MAX_POOLS {
        pools.remove(0);
    }
    pools.push((n, p.clone()));
    Ok(Some(p))
}

fn in_pool<T: Send>(pool: Option<Arc<rayon::ThreadPool>>, f: impl FnOnce() -> T + Send) -> T {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// A user's weighted intent tree (see `airrec.UserTree`).
#[pyclass(name = "UserTree", module = "airrec._airrec")]
struct PyUserTree {
    tree: UserTree,
}

#[pymethods]
impl PyUserTree {
    #[getter]
    fn n_events(&self) -> usize {
        self.tree.n_events()
    }

    #[getter]
    fn n_nodes(&self) -> usize {
        self.tree.nodes().len()
    }

    #[getter]
    fn t_ref(&self) -> f64 {
        self.tree.t_ref()
    }

    #[getter]
    fn total_mass(&self) -> f64 {
        self.tree.total_mass()
    }

    /// `(node_ids, weights)`: reached trie nodes in ascending id and their normalised weight.
    fn nodes<'py>(&self, py: Python<'py>) -> (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f64>>) {
        let mut pairs: Vec<(i64, f64)> =
            (0..self.tree.nodes().len() as u32).map(|i| (self.tree.nodes()[i as usize].node as i64, self.tree.weight(i))).collect();
        pairs.sort_unstable_by_key(|p| p.0);
        let (ids, ws): (Vec<i64>, Vec<f64>) = pairs.into_iter().unzip();
        (PyArray1::from_vec(py, ids), PyArray1::from_vec(py, ws))
    }

    fn __repr__(&self) -> String {
        format!("UserTree(n_events={}, n_nodes={})", self.tree.n_events(), self.tree.nodes().len())
    }
}

/// The online engine (see `airrec.Engine`).
#[pyclass(name = "Engine", module = "airrec._airrec", frozen)]
struct PyEngine {
    engine: Engine,
}

fn explanation_dict<'py>(py: Python<'py>, engine: &Engine, e: &Explanation) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let ext = |item: u32| engine.bundle().external_ids.get(item);
    d.set_item("score", e.score)?;
    d.set_item("intent_vector", PyArray1::from_vec(py, e.intent_vector.clone()))?;
    d.set_item("null_attention", e.null_attention)?;
    let chains = PyList::empty(py);
    for c in &e.chains {
        let cd = PyDict::new(py);
        cd.set_item("nodes", c.nodes.clone())?;
        cd.set_item("phrases", c.phrases.clone())?;
        cd.set_item("weights", c.weights.clone())?;
        cd.set_item("similarities", c.similarities.clone())?;
        cd.set_item("attention", c.attention.clone())?;
        cd.set_item("score", c.score)?;
        chains.append(cd)?;
    }
    d.set_item("chains", chains)?;
    let evidence = PyList::empty(py);
    for ev in &e.evidence {
        let ed = PyDict::new(py);
        ed.set_item("event", ev.event)?;
        ed.set_item("item", ev.item)?;
        ed.set_item("ext", ext(ev.item))?;
        ed.set_item("behaviour", ev.behaviour)?;
        ed.set_item("timestamp", ev.timestamp)?;
        ed.set_item("weight", ev.weight)?;
        ed.set_item("similarity", ev.similarity)?;
        ed.set_item("score", ev.score)?;
        ed.set_item("attention", ev.attention)?;
        evidence.append(ed)?;
    }
    d.set_item("evidence", evidence)?;
    Ok(d)
}

#[pymethods]
impl PyEngine {
    #[staticmethod]
    #[pyo3(signature = (path, overrides_json=None, verify_checksums=true))]
    fn load(py: Python<'_>, path: std::path::PathBuf, overrides_json: Option<String>, verify_checksums: bool) -> PyResult<Self> {
        let overrides = overrides_json
            .map(|s| serde_json::from_str::<serde_json::Value>(&s))
            .transpose()
            .map_err(|e| py_error("ConfigError", format!("overrides are not valid JSON: {e}")))?;
        let options = LoadOptions { verify_checksums, ..LoadOptions::default() };
        let engine = py.detach(|| Engine::load(&path, &options, overrides.as_ref())).py()?;
        Ok(PyEngine { engine })
    }

    /// The same bundle and config with other composition weights (a `{name: float32 ndarray}`
    /// dict as `Composition.arrays()` gives), folded now with the GIL released.
    fn with_composition(&self, py: Python<'_>, composition: &Bound<'_, PyDict>) -> PyResult<Self> {
        let c = composition_from(composition, self.engine.dim())?;
        let engine = py.detach(|| self.engine.with_composition(&c)).py()?;
        Ok(PyEngine { engine })
    }

    fn with_overrides(&self, overrides_json: &str) -> PyResult<Self> {
        let v: serde_json::Value =
            serde_json::from_str(overrides_json).map_err(|e| py_error("ConfigError", format!("overrides are not valid JSON: {e}")))?;
        Ok(PyEngine { engine: self.engine.with_overrides(&v).py()? })
    }

    #[getter]
    fn config_json(&self) -> String {
        serde_json::to_string(self.engine.config()).expect("config serialises")
    }

    #[getter]
    fn dims_json(&self) -> String {
        serde_json::to_string(&self.engine.bundle().dims).expect("dims serialise")
    }

    #[getter]
    fn meta_json(&self) -> String {
        self.engine.bundle().meta.to_string()
    }

    #[getter]
    fn domains(&self) -> Vec<String> {
        self.engine.bundle().domains.clone()
    }

    #[getter]
    fn path(&self) -> std::path::PathBuf {
        self.engine.bundle().path.clone()
    }

    #[getter]
    fn manifest_sha256(&self) -> String {
        self.engine.bundle().manifest_sha256.clone()
    }

    fn build_tree(
        &self,
        py: Python<'_>,
        items: PyReadonlyArray1<'_, i64>,
        behaviours: PyReadonlyArray1<'_, i64>,
        timestamps: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<PyUserTree> {
        let (i, b, t) = (slice(&items, "items")?, slice(&behaviours, "behaviours")?, slice(&timestamps, "timestamps")?);
        let tree = py.detach(|| self.engine.build_tree(i, b, t)).py()?;
        Ok(PyUserTree { tree })
    }

    fn add_event(&self, tree: &Bound<'_, PyUserTree>, item: i64, behaviour: i64, timestamp: f64) -> PyResult<()> {
        // Scoring reads the tree with the GIL released, so another thread's add can arrive
        // while a read is in flight: a typed error that says what to do, not PyO3's bare
        // "Already borrowed" RuntimeError.
        let mut tree = tree.try_borrow_mut().map_err(|_| {
            py_error(
                "TreeBusyError",
                "this UserTree is being read by another thread (a score, explain or retrieve is running); \
                 a UserTree has one owner: add events from the thread that owns it, or give each thread its own tree"
                    .into(),
            )
        })?;
        self.engine.add_event(&mut tree.tree, item, behaviour, timestamp).py()
    }

    fn scores<'py>(
        &self,
        py: Python<'py>,
        tree: PyRef<'_, PyUserTree>,
        candidates: PyReadonlyArray1<'_, i64>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let ids = item_ids(&self.engine, slice(&candidates, "candidates")?)?;
        let t = &tree.tree;
        let out = py.detach(|| self.engine.scores(t, Candidates::Items(&ids))).py()?;
        Ok(PyArray1::from_vec(py, out))
    }

    fn scores_for_vectors<'py>(
        &self,
        py: Python<'py>,
        tree: PyRef<'_, PyUserTree>,
        vectors: PyReadonlyArray2<'_, f32>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let v = vectors.as_slice().map_err(|_| input_error("vectors must be C-contiguous".into()))?;
        let t = &tree.tree;
        let out = py.detach(|| self.engine.scores(t, Candidates::Vectors(v))).py()?;
        Ok(PyArray1::from_vec(py, out))
    }

    fn intent_vectors<'py>(
        &self,
        py: Python<'py>,
        tree: PyRef<'_, PyUserTree>,
        candidates: PyReadonlyArray1<'_, i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ids = item_ids(&self.engine, slice(&candidates, "candidates")?)?;
        let t = &tree.tree;
        let out = py.detach(|| self.engine.intent_vectors(t, Candidates::Items(&ids))).py()?;
        let d = self.engine.dim();
        Ok(PyArray1::from_vec(py, out).reshape([ids.len(), d])?.into_any())
    }

    fn intent_vectors_for_vectors<'py>(
        &self,
        py: Python<'py>,
        tree: PyRef<'_, PyUserTree>,
        vectors: PyReadonlyArray2<'_, f32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let n = vectors.shape()[0];
        let v = vectors.as_slice().map_err(|_| input_error("vectors must be C-contiguous".into()))?;
        let t = &tree.tree;
        let out = py.detach(|| self.engine.intent_vectors(t, Candidates::Vectors(v))).py()?;
        Ok(PyArray1::from_vec(py, out).reshape([n, self.engine.dim()])?.into_any())
    }

    /// `[(chains, evidence)]` per candidate: chains as lists of node ids, evidence as event indices.
    fn contexts(
        &self,
        py: Python<'_>,
        tree: PyRef<'_, PyUserTree>,
        candidates: PyReadonlyArray1<'_, i64>,
    ) -> PyResult<Vec<ChainsAndEvidence>> {
        let ids = item_ids(&self.engine, slice(&candidates, "candidates")?)?;
        let t = &tree.tree;
        let out = py.detach(|| self.engine.contexts(t, Candidates::Items(&ids))).py()?;
        Ok(out.into_iter().map(|c| (c.chains, c.evidence)).collect())
    }

    fn explain<'py>(&self, py: Python<'py>, tree: PyRef<'_, PyUserTree>, candidate: i64) -> PyResult<Bound<'py, PyDict>> {
        let id = [self.engine.item_id(candidate).py()?];
        let t = &tree.tree;
        let e = py.detach(|| self.engine.explain(t, Candidates::Items(&id))).py()?;
        explanation_dict(py, &self.engine, &e)
    }

    #[pyo3(signature = (offsets, items, behaviours, timestamps, candidates, vectors=false, n_threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn batch<'py>(
        &self,
        py: Python<'py>,
        offsets: PyReadonlyArray1<'_, i64>,
        items: PyReadonlyArray1<'_, i64>,
        behaviours: PyReadonlyArray1<'_, i64>,
        timestamps: PyReadonlyArray1<'_, f64>,
        candidates: PyReadonlyArray2<'_, i64>,
        vectors: bool,
        n_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let h = histories(&offsets, &items, &behaviours, &timestamps)?;
        let (u, c, cand) = batch_candidates(&self.engine, &h, &candidates)?;
        let d = self.engine.dim();
        let per = if vectors { d } else { 1 };
        let pool = pool(n_threads)?;
        let out = py
            .detach(|| {
                let mut out = vec![0.0f32; u * c * per];
                in_pool(pool, || {
                    if vectors {
                        self.engine.intent_vectors_batch(h, &cand, c, &mut out)
                    } else {
                        self.engine.scores_batch(h, &cand, c, &mut out)
                    }
                })
                .map(|_| out)
            })
            .py()?;
        let arr = PyArray1::from_vec(py, out);
        Ok(if vectors { arr.reshape([u, c, d])?.into_any() } else { arr.reshape([u, c])?.into_any() })
    }

    #[getter]
    fn slot_width(&self) -> usize {
        self.engine.slot_width()
    }

    /// Attention slots `(ids int32, types uint8, ln_w float32)`, each `[U, C, slot_width]`.
    #[pyo3(signature = (offsets, items, behaviours, timestamps, candidates, n_threads=None))]
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn slots_batch<'py>(
        &self,
        py: Python<'py>,
        offsets: PyReadonlyArray1<'_, i64>,
        items: PyReadonlyArray1<'_, i64>,
        behaviours: PyReadonlyArray1<'_, i64>,
        timestamps: PyReadonlyArray1<'_, f64>,
        candidates: PyReadonlyArray2<'_, i64>,
        n_threads: Option<usize>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let h = histories(&offsets, &items, &behaviours, &timestamps)?;
        let (u, c, cand) = batch_candidates(&self.engine, &h, &candidates)?;
        let w = self.engine.slot_width();
        let pool = pool(n_threads)?;
        let (ids, types, ln_w) = py
            .detach(|| {
                let n = u * c * w;
                let (mut ids, mut types, mut ln_w) = (vec![0i32; n], vec![0u8; n], vec![0f32; n]);
                in_pool(pool, || self.engine.slots_batch(h, &cand, c, SlotsOut { ids: &mut ids, types: &mut types, ln_w: &mut ln_w }))
                    .map(|_| (ids, types, ln_w))
            })
            .py()?;
        Ok((
            PyArray1::from_vec(py, ids).reshape([u, c, w])?.into_any(),
            PyArray1::from_vec(py, types).reshape([u, c, w])?.into_any(),
            PyArray1::from_vec(py, ln_w).reshape([u, c, w])?.into_any(),
        ))
    }

    /// Each user's tree nodes by weight: `(ids int32, ln_w float32)`, each `[U, width]`.
    #[pyo3(signature = (offsets, items, behaviours, timestamps, width, n_threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn tree_slots_batch<'py>(
        &self,
        py: Python<'py>,
        offsets: PyReadonlyArray1<'_, i64>,
        items: PyReadonlyArray1<'_, i64>,
        behaviours: PyReadonlyArray1<'_, i64>,
        timestamps: PyReadonlyArray1<'_, f64>,
        width: usize,
        n_threads: Option<usize>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let h = histories(&offsets, &items, &behaviours, &timestamps)?;
        let u = h.n_users();
        let pool = pool(n_threads)?;
        let (ids, ln_w) = py
            .detach(|| {
                let (mut ids, mut ln_w) = (vec![0i32; u * width], vec![0f32; u * width]);
                in_pool(pool, || self.engine.tree_slots_batch(h, width, TreeSlotsOut { ids: &mut ids, ln_w: &mut ln_w }))
                    .map(|_| (ids, ln_w))
            })
            .py()?;
        Ok((PyArray1::from_vec(py, ids).reshape([u, width])?.into_any(), PyArray1::from_vec(py, ln_w).reshape([u, width])?.into_any()))
    }

    fn retrieve<'py>(
        &self,
        py: Python<'py>,
        tree: PyRef<'_, PyUserTree>,
        domain: usize,
        k: usize,
        pool: usize,
        rerank: bool,
    ) -> PyResult<IdsAndScores<'py>> {
        let t = &tree.tree;
        let (ids, scores) = py.detach(|| self.engine.retrieve(t, domain, k, pool, rerank)).py()?;
        Ok((PyArray1::from_vec(py, ids.into_iter().map(i64::from).collect()), PyArray1::from_vec(py, scores)))
    }

    fn nearest_intents<'py>(&self, py: Python<'py>, vector: PyReadonlyArray1<'_, f32>, k: usize) -> PyResult<IdsAndScores<'py>> {
        let v = slice(&vector, "vector")?;
        let (ids, sims) = py.detach(|| self.engine.nearest_intents(v, k)).py()?;
        Ok((PyArray1::from_vec(py, ids.into_iter().map(i64::from).collect()), PyArray1::from_vec(py, sims)))
    }

    /// Internal ids of items named by their external ids; an unknown id is an
    /// `UnknownItemError` naming it.
    fn item_ids<'py>(&self, py: Python<'py>, external: Vec<String>) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let ids = external.iter().map(|id| self.engine.item_by_external_id(id).map(i64::from)).collect::<Result<Vec<_>, _>>().py()?;
        Ok(PyArray1::from_vec(py, ids))
    }

    /// External ids of internal item ids (range-checked).
    fn external_ids(&self, items: PyReadonlyArray1<'_, i64>) -> PyResult<Vec<String>> {
        slice(&items, "items")?.iter().map(|&i| self.engine.external_id(i).map(str::to_string)).collect::<Result<_, _>>().py()
    }

    fn phrase(&self, node: i64) -> PyResult<String> {
        let trie = &self.engine.bundle().trie;
        if node < 0 || node as usize >= trie.len() {
            return Err(input_error(format!("node {node} outside 0..{}", trie.len())));
        }
        Ok(trie.phrase(node as u32).to_string())
    }

    fn path_text(&self, node: i64) -> PyResult<String> {
        let trie = &self.engine.bundle().trie;
        if node < 0 || node as usize >= trie.len() {
            return Err(input_error(format!("node {node} outside 0..{}", trie.len())));
        }
        Ok(trie.path_text(node as u32))
    }

    fn __repr__(&self) -> String {
        let d = &self.engine.bundle().dims;
        format!("Engine(path={:?}, n_items={}, n_nodes={}, dim={})", self.engine.bundle().path, d.n_items, d.n_nodes, d.dim)
    }
}

/// The engine configuration with every default filled in and every value checked, as JSON:
/// the one definition of the config (Python's `airrec.bundle.validate_config` calls this).
/// `overrides` is a JSON object; unknown keys, wrong types and out-of-range values are a
/// `ConfigError` naming the key.
#[pyfunction]
fn validate_config(overrides: &str) -> PyResult<String> {
    let value: serde_json::Value =
        serde_json::from_str(overrides).map_err(|e| py_error("ConfigError", format!("config is not JSON: {e}")))?;
    let config = airrec_core::EngineConfig::default().with_overrides(&value).py()?;
    serde_json::to_string(&config).map_err(|e| py_error("ConfigError", e.to_string()))
}

/// The `config_sha256` a manifest records for this config (a JSON object, validated first).
#[pyfunction]
fn config_sha256(config: &str) -> PyResult<String> {
    let value: serde_json::Value = serde_json::from_str(config).map_err(|e| py_error("ConfigError", format!("config is not JSON: {e}")))?;
    let config = airrec_core::EngineConfig::default().with_overrides(&value).py()?;
    Ok(airrec_core::writer::config_sha256(&config))
}

/// `{setting: (low, high)}`: the inclusive range of every bounded config value.
#[pyfunction]
fn config_limits(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    for (name, lo, hi) in airrec_core::config::limits() {
        d.set_item(name, (lo, hi))?;
    }
    Ok(d)
}

/// Borrowed, contiguous float32 data of composition array `name` from `arrays`.
fn composition_array(arrays: &Bound<'_, PyDict>, name: &str) -> PyResult<Vec<f32>> {
    let value = arrays.get_item(name)?.ok_or_else(|| input_error(format!("composition array {name:?} is missing")))?;
    let array: numpy::PyReadonlyArrayDyn<'_, f32> =
        value.extract().map_err(|_| py_error("InputTypeError", format!("composition array {name:?} must be a float32 ndarray")))?;
    array.as_slice().map(<[f32]>::to_vec).map_err(|_| input_error(format!("composition array {name:?} must be C-contiguous")))
}

/// The composition and score-head weights of a `{name: float32 ndarray}` dict, for a bundle
/// of vector width `dim` (attention width, heads and depth follow from the arrays' sizes).
fn composition_from(composition: &Bound<'_, PyDict>, dim: usize) -> PyResult<airrec_core::writer::Composition> {
    let wq = composition_array(composition, "compose_wq")?;
    let weight_bias = composition_array(composition, "compose_weight_bias")?;
    let type_key = composition_array(composition, "compose_type_key")?;
    let n_heads = weight_bias.len();
    let attn_dim = wq.len().checked_div(dim).unwrap_or(0);
    if n_heads == 0 || attn_dim == 0 || attn_dim % n_heads != 0 || type_key.len() % attn_dim != 0 || type_key.len() / attn_dim < 3 {
        return Err(input_error(format!("composition: attn_dim {attn_dim} must be a positive multiple of n_heads {n_heads}")));
    }
    Ok(airrec_core::writer::Composition {
        dim,
        attn_dim,
        n_heads,
        max_depth: type_key.len() / attn_dim - 2,
        wq,
        wk: composition_array(composition, "compose_wk")?,
        wv: composition_array(composition, "compose_wv")?,
        wo: composition_array(composition, "compose_wo")?,
        bo: composition_array(composition, "compose_bo")?,
        type_key,
        type_value: composition_array(composition, "compose_type_value")?,
        weight_bias,
        score_w_out: composition_array(composition, "score_w_out")?,
        score_w_inter: composition_array(composition, "score_w_inter")?,
        score_bias: composition_array(composition, "score_bias")?,
    })
}

/// Writes a bundle into `dir` through the core's one writer (`airrec_core::writer`): every
/// array, the folded arrays (format v2 on), the external ids (v3), the usearch indexes, `extra_files`, then the manifest,
/// each fsynced. `airrec.bundle.write_bundle` validates and converts the arguments, stages the
/// directory and renames it into place; this function releases the GIL while writing.
#[pyfunction]
#[pyo3(signature = (dir, *, trie_parent, trie_phrases, item_path_offsets, item_path_leaves, node_vectors, item_vectors, item_domain, item_ext_ids, domains, path_slots, composition, config_json, index, meta_json, extra_files, created_by))]
#[allow(clippy::too_many_arguments)]
fn write_bundle(
    py: Python<'_>,
    dir: std::path::PathBuf,
    trie_parent: PyReadonlyArray1<'_, i32>,
    trie_phrases: Vec<String>,
    item_path_offsets: PyReadonlyArray1<'_, i64>,
    item_path_leaves: PyReadonlyArray1<'_, i32>,
    node_vectors: PyReadonlyArray2<'_, f32>,
    item_vectors: PyReadonlyArray2<'_, f32>,
    item_domain: PyReadonlyArray1<'_, u8>,
    item_ext_ids: Vec<String>,
    domains: Vec<String>,
    path_slots: usize,
    composition: &Bound<'_, PyDict>,
    config_json: &str,
    index: (usize, usize, usize),
    meta_json: &str,
    extra_files: Vec<(String, Vec<u8>)>,
    created_by: String,
) -> PyResult<()> {
    let contiguous = |a: &PyReadonlyArray2<'_, f32>, name: &str| -> PyResult<Vec<f32>> {
        a.as_slice().map(<[f32]>::to_vec).map_err(|_| input_error(format!("{name} must be C-contiguous")))
    };
    let dim = node_vectors.shape()[1];
    let composition = composition_from(composition, dim)?;
    let config: serde_json::Value =
        serde_json::from_str(config_json).map_err(|e| py_error("ConfigError", format!("config is not JSON: {e}")))?;
    let meta: serde_json::Value = serde_json::from_str(meta_json).map_err(|e| input_error(format!("meta is not JSON: {e}")))?;
    let arrays = airrec_core::writer::BundleArrays {
        trie_parent: slice(&trie_parent, "trie_parent")?.to_vec(),
        trie_phrases,
        item_path_offsets: slice(&item_path_offsets, "item_path_offsets")?.to_vec(),
        item_path_leaves: slice(&item_path_leaves, "item_path_leaves")?.to_vec(),
        node_vectors: contiguous(&node_vectors, "node_vectors")?,
        item_vectors: contiguous(&item_vectors, "item_vectors")?,
        item_domain: slice(&item_domain, "item_domain")?.to_vec(),
        item_ext_ids,
        domains,
        dim,
        path_slots,
        composition,
        config: airrec_core::EngineConfig::default().with_overrides(&config).py()?,
        index: airrec_core::writer::IndexSpec { connectivity: index.0, expansion_add: index.1, expansion_search: index.2 },
        meta,
        extra_files,
        created_by,
    };
    py.detach(|| arrays.write(&dir)).py()?;
    Ok(())
}

#[pymodule]
fn _airrec(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEngine>()?;
    m.add_class::<PyUserTree>()?;
    m.add_function(wrap_pyfunction!(validate_config, m)?)?;
    m.add_function(wrap_pyfunction!(config_limits, m)?)?;
    m.add_function(wrap_pyfunction!(write_bundle, m)?)?;
    m.add_function(wrap_pyfunction!(config_sha256, m)?)?;
    m.add("MAX_ABS_FOLDED", airrec_core::bundle::MAX_ABS_FOLDED)?;
    m.add("FOLDED_ARRAYS", airrec_core::compose::FOLDED_ARRAYS.to_vec())?;
    m.add("MAX_ABS_VALUE", airrec_core::bundle::MAX_ABS_VALUE)?;
    m.add("MAX_WIDTH", airrec_core::bundle::MAX_WIDTH)?;
    m.add("MAX_DEPTH", airrec_core::bundle::MAX_DEPTH)?;
    m.add("MAX_DOMAINS", airrec_core::bundle::MAX_DOMAINS)?;
    m.add("MAX_CHAIN_DEPTH", airrec_core::config::MAX_CHAIN_DEPTH_LIMIT)?;
    m.add("FORMAT_VERSION", airrec_core::FORMAT_VERSION)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
