//! The online engine: a loaded bundle plus a configuration, answering requests.
//!
//! An `Engine` is immutable and `Sync`: load it once, call it from many threads. A request is a
//! [`UserTree`] (built from events, updated incrementally) and candidates; batch calls take
//! CSR-packed histories and run users in parallel with rayon.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rayon::prelude::*;

use crate::bundle::{Bundle, LoadOptions};
use crate::compose::{attend, CandidateView, ComposeScratch, Composer, Slot, SlotRow};
use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::explain::{ChainExplanation, EvidenceExplanation, Explanation};
#[cfg(target_arch = "x86_64")]
use crate::kernels::Avx2;
use crate::kernels::{Portable, Simd};
use crate::retrieve::{walk, TreeView, WalkScratch};
use crate::tree::{Event, TreeParams, UserTree};

/// How many candidates ahead the request loop prefetches candidate rows.
const PREFETCH_AHEAD: usize = 2;

static NEXT_BUNDLE_ID: AtomicU64 = AtomicU64::new(1);

/// Candidates of one request: item ids of the bundle, or raw vectors of unseen items.
#[derive(Clone, Copy, Debug)]
pub enum Candidates<'a> {
    Items(&'a [u32]),
    /// Row-major `[C, dim]`, L2-normalised by the caller.
    Vectors(&'a [f32]),
}

impl Candidates<'_> {
    pub fn len(&self, dim: usize) -> usize {
        match self {
            Candidates::Items(c) => c.len(),
            Candidates::Vectors(v) => v.len() / dim,
        }
    }
}

/// Chains (global node ids, root first) and evidence (event indices) chosen for a candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub chains: Vec<Vec<u32>>,
    pub evidence: Vec<u32>,
}

/// Per-thread reusable buffers.
#[derive(Default)]
pub struct Scratch {
    view: TreeView,
    walk: WalkScratch,
    compose: ComposeScratch,
    /// The current candidate's attention slots (reused: no allocation per request).
    slots: Vec<Slot>,
    /// The slot of each local tree node and of each event, made once per request
    /// ([`Engine::prepare_view`]): a candidate's slots are copies of these.
    node_slots: Vec<Slot>,
    event_slots: Vec<Slot>,
    row: Vec<f32>,
}

impl Scratch {
    /// The last walk's attention slots, in slot order: its chain nodes, then its evidence
    /// (the walk and the slot tables are of the same tree: both are made per request, after
    /// [`Engine::prepare_view`] for it).
    pub(crate) fn walked_slots(&self) -> impl Iterator<Item = &Slot> {
        let nodes = self.walk.chain_nodes.iter().map(|&li| &self.node_slots[li as usize]);
        nodes.chain(self.walk.evidence.iter().map(|&(e, _)| &self.event_slots[e as usize]))
    }
}

/// Trees up to this many nodes and events use the calling thread's reusable [`Scratch`] in
/// the allocating entry points; a larger one gets a scratch of its own, so no thread keeps the
/// buffers of one huge history (its f64 event vectors alone are `events * dim * 8` bytes).
const THREAD_SCRATCH_MAX_TREE: usize = 4096;

thread_local! {
    static THREAD_SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's reusable scratch (a fresh one per call regrew every buffer on
/// every request: ~0.15 M instructions of allocation and copying per reference request through
/// Python), or with a fresh one for a large tree or a nested call.
fn with_thread_scratch<T>(tree: &UserTree, f: impl FnOnce(&mut Scratch) -> T) -> T {
    if tree.nodes().len() > THREAD_SCRATCH_MAX_TREE || tree.n_events() > THREAD_SCRATCH_MAX_TREE {
        return f(&mut Scratch::default());
    }
    THREAD_SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// Users' histories packed as CSR: events of user `u` are `offsets[u]..offsets[u+1]`.
#[derive(Debug, Clone, Copy)]
pub struct Histories<'a> {
    pub offsets: &'a [i64],
    pub items: &'a [i64],
    pub behaviours: &'a [i64],
    pub timestamps: &'a [f64],
}

impl Histories<'_> {
    pub fn n_users(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
}

/// What to compute per candidate.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Scores,
    Vectors,
}

