//! Target-aware retrieval (docs/online-path.md §3): a beam walk down the user's tree guided by
//! the candidate, then evidence pruning under the chosen chains.
//!
//! Chains live in a per-candidate arena as `(last node, previous chain)` links, so extending a
//! chain and sorting the beam move 24-byte records; node lists are only materialised for the
//! chains finally selected, or to break an exact score tie.

use std::cmp::Ordering;

use crate::config::{EngineConfig, MAX_CHAIN_DEPTH_LIMIT};
use crate::kernels::Simd;
use crate::tree::UserTree;

const NO_PREV: u32 = u32::MAX;
/// `TreeView::shared_children` of a node whose children are not in the shared block.
const NOT_SHARED: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Link {
    sum: f64,
    /// `sum / len`, the chain's score (kept so that comparisons do not divide).
    score: f64,
    last: u32,
    prev: u32,
    len: u32,
}

impl Link {
    #[inline(always)]
    fn new(sum: f64, last: u32, prev: u32, len: u32) -> Self {
        Link { sum, score: sum / len as f64, last, prev, len }
    }

    #[inline(always)]
    fn score(&self) -> f64 {
        self.score
    }

    /// The score as an [`order_key`], for the beam's comparisons.
    #[inline(always)]
    fn key(&self) -> i64 {
        order_key(self.score)
    }
}

/// An integer that orders like [`f64::total_cmp`] orders `x` (the same bit transform), made
/// once per chain so that the beam's many comparisons are single integer compares.
#[inline(always)]
fn order_key(x: f64) -> i64 {
    let bits = x.to_bits() as i64;
    bits ^ ((((bits >> 63) as u64) >> 1) as i64)
}

/// A beam entry: the chain's [`order_key`] and its arena index.
type Entry = (i64, u32);

/// Per-request values that do not depend on the candidate (computed once per tree).
#[derive(Default)]
pub struct TreeView {
    /// `walk_alpha * ln(w̃)` per local node.
    walk_bias: Vec<f64>,
    /// `ln(w̃)` per local node, for the attention bias.
    pub node_ln_w: Vec<f64>,
    /// `ln(c_e / W)` per event.
    pub event_ln_w: Vec<f64>,
    /// Retrieval vectors in f64, grouped by parent: the children of local node `i` are rows
    /// `child_start[i]..child_start[i+1]` of `child_vecs` (in tree-children order), the roots
    /// are `root_vecs`. A beam expansion is then one blocked matrix-vector product.
    child_vecs: Vec<f64>,
    child_start: Vec<u32>,
    /// The children's local indices in the same order (`child_start` delimits them too), so
    /// the walk reads one flat array instead of each node's own list.
    child_ids: Vec<u32>,
    /// `walk_bias` of each child in the same order: the child loop reads it beside the
    /// similarities instead of looking it up through the child's index.
    child_bias: Vec<f64>,
    root_vecs: Vec<f64>,
    /// The rows every candidate's walk scores, one after another, when every root enters the
    /// first beam (no more roots than `beam_width`, chains deeper than one): the roots, then
    /// the children of each root in `tree.roots` order; empty otherwise. A candidate scores
    /// them in one blocked matrix-vector product (`dots` gives a row the same arithmetic in any
    /// block, so these are the similarities the per-expansion products gave) instead of one
    /// short product per root.
    shared_vecs: Vec<f64>,
    /// Per local node: the row in `shared_vecs` where its children start, or [`NOT_SHARED`]
    /// (only roots have one, and only when their children are shared).
    shared_children: Vec<u32>,
    /// Item vectors of the tree's events in f64, row `e` for event `e`: evidence similarities
    /// then read them without converting the same vectors again for every candidate.
    event_vecs: Vec<f64>,
    dim: usize,
}

impl TreeView {
    pub fn prepare<'a>(
        &mut self,
        tree: &UserTree,
        cfg: &EngineConfig,
        dim: usize,
        node_vector: impl Fn(u32) -> &'a [f32],
        item_vector: impl Fn(u32) -> &'a [f32],
    ) {
        self.dim = dim;
        self.event_vecs.clear();
        for e in tree.events() {
            self.event_vecs.extend(item_vector(e.item).iter().map(|&v| v as f64));
        }
        let nodes = tree.nodes();
        let push = |out: &mut Vec<f64>, i: u32| out.extend(node_vector(nodes[i as usize].node).iter().map(|&v| v as f64));
        self.root_vecs.clear();
        for &r in &tree.roots {
            push(&mut self.root_vecs, r);
        }
        let n = tree.nodes().len() as u32;
        self.node_ln_w.clear();
        self.node_ln_w.extend((0..n).map(|i| tree.weight(i).ln()));
        self.walk_bias.clear();
        self.walk_bias.extend(self.node_ln_w.iter().map(|l| cfg.walk_alpha * l));
        self.child_vecs.clear();
        self.child_start.clear();
        self.child_ids.clear();
        self.child_bias.clear();
        let mut rows = 0u32;
        for node in nodes {
            self.child_start.push(rows);
            // Children by walk bias, highest first: the beam test meets likely entrants early,
            // so fewer children are inserted only to be pushed out (the kept chains do not
            // depend on the order: the beam's order is total).
            let start = self.child_ids.len();
            self.child_ids.extend_from_slice(&node.children);
            let bias = &self.walk_bias;
            self.child_ids[start..].sort_unstable_by(|&x, &y| bias[y as usize].total_cmp(&bias[x as usize]).then(x.cmp(&y)));
            for &ch in &self.child_ids[start..] {
                push(&mut self.child_vecs, ch);
                self.child_bias.push(bias[ch as usize]);
            }
            rows += node.children.len() as u32;
        }
        self.child_start.push(rows);
        // The shared block: roots, then their children, if every root is expanded (else the
        // walk scores `root_vecs` alone and the block stays empty).
        self.shared_vecs.clear();
        self.shared_children.clear();
        self.shared_children.resize(n as usize, NOT_SHARED);
        if tree.roots.len() <= cfg.beam_width && cfg.max_chain_depth > 1 {
            self.shared_vecs.extend_from_slice(&self.root_vecs);
            let mut row = tree.roots.len() as u32;
            for &r in &tree.roots {
                let (a, b) = (self.child_start[r as usize] as usize, self.child_start[r as usize + 1] as usize);
                self.shared_children[r as usize] = row;
                self.shared_vecs.extend_from_slice(&self.child_vecs[a * dim..b * dim]);
                row += (b - a) as u32;
            }
        }
        self.event_ln_w.clear();
        self.event_ln_w.extend((0..tree.n_events() as u32).map(|e| tree.event_weight(e).ln()));
    }

    /// Local node `i`'s retrieval vector in f64, the row its walk similarity is computed from:
    /// its `root_vecs` row, or its row among its parent's children in `child_vecs`. Found by
    /// a search (explanations only), so requests do not build an index for it.
    fn node_vector(&self, tree: &UserTree, i: u32) -> &[f64] {
        let d = self.dim;
        let (rows, r) = match tree.nodes()[i as usize].parent {
            None => (&self.root_vecs, tree.roots.iter().position(|&r| r == i)),
            Some(p) => {
                let (a, b) = (self.child_start[p as usize] as usize, self.child_start[p as usize + 1] as usize);
                (&self.child_vecs, self.child_ids[a..b].iter().position(|&c| c == i).map(|k| a + k))
            }
        };
        let r = r.expect("a tree node is a root or a child of its parent");
        &rows[r * d..(r + 1) * d]
    }
}