#[derive(Clone)]
pub struct Engine {
    bundle: Arc<Bundle>,
    config: EngineConfig,
    bundle_id: u64,
    /// Nearest leaves of every item (CSR), for items whose cached paths are empty.
    cold_offsets: Arc<Vec<u32>>,
    cold_leaves: Arc<Vec<u32>>,
    /// Composition weights replacing the bundle's ([`Engine::with_composition`]: training
    /// validates with the weights it is learning), folded over the bundle's vectors.
    composer: Option<Arc<Composer>>,
    /// The AVX2 kernels when this CPU has them; every request, slot fill, context and
    /// explanation runs with the same choice ([`Engine::with_kernels`]).
    #[cfg(target_arch = "x86_64")]
    avx2: Option<Avx2>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("bundle", &self.bundle.path).field("dims", &self.bundle.dims).finish()
    }
}

/// Work that runs with one kernel set. [`Engine::with_kernels`] picks the set once per engine,
/// so scores, training slots, contexts and explanations follow the same arithmetic (an
/// explanation shows exactly the chains and evidence that produced the score).
pub(crate) trait KernelTask {
    type Output;
    fn run<K: Simd>(self, kern: K) -> Self::Output;
}

/// Runs `task` with the AVX2 kernels, compiled with AVX2 and FMA enabled so they inline.
///
/// # Safety
/// None beyond the `kern` token: an [`Avx2`] exists only on a CPU with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<T: KernelTask>(kern: Avx2, task: T) -> T::Output {
    task.run(kern)
}

impl Engine {
    /// Loads a bundle; `overrides` (a JSON object) replaces any of the bundle's config values.
    pub fn load(path: impl AsRef<Path>, options: &LoadOptions, overrides: Option<&serde_json::Value>) -> Result<Engine> {
        let bundle = Arc::new(Bundle::load(path, options)?);
        let config = match overrides {
            Some(o) => bundle.config.with_overrides(o)?,
            None => bundle.config.clone(),
        };
        Engine::from_bundle(bundle, config)
    }

    /// An engine over an already loaded bundle (cheap: shares the bundle).
    pub fn from_bundle(bundle: Arc<Bundle>, config: EngineConfig) -> Result<Engine> {
        config.validate()?;
        let p = bundle.dims.path_slots;
        if p > 1 && p != config.n_behaviours() {
            return Err(Error::Config(format!(
                "the bundle stores paths per behaviour ({p} slots) but behaviour_weights names {} behaviours",
                config.n_behaviours()
            )));
        }
        let (cold_offsets, cold_leaves) = cold_start_table(&bundle, config.cold_start_paths)?;
        Ok(Engine {
            bundle,
            config,
            bundle_id: NEXT_BUNDLE_ID.fetch_add(1, Ordering::Relaxed),
            cold_offsets: Arc::new(cold_offsets),
            cold_leaves: Arc::new(cold_leaves),
            composer: None,
            #[cfg(target_arch = "x86_64")]
            avx2: Avx2::detect(),
        })
    }

    /// The same bundle with some config values replaced. Trees built by `self` remain usable
    /// only if the tree-building values (behaviour weights, decay, evidence cap) are unchanged.
    pub fn with_overrides(&self, overrides: &serde_json::Value) -> Result<Engine> {
        let config = self.config.with_overrides(overrides)?;
        let mut e = Engine::from_bundle(self.bundle.clone(), config)?;
        e.bundle_id = self.bundle_id;
        e.composer = self.composer.clone();
        Ok(e)
    }

    /// The same bundle and config with other composition and score-head weights, folded over
    /// the bundle's node and item vectors now (no file is written; a trainer validates the
    /// weights it is learning through the engine this way, with the arithmetic that serves
    /// them). The weights must fit the bundle's dims and pass
    /// [`crate::writer::Composition::check_values`]. Trees built by `self` stay usable.
    pub fn with_composition(&self, composition: &crate::writer::Composition) -> Result<Engine> {
        let d = &self.bundle.dims;
        let c = composition;
        if (c.dim, c.attn_dim, c.n_heads, c.max_depth) != (d.dim, d.attn_dim, d.n_heads, d.max_depth) {
            return Err(Error::Input(format!(
                "composition (dim, attn_dim, n_heads, max_depth) ({}, {}, {}, {}) does not fit the bundle's ({}, {}, {}, {})",
                c.dim, c.attn_dim, c.n_heads, c.max_depth, d.dim, d.attn_dim, d.n_heads, d.max_depth
            )));
        }
        c.check_values()?;
        let b = &self.bundle;
        let composer = Composer::fold(c.weights(), &b.node_vectors, &b.item_vectors, d.dim, d.n_heads);
        let mut e = self.clone_shallow();
        e.composer = Some(Arc::new(composer));
        Ok(e)
    }