/// Reusable buffers for one candidate's walk, and its results.
#[derive(Default)]
pub struct WalkScratch {
    arena: Vec<Link>,
    frontier: Vec<Entry>,
    next: Vec<Entry>,
    complete: Vec<Entry>,
    candidate_events: Vec<u32>,
    x64: Vec<f64>,
    /// Similarities of `TreeView::shared_vecs`' rows (the roots first), or of the roots alone
    /// when the block is empty.
    shared_sims: Vec<f64>,
    child_sims: Vec<f64>,
    evidence_sims: Vec<f64>,
    /// Selected chains `(score key, arena index)`, best first.
    selected: Vec<Entry>,
    /// The selected chains' nodes (root first) and lengths, while `chain_nodes` is made.
    paths: Vec<([u32; MAX_CHAIN_DEPTH_LIMIT], usize)>,
    /// Chain nodes in slot order (chain by chain, root to leaf, each once), local indices.
    pub chain_nodes: Vec<u32>,
    /// Selected evidence `(event, score)`, best first.
    pub evidence: Vec<(u32, f64)>,
}

impl WalkScratch {
    /// Similarity of local node `i` to the walked candidate: the arithmetic the walk used (same
    /// kernel, same row), recomputed because the walk does not store the similarity of every
    /// node it scores (only chain nodes are ever asked for).
    pub fn node_similarity<K: Simd>(&self, kern: K, tree: &UserTree, view: &TreeView, i: u32) -> f64 {
        let mut sim = [0.0];
        kern.gemv_f64(view.node_vector(tree, i), view.dim, &self.x64, &mut sim);
        sim[0]
    }

    /// Similarity of event `e` to the candidate, if it was an evidence candidate of the walk.
    pub fn evidence_similarity(&self, e: u32) -> f64 {
        match self.candidate_events.binary_search(&e) {
            Ok(k) => self.evidence_sims[k],
            Err(_) => f64::NAN,
        }
    }

    /// Number of selected chains.
    pub fn n_chains(&self) -> usize {
        self.selected.len()
    }

    /// Local node indices of selected chain `k`, root first, and its score.
    pub fn chain(&self, k: usize, out: &mut Vec<u32>) -> f64 {
        let idx = self.selected[k].1;
        let mut buf = [0u32; MAX_CHAIN_DEPTH_LIMIT];
        let len = self.materialise(idx, &mut buf);
        out.clear();
        out.extend_from_slice(&buf[..len]);
        self.arena[idx as usize].score()
    }

    /// Writes the chain's local nodes root-first into `buf`, returns its length.
    #[inline]
    fn materialise(&self, mut idx: u32, buf: &mut [u32; MAX_CHAIN_DEPTH_LIMIT]) -> usize {
        let len = self.arena[idx as usize].len as usize;
        for slot in (0..len).rev() {
            let l = self.arena[idx as usize];
            buf[slot] = l.last;
            idx = l.prev;
        }
        len
    }
}

/// Exact score ties: global node ids, lexicographically ascending (rare, so out of line).
#[cold]
#[inline(never)]
fn tie_order(tree: &UserTree, s: &WalkScratch, a: u32, b: u32) -> Ordering {
    let (mut ba, mut bb) = ([0u32; MAX_CHAIN_DEPTH_LIMIT], [0u32; MAX_CHAIN_DEPTH_LIMIT]);
    let na = s.materialise(a, &mut ba);
    let nb = s.materialise(b, &mut bb);
    let ga = ba[..na].iter().map(|&i| tree.nodes()[i as usize].node);
    let gb = bb[..nb].iter().map(|&i| tree.nodes()[i as usize].node);
    ga.cmp(gb)
}

/// The beam order of `(score key, arena index)` entries: higher score first (the keys order
/// like `f64::total_cmp`), exact ties by [`tie_order`] (a total order, so a top-k does not
/// depend on the order entries arrive in).
#[inline(always)]
fn ranks_before(tree: &UserTree, s: &WalkScratch, a: &Entry, b: &Entry) -> bool {
    match b.0.cmp(&a.0) {
        Ordering::Equal => tie_order(tree, s, a.1, b.1) == Ordering::Less,
        o => o == Ordering::Less,
    }
}