    /// A copy sharing every table (bundle, cold-start leaves, composer) and the bundle id.
    fn clone_shallow(&self) -> Engine {
        Engine {
            bundle: self.bundle.clone(),
            config: self.config.clone(),
            bundle_id: self.bundle_id,
            cold_offsets: self.cold_offsets.clone(),
            cold_leaves: self.cold_leaves.clone(),
            composer: self.composer.clone(),
            #[cfg(target_arch = "x86_64")]
            avx2: self.avx2,
        }
    }

    /// The composition in use: [`Engine::with_composition`]'s, else the bundle's.
    #[inline(always)]
    pub fn composer(&self) -> &Composer {
        self.composer.as_deref().unwrap_or(&self.bundle.composer)
    }

    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn dim(&self) -> usize {
        self.bundle.dims.dim
    }

    fn tree_params(&self) -> TreeParams {
        TreeParams {
            behaviour_weights: self.config.behaviour_weights.clone(),
            decay_lambda: self.config.decay_lambda,
            node_evidence_cap: self.config.node_evidence_cap,
            bundle_id: self.bundle_id,
        }
    }

    /// An empty tree for this engine.
    pub fn new_tree(&self) -> UserTree {
        UserTree::empty(self.tree_params())
    }

    /// Checks a raw item id.
    #[inline]
    pub fn item_id(&self, item: i64) -> Result<u32> {
        let n = self.bundle.n_items();
        if item < 0 || item as u64 >= n as u64 {
            return Err(Error::UnknownItem { item, n_items: n });
        }
        Ok(item as u32)
    }

    /// The internal id of the item whose external id is `id`.
    pub fn item_by_external_id(&self, id: &str) -> Result<u32> {
        self.bundle
            .external_ids
            .find(id)
            .ok_or_else(|| Error::UnknownExternalItem { id: crate::item_ids::quoted(id), n_items: self.bundle.n_items() })
    }

    /// The external id of a raw item id (checked like [`Engine::item_id`]).
    pub fn external_id(&self, item: i64) -> Result<&str> {
        Ok(self.bundle.external_ids.get(self.item_id(item)?))
    }

    fn event(&self, item: i64, behaviour: i64, timestamp: f64) -> Result<Event> {
        let item = self.item_id(item)?;
        let nb = self.config.n_behaviours();
        if behaviour < 0 || behaviour as u64 >= nb as u64 {
            return Err(Error::UnknownBehaviour { behaviour, n_behaviours: nb });
        }
        if !timestamp.is_finite() {
            return Err(Error::Input(format!("timestamp must be finite, got {timestamp}")));
        }
        Ok(Event { item, behaviour: behaviour as u32, timestamp })
    }

    /// Leaves of an event's cached paths, falling back to cold start.
    fn event_leaves(&self, e: &Event, out: &mut Vec<u32>) {
        out.clear();
        let p = self.bundle.dims.path_slots;
        let slot = e.item as usize * p + if p > 1 { e.behaviour as usize } else { 0 };
        let row = self.bundle.path_leaves(slot);
        if row.is_empty() {
            let (a, b) = (self.cold_offsets[e.item as usize], self.cold_offsets[e.item as usize + 1]);
            out.extend_from_slice(&self.cold_leaves[a as usize..b as usize]);
        } else {
            out.extend(row.iter().map(|&l| l as u32));
        }
    }

    /// Builds a user's tree from parallel arrays of events (validated first, all or nothing).
    pub fn build_tree(&self, items: &[i64], behaviours: &[i64], timestamps: &[f64]) -> Result<UserTree> {
        if items.len() != behaviours.len() || items.len() != timestamps.len() {
            return Err(Error::Input(format!(
                "items, behaviours and timestamps must have the same length, got {}, {}, {}",
                items.len(),
                behaviours.len(),
                timestamps.len()
            )));
        }
        let events = (0..items.len()).map(|k| self.event(items[k], behaviours[k], timestamps[k])).collect::<Result<Vec<_>>>()?;
        let mut tree = self.new_tree();
        tree.reserve(events.len());
        if let Some(t_max) = events.iter().map(|e| e.timestamp).reduce(f64::max) {
            tree.set_reference_time(t_max);
        }
        let mut leaves = Vec::new();
        for e in events {
            self.event_leaves(&e, &mut leaves);
            tree.push(&self.bundle.trie, e, &leaves);
        }
        Ok(tree)
    }

    /// Adds one event to a tree (incremental update).
    pub fn add_event(&self, tree: &mut UserTree, item: i64, behaviour: i64, timestamp: f64) -> Result<()> {
        self.check_tree(tree)?;
        let e = self.event(item, behaviour, timestamp)?;
        tree.check_event(&e)?;
        let mut leaves = Vec::new();
        self.event_leaves(&e, &mut leaves);
        tree.push(&self.bundle.trie, e, &leaves);
        Ok(())
    }