/// Keeps the best `k` of `list` (`(score key, arena index)` pairs), sorted: higher score first,
/// exact ties by [`tie_order`]. Beams are small, so this is one insertion pass that compares a
/// candidate with the current worst kept entry before doing anything else.
#[inline(always)]
fn keep_top(tree: &UserTree, s: &WalkScratch, list: &mut Vec<Entry>, k: usize) {
    let before = |a: &Entry, b: &Entry| ranks_before(tree, s, a, b);
    let mut kept = 0;
    for i in 0..list.len() {
        let item = list[i];
        if kept == k && !before(&item, &list[kept - 1]) {
            continue;
        }
        // Insert `item` into the sorted prefix `list[..kept]`, dropping the worst when full.
        let mut pos = if kept < k { kept } else { kept - 1 };
        while pos > 0 && before(&item, &list[pos - 1]) {
            list[pos] = list[pos - 1];
            pos -= 1;
        }
        list[pos] = item;
        if kept < k {
            kept += 1;
        }
    }
    list.truncate(kept);
}

/// Inserts `item` into `list`, the sorted best (at most `k`) entries, in the order of
/// [`keep_top`]; the worst is dropped when full. The caller has already skipped items that are
/// strictly worse than a full list's worst, so this runs only for likely entrants.
#[inline(always)]
fn insert_top(tree: &UserTree, s: &WalkScratch, list: &mut Vec<Entry>, item: Entry, k: usize) {
    let before = |a: &Entry, b: &Entry| ranks_before(tree, s, a, b);
    if list.len() == k {
        if !before(&item, &list[k - 1]) {
            return;
        }
        list.pop();
    }
    let mut pos = list.len();
    list.push(item);
    while pos > 0 && before(&item, &list[pos - 1]) {
        list[pos] = list[pos - 1];
        pos -= 1;
    }
    list[pos] = item;
}

/// The first `n` values of a reusable buffer that only grows: per-candidate outputs are written
/// into it without resizing (and zero-filling) it for every expansion.
#[inline(always)]
fn grown(buf: &mut Vec<f64>, n: usize) -> &mut [f64] {
    if buf.len() < n {
        buf.resize(n, 0.0);
    }
    &mut buf[..n]
}