    /// A tree is usable only with the bundle and tree parameters it was built with.
    pub fn check_tree(&self, tree: &UserTree) -> Result<()> {
        if tree.params != self.tree_params() {
            return Err(Error::Input(
                "this tree was built by an engine with another bundle or other tree settings \
                 (behaviour_weights, decay_lambda, node_evidence_cap); rebuild it with this engine"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Checks candidate ids or vectors.
    pub fn check_candidates(&self, c: &Candidates<'_>) -> Result<()> {
        match c {
            Candidates::Items(ids) => {
                let n = self.bundle.n_items();
                if let Some(&bad) = ids.iter().find(|&&i| i as usize >= n) {
                    return Err(Error::UnknownItem { item: bad as i64, n_items: n });
                }
            }
            Candidates::Vectors(v) => {
                if v.len() % self.dim() != 0 {
                    return Err(Error::Input(format!("candidate vectors must have {} columns", self.dim())));
                }
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(Error::Input("candidate vectors contain NaN or infinity".into()));
                }
            }
        }
        Ok(())
    }

    /// The candidate row (see [`CandidateView`]) of candidate `k`: precomputed for bundle
    /// items, computed into `buf` for raw vectors.
    #[inline(always)]
    fn candidate_row<'a>(&'a self, cands: &Candidates<'a>, k: usize, buf: &'a mut Vec<f32>) -> &'a [f32] {
        let c = self.composer();
        match cands {
            Candidates::Items(ids) => c.item_row(ids[k]),
            Candidates::Vectors(v) => {
                let d = self.dim();
                buf.resize(c.candidate_row_len(), 0.0);
                c.fill_candidate_row(&v[k * d..(k + 1) * d], buf);
                buf
            }
        }
    }

    /// Runs `task` with this engine's kernels: AVX2/FMA where the CPU has them, else portable.
    #[inline(always)]
    pub(crate) fn with_kernels<T: KernelTask>(&self, task: T) -> T::Output {
        #[cfg(target_arch = "x86_64")]
        if let Some(kern) = self.avx2 {
            // SAFETY: `run_avx2` needs AVX2 and FMA, which the existence of `kern` proves.
            return unsafe { run_avx2(kern, task) };
        }
        task.run(Portable)
    }

    /// Prepares `s` for walking `tree` (per-request, before any candidate).
    pub(crate) fn prepare_view(&self, tree: &UserTree, s: &mut Scratch) {
        let b = &*self.bundle;
        s.view.prepare(tree, &self.config, self.dim(), |n| b.node_vector(n), |i| b.item_vector(i));
        debug_assert_eq!((s.view.node_ln_w.len(), s.view.event_ln_w.len()), (tree.nodes().len(), tree.n_events()));
        // Slot types: a node's depth minus one (1-based depths), evidence after the deepest.
        s.node_slots.clear();
        s.node_slots.extend(tree.nodes().iter().zip(&s.view.node_ln_w).map(|(n, &ln_w)| Slot {
            row: SlotRow::Node(n.node),
            ty: b.trie.depth(n.node) - 1,
            ln_w: ln_w as f32,
        }));
        let evidence_ty = b.dims.max_depth as u8;
        s.event_slots.clear();
        s.event_slots.extend(tree.events().iter().zip(&s.view.event_ln_w).map(|(e, &ln_w)| Slot {
            row: SlotRow::Item(e.item),
            ty: evidence_ty,
            ln_w: ln_w as f32,
        }));
    }

    /// Walks the tree for one candidate (results in `s.walk`).
    #[inline(always)]
    pub(crate) fn walk_for<K: Simd>(&self, kern: K, tree: &UserTree, cand: &CandidateView<'_>, s: &mut Scratch) {
        walk(kern, tree, &s.view, &self.config, cand.x, &mut s.walk);
    }

    /// Composes the walked candidate; returns its score and writes its intent vector into `u`
    /// when given.
    #[inline(always)]
    fn compose<K: Simd>(&self, kern: K, cand: &CandidateView<'_>, s: &mut Scratch, u: Option<&mut [f32]>) -> f32 {
        // Taken out of `s` while `attend` borrows the rest of it mutably.
        let mut slots = std::mem::take(&mut s.slots);
        slots.clear();
        slots.extend(s.walked_slots().copied());
        let score = attend(kern, self.composer(), cand, &slots, &mut s.compose, u);
        s.slots = slots;
        score
    }

    #[inline(always)]
    fn request_impl<K: Simd>(&self, kern: K, tree: &UserTree, cands: Candidates<'_>, want: Want, out: &mut [f32], s: &mut Scratch) {
        let d = self.dim();
        let c = self.composer();
        self.prepare_view(tree, s);
        let mut buf = std::mem::take(&mut s.row);
        let n = cands.len(d);
        if let Candidates::Items(ids) = &cands {
            for &id in ids.iter().take(PREFETCH_AHEAD) {
                crate::kernels::prefetch(c.item_row(id));
            }
        }
        for k in 0..n {
            // Candidate rows are scattered over tens of MB (TLB and cache misses): start loading
            // a later one now. Two ahead measured better than one (noisy: 280-296 vs ~327 us).
            if let (Candidates::Items(ids), true) = (&cands, k + PREFETCH_AHEAD < n) {
                crate::kernels::prefetch(c.item_row(ids[k + PREFETCH_AHEAD]));
            }
            let cand = c.view(self.candidate_row(&cands, k, &mut buf));
            self.walk_for(kern, tree, &cand, s);
            // One composition call site (the attention bodies are large and inlined).
            let (score, u) = match want {
                Want::Scores => (Some(&mut out[k]), None),
                Want::Vectors => (None, Some(&mut out[k * d..(k + 1) * d])),
            };
            let v = self.compose(kern, &cand, s, u);
            if let Some(score) = score {
                *score = v;
            }
        }
        s.row = buf;
    }

    /// Runs one request with this engine's kernels.
    fn request(&self, tree: &UserTree, cands: Candidates<'_>, want: Want, out: &mut [f32], s: &mut Scratch) {
        struct Request<'e, 'a> {
            engine: &'e Engine,
            tree: &'a UserTree,
            cands: Candidates<'a>,
            want: Want,
            out: &'a mut [f32],
            s: &'a mut Scratch,
        }
        impl KernelTask for Request<'_, '_> {
            type Output = ();
            #[inline(always)]
            fn run<K: Simd>(self, kern: K) {
                self.engine.request_impl(kern, self.tree, self.cands, self.want, self.out, self.s)
            }
        }
        self.with_kernels(Request { engine: self, tree, cands, want, out, s })
    }

    fn checked_request(&self, tree: &UserTree, cands: Candidates<'_>, want: Want, out: &mut [f32], s: &mut Scratch) -> Result<()> {
        self.check_tree(tree)?;
        self.check_candidates(&cands)?;
        let per = if want == Want::Vectors { self.dim() } else { 1 };
        if out.len() != cands.len(self.dim()) * per {
            return Err(Error::Input(format!("output buffer has {} values, expected {}", out.len(), cands.len(self.dim()) * per)));
        }
        self.request(tree, cands, want, out, s);
        Ok(())
    }

    /// Scores of candidates for a user (built-in score head).
    pub fn scores_into(&self, tree: &UserTree, cands: Candidates<'_>, out: &mut [f32], s: &mut Scratch) -> Result<()> {
        self.checked_request(tree, cands, Want::Scores, out, s)
    }

    /// Target-aware intent vectors `[C, dim]` of candidates for a user.
    pub fn intent_vectors_into(&self, tree: &UserTree, cands: Candidates<'_>, out: &mut [f32], s: &mut Scratch) -> Result<()> {
        self.checked_request(tree, cands, Want::Vectors, out, s)
    }

    pub fn scores(&self, tree: &UserTree, cands: Candidates<'_>) -> Result<Vec<f32>> {
        let mut out = vec![0.0; cands.len(self.dim())];
        with_thread_scratch(tree, |s| self.scores_into(tree, cands, &mut out, s))?;
        Ok(out)
    }

    pub fn intent_vectors(&self, tree: &UserTree, cands: Candidates<'_>) -> Result<Vec<f32>> {
        let mut out = vec![0.0; cands.len(self.dim()) * self.dim()];
        with_thread_scratch(tree, |s| self.intent_vectors_into(tree, cands, &mut out, s))?;
        Ok(out)
    }

    /// The chains and evidence chosen for each candidate.
    pub fn contexts(&self, tree: &UserTree, cands: Candidates<'_>) -> Result<Vec<Context>> {
        self.check_tree(tree)?;
        self.check_candidates(&cands)?;
        struct Contexts<'e, 'a> {
            engine: &'e Engine,
            tree: &'a UserTree,
            cands: Candidates<'a>,
        }
        impl KernelTask for Contexts<'_, '_> {
            type Output = Vec<Context>;
            fn run<K: Simd>(self, kern: K) -> Vec<Context> {
                let (e, tree, cands) = (self.engine, self.tree, self.cands);
                let mut s = Scratch::default();
                e.prepare_view(tree, &mut s);
                let mut local = Vec::new();
                let mut buf = Vec::new();
                (0..cands.len(e.dim()))
                    .map(|k| {
                        let cand = e.composer().view(e.candidate_row(&cands, k, &mut buf));
                        e.walk_for(kern, tree, &cand, &mut s);
                        let chains = (0..s.walk.n_chains())
                            .map(|c| {
                                s.walk.chain(c, &mut local);
                                local.iter().map(|&li| tree.nodes[li as usize].node).collect()
                            })
                            .collect();
                        Context { chains, evidence: s.walk.evidence.iter().map(|&(e, _)| e).collect() }
                    })
                    .collect()
            }
        }
        Ok(self.with_kernels(Contexts { engine: self, tree, cands }))
    }

    /// Everything behind one candidate's score: chains, evidence, attention.
    pub fn explain(&self, tree: &UserTree, cands: Candidates<'_>) -> Result<Explanation> {
        self.check_tree(tree)?;
        self.check_candidates(&cands)?;
        if cands.len(self.dim()) != 1 {
            return Err(Error::Input("explain takes exactly one candidate".into()));
        }
        /// The walk and composition of the candidate, and its evidence similarities, with the
        /// engine's kernels (those that score it).
        struct Walked {
            s: Scratch,
            score: f32,
            u: Vec<f32>,
            evidence_similarity: Vec<f64>,
            /// Per chain node, in slot order.
            node_similarity: Vec<f64>,
        }
        struct Explain<'e, 'a> {
            engine: &'e Engine,
            tree: &'a UserTree,
            cands: Candidates<'a>,
        }
        impl KernelTask for Explain<'_, '_> {
            type Output = Walked;
            fn run<K: Simd>(self, kern: K) -> Walked {
                let (e, tree) = (self.engine, self.tree);
                let mut s = Scratch::default();
                e.prepare_view(tree, &mut s);
                let mut buf = Vec::new();
                let cand = e.composer().view(e.candidate_row(&self.cands, 0, &mut buf));
                e.walk_for(kern, tree, &cand, &mut s);
                let mut u = vec![0.0f32; e.dim()];
                let score = e.compose(kern, &cand, &mut s, Some(&mut u));
                // The similarities the walk selected the evidence with, not recomputed; the chain
                // nodes' with the walk's kernel and rows (the walk keeps only their scores).
                let evidence_similarity = s.walk.evidence.iter().map(|&(ev, _)| s.walk.evidence_similarity(ev)).collect();
                let node_similarity = s.walk.chain_nodes.iter().map(|&li| s.walk.node_similarity(kern, tree, &s.view, li)).collect();
                Walked { s, score, u, evidence_similarity, node_similarity }
            }
        }
        let b = &*self.bundle;
        let Walked { s, score, u, evidence_similarity, node_similarity } = self.with_kernels(Explain { engine: self, tree, cands });
        let h = b.dims.n_heads;
        let att = &s.compose.attention;
        let mean_att = |slot: usize| att[slot * h..(slot + 1) * h].iter().sum::<f32>() / h as f32;
        let slot_of_node = |li: u32| s.walk.chain_nodes.iter().position(|&n| n == li).expect("chain node has a slot");
        let mut local = Vec::new();
        let chains = (0..s.walk.n_chains())
            .map(|k| {
                let score = s.walk.chain(k, &mut local);
                ChainExplanation {
                    nodes: local.iter().map(|&li| tree.nodes[li as usize].node).collect(),
                    phrases: local.iter().map(|&li| b.trie.phrase(tree.nodes[li as usize].node).to_string()).collect(),
                    weights: local.iter().map(|&li| tree.weight(li)).collect(),
                    similarities: local.iter().map(|&li| node_similarity[slot_of_node(li)]).collect(),
                    attention: local.iter().map(|&li| mean_att(slot_of_node(li))).collect(),
                    score,
                }
            })
            .collect();
        let n_nodes = s.walk.chain_nodes.len();
        let evidence = s
            .walk
            .evidence
            .iter()
            .enumerate()
            .map(|(j, &(e, ev_score))| {
                let ev = tree.events()[e as usize];
                EvidenceExplanation {
                    event: e,
                    item: ev.item,
                    behaviour: ev.behaviour,
                    timestamp: ev.timestamp,
                    weight: tree.event_weight(e),
                    similarity: evidence_similarity[j],
                    score: ev_score,
                    attention: mean_att(n_nodes + j),
                }
            })
            .collect();
        let null_attention = mean_att(n_nodes + s.walk.evidence.len());
        Ok(Explanation { score, intent_vector: u, chains, evidence, null_attention })
    }

    /// Batch of users: builds each tree and scores its row of `candidates` (`[U, C]`), in
    /// parallel. Inputs are validated up front, so an error names the first bad user.
    pub fn scores_batch(&self, h: Histories<'_>, candidates: &[u32], n_cands: usize, out: &mut [f32]) -> Result<()> {
        self.batch(h, candidates, n_cands, Want::Scores, out)
    }

    /// Batch of users: intent vectors `[U, C, dim]`.
    pub fn intent_vectors_batch(&self, h: Histories<'_>, candidates: &[u32], n_cands: usize, out: &mut [f32]) -> Result<()> {
        self.batch(h, candidates, n_cands, Want::Vectors, out)
    }

    pub(crate) fn check_histories(&self, h: &Histories<'_>) -> Result<()> {
        let e = h.items.len();
        if h.behaviours.len() != e || h.timestamps.len() != e {
            return Err(Error::Input(format!(
                "items, behaviours and timestamps must have the same length, got {e}, {}, {}",
                h.behaviours.len(),
                h.timestamps.len()
            )));
        }
        if h.offsets.is_empty() || h.offsets[0] != 0 || *h.offsets.last().unwrap() != e as i64 || h.offsets.windows(2).any(|w| w[1] < w[0])
        {
            return Err(Error::Input(format!("offsets must be non-decreasing from 0 to {e} (the number of events)")));
        }
        for k in 0..e {
            self.event(h.items[k], h.behaviours[k], h.timestamps[k]).map_err(|err| match err {
                Error::Input(m) => Error::Input(format!("event {k}: {m}")),
                other => other,
            })?;
        }
        Ok(())
    }

    fn batch(&self, h: Histories<'_>, candidates: &[u32], n_cands: usize, want: Want, out: &mut [f32]) -> Result<()> {
        self.check_histories(&h)?;
        let u = h.n_users();
        if candidates.len() != u * n_cands {
            return Err(Error::Input(format!("candidates must be [{u}, {n_cands}], got {} values", candidates.len())));
        }
        self.check_candidates(&Candidates::Items(candidates))?;
        let per_user = n_cands * if want == Want::Vectors { self.dim() } else { 1 };
        if out.len() != u * per_user {
            return Err(Error::Input(format!("output buffer has {} values, expected {}", out.len(), u * per_user)));
        }
        if per_user == 0 {
            return Ok(());
        }
        out.par_chunks_mut(per_user).enumerate().try_for_each_init(Scratch::default, |s, (user, o)| {
            let (a, b) = (h.offsets[user] as usize, h.offsets[user + 1] as usize);
            let tree = self.build_tree(&h.items[a..b], &h.behaviours[a..b], &h.timestamps[a..b])?;
            let cands = Candidates::Items(&candidates[user * n_cands..(user + 1) * n_cands]);
            self.request(&tree, cands, want, o, s);
            Ok(())
        })
    }

    /// The user's profile vector: leaf retrieval vectors weighted by `w̃`, L2-normalised.
    pub fn profile_vector(&self, tree: &UserTree) -> Option<Vec<f32>> {
        let d = self.dim();
        let mut p = vec![0.0f64; d];
        for li in tree.leaves() {
            let w = tree.weight(li);
            for (pi, v) in p.iter_mut().zip(self.bundle.node_vector(tree.nodes[li as usize].node)) {
                *pi += w * *v as f64;
            }
        }
        let norm = p.iter().map(|v| v * v).sum::<f64>().sqrt();
        (norm > 0.0).then(|| p.iter().map(|v| (v / norm) as f32).collect())
    }

    /// Top-k items of `domain` for a user: the profile vector's `pool` nearest items, re-scored
    /// target-aware when `rerank` (best score first), else in index order (best similarity).
    pub fn retrieve(&self, tree: &UserTree, domain: usize, k: usize, pool: usize, rerank: bool) -> Result<(Vec<u32>, Vec<f32>)> {
        self.check_tree(tree)?;
        let nd = self.bundle.dims.n_domains;
        if domain >= nd {
            return Err(Error::Input(format!("domain {domain} outside 0..{nd}")));
        }
        let Some(p) = self.profile_vector(tree) else {
            return Ok((Vec::new(), Vec::new()));
        };
        let (keys, sims) = self.bundle.item_indexes[domain].search(&p, pool.max(k))?;
        let ids: Vec<u32> = keys.iter().map(|&key| key as u32).collect();
        if !rerank {
            let n = k.min(ids.len());
            return Ok((ids[..n].to_vec(), sims[..n].to_vec()));
        }
        let scores = self.scores(tree, Candidates::Items(&ids))?;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(ids[a].cmp(&ids[b])));
        order.truncate(k);
        Ok((order.iter().map(|&j| ids[j]).collect(), order.iter().map(|&j| scores[j]).collect()))
    }