/// Walks `tree` for a candidate with retrieval vector `x`; fills the selected chains,
/// `chain_nodes` and `evidence` of `s`.
#[inline(always)]
pub fn walk<K: Simd>(kern: K, tree: &UserTree, view: &TreeView, cfg: &EngineConfig, x: &[f32], s: &mut WalkScratch) {
    let nodes = tree.nodes();
    let d = view.dim;
    // Converted in place (no per-candidate clear and re-extend: the length stays `d`).
    s.x64.resize(d, 0.0);
    for (o, &v) in s.x64.iter_mut().zip(x) {
        *o = v as f64;
    }
    // The rows every candidate scores (the roots, often their children too): one blocked pass.
    let shared = if view.shared_vecs.is_empty() { &view.root_vecs } else { &view.shared_vecs };
    s.shared_sims.resize(shared.len() / d.max(1), 0.0);
    kern.gemv_f64(shared, d, &s.x64, &mut s.shared_sims);
    s.arena.clear();
    s.frontier.clear();
    s.complete.clear();

    let mut frontier = std::mem::take(&mut s.frontier);
    let mut next = std::mem::take(&mut s.next);
    for (k, &r) in tree.roots.iter().enumerate() {
        let v = s.shared_sims[k] + view.walk_bias[r as usize];
        let link = Link::new(v, r, NO_PREV, 1);
        frontier.push((link.key(), s.arena.len() as u32));
        s.arena.push(link);
    }
    keep_top(tree, s, &mut frontier, cfg.beam_width);
    while !frontier.is_empty() {
        next.clear();
        // The score of a full `next`'s worst entry (-inf until it is full): a float compare
        // against it rejects most children before their order key is made. Only a child
        // strictly below it in float order is rejected here, and such a child is below it in
        // the total order too; everything else goes through the exact test.
        let mut worst = f64::NEG_INFINITY;
        for &(_, ci) in &frontier {
            let chain = s.arena[ci as usize];
            let (a, b) = (view.child_start[chain.last as usize] as usize, view.child_start[chain.last as usize + 1] as usize);
            if a == b || chain.len as usize == cfg.max_chain_depth {
                s.complete.push((chain.key(), ci));
            } else {
                let (children, bias) = (&view.child_ids[a..b], &view.child_bias[a..b]);
                let shared = view.shared_children[chain.last as usize];
                let sims = if shared != NOT_SHARED {
                    &s.shared_sims[shared as usize..shared as usize + children.len()]
                } else {
                    kern.gemv_f64(&view.child_vecs[a * d..b * d], d, &s.x64, grown(&mut s.child_sims, b - a));
                    &s.child_sims[..children.len()]
                };
                for k in 0..children.len() {
                    let ch = children[k];
                    let v = sims[k] + bias[k];
                    let link = Link::new(chain.sum + v, ch, ci, chain.len + 1);
                    if link.score < worst {
                        continue;
                    }
                    // The beam is kept sorted as children arrive: a child strictly below a full
                    // beam's worst cannot enter, and is never stored (most children, on wide
                    // levels). The kept set is the same as sorting all children: the order
                    // (score, then `tie_order`) is total, so the top-k does not depend on
                    // arrival order.
                    let key = link.key();
                    if next.len() == cfg.beam_width && key < next[cfg.beam_width - 1].0 {
                        continue;
                    }
                    let idx = s.arena.len() as u32;
                    s.arena.push(link);
                    insert_top(tree, s, &mut next, (key, idx), cfg.beam_width);
                    if next.len() == cfg.beam_width {
                        worst = s.arena[next[cfg.beam_width - 1].1 as usize].score;
                    }
                }
            }
        }
        std::mem::swap(&mut frontier, &mut next);
    }
    s.frontier = frontier;
    s.next = next;

    let mut selected = std::mem::take(&mut s.selected);
    selected.clear();
    selected.extend_from_slice(&s.complete);
    keep_top(tree, s, &mut selected, cfg.max_chains);
    s.selected = selected;

    // Each chain's nodes not already in an earlier chain. A node's position in a chain is its
    // depth, and the same node means the same ancestors, so a chain's nodes already taken are
    // exactly its longest common prefix with an earlier chain (no search of `chain_nodes`).
    s.chain_nodes.clear();
    let mut paths = std::mem::take(&mut s.paths);
    paths.clear();
    for k in 0..s.selected.len() {
        let mut buf = [0u32; MAX_CHAIN_DEPTH_LIMIT];
        let len = s.materialise(s.selected[k].1, &mut buf);
        let taken = paths
            .iter()
            .map(|(p, n): &([u32; MAX_CHAIN_DEPTH_LIMIT], usize)| p[..len.min(*n)].iter().zip(&buf).take_while(|(a, b)| a == b).count())
            .max()
            .unwrap_or(0);
        s.chain_nodes.extend_from_slice(&buf[taken..len]);
        paths.push((buf, len));
    }
    s.paths = paths;

    // Evidence: events under the chains' last nodes, pruned by weight, similarity, recency.
    s.candidate_events.clear();
    for k in 0..s.selected.len() {
        let last = s.arena[s.selected[k].1 as usize].last;
        s.candidate_events.extend_from_slice(&nodes[last as usize].evidence);
    }
    s.candidate_events.sort_unstable();
    s.candidate_events.dedup();
    if let Some(max_age) = cfg.evidence_max_age {
        s.candidate_events.retain(|&e| tree.event_age(e) <= max_age);
    }
    // One gathered matrix-vector product over the kept events' f64 vectors (converted once per
    // request in `TreeView::prepare`; the conversion is exact, so these are the f32 vectors'
    // dot products accumulated in f64, as before).
    let n_ev = s.candidate_events.len();
    kern.gather_gemv_f64(&view.event_vecs, d, &s.candidate_events, &s.x64, grown(&mut s.evidence_sims, n_ev));
    s.evidence.clear();
    for (&e, &sim) in s.candidate_events.iter().zip(&s.evidence_sims) {
        s.evidence.push((e, view.event_ln_w[e as usize] + cfg.evidence_alpha * sim));
    }
    s.evidence.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    s.evidence.truncate(cfg.max_evidence);
}