    /// The `k` trie leaves nearest to `vector` (cosine), best first.
    pub fn nearest_intents(&self, vector: &[f32], k: usize) -> Result<(Vec<u32>, Vec<f32>)> {
        if vector.len() != self.dim() {
            return Err(Error::Input(format!("vector has {} values, expected {}", vector.len(), self.dim())));
        }
        if vector.iter().any(|v| !v.is_finite()) {
            return Err(Error::Input("vector contains NaN or infinity".into()));
        }
        let (keys, sims) = self.bundle.leaf_index.search(vector, k)?;
        Ok((keys.iter().map(|&key| key as u32).collect(), sims))
    }
}

/// For every item with an empty path slot, its `k` nearest leaves (computed once, in parallel).
fn cold_start_table(bundle: &Bundle, k: usize) -> Result<(Vec<u32>, Vec<u32>)> {
    let n = bundle.n_items();
    let p = bundle.dims.path_slots;
    let rows: Vec<Vec<u32>> = (0..n)
        .into_par_iter()
        .map(|item| {
            let needs = k > 0 && (0..p).any(|b| bundle.path_leaves(item * p + b).is_empty());
            if !needs {
                return Ok(Vec::new());
            }
            let (keys, _) = bundle.leaf_index.search(bundle.item_vector(item as u32), k)?;
            Ok(keys.iter().map(|&key| key as u32).collect())
        })
        .collect::<Result<_>>()?;
    let mut offsets = Vec::with_capacity(n + 1);
    let mut leaves = Vec::new();
    offsets.push(0u32);
    for r in rows {
        leaves.extend(r);
        offsets.push(leaves.len() as u32);
    }
    Ok((offsets, leaves))
}
