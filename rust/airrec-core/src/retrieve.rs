//! Target-aware retrieval (docs/online-path.md §3): a beam walk down the user's tree guided by
//! the candidate, then evidence pruning under the chosen chains.

use std::cmp::Ordering;

use crate::config::{EngineConfig, MAX_CHAIN_DEPTH_LIMIT};
use crate::kernels::dot_f64;
use crate::tree::UserTree;

/// A chain under construction: local node indices root→leaf and the sum of node scores.
#[derive(Clone, Copy, Debug)]
pub struct ChainBuf {
    nodes: [u32; MAX_CHAIN_DEPTH_LIMIT],
    len: u8,
    sum: f64,
}

impl ChainBuf {
    fn root(node: u32, score: f64) -> Self {
        let mut nodes = [0; MAX_CHAIN_DEPTH_LIMIT];
        nodes[0] = node;
        ChainBuf { nodes, len: 1, sum: score }
    }

    fn extended(&self, node: u32, score: f64) -> Self {
        let mut c = *self;
        c.nodes[c.len as usize] = node;
        c.len += 1;
        c.sum += score;
        c
    }

    /// Local node indices, root first.
    pub fn nodes(&self) -> &[u32] {
        &self.nodes[..self.len as usize]
    }

    pub fn last(&self) -> u32 {
        self.nodes[self.len as usize - 1]
    }

    /// Mean node score: the chain's score.
    pub fn score(&self) -> f64 {
        self.sum / self.len as f64
    }
}

/// Reusable buffers for one candidate's walk.
#[derive(Default)]
pub struct WalkScratch {
    frontier: Vec<ChainBuf>,
    next: Vec<ChainBuf>,
    complete: Vec<ChainBuf>,
    /// Node score per local node, computed lazily (NaN: not yet).
    node_score: Vec<f64>,
    node_sim: Vec<f64>,
    candidate_events: Vec<u32>,
    /// The selected chains, best first.
    pub chains: Vec<ChainBuf>,
    /// Chain nodes in slot order (chain by chain, root to leaf, each once).
    pub chain_nodes: Vec<u32>,
    /// Selected evidence `(event, score)`, best first.
    pub evidence: Vec<(u32, f64)>,
}

impl WalkScratch {
    /// Similarity of local node `i` to the candidate, if the walk computed it.
    pub fn node_similarity(&self, i: u32) -> f64 {
        self.node_sim[i as usize]
    }

    pub fn node_score(&self, i: u32) -> f64 {
        self.node_score[i as usize]
    }
}

/// Compares chains: higher score first, then global node ids lexicographically ascending.
#[inline]
fn chain_order(tree: &UserTree, a: &ChainBuf, b: &ChainBuf) -> Ordering {
    b.score().total_cmp(&a.score()).then_with(|| {
        let ga = a.nodes().iter().map(|&i| tree.nodes[i as usize].node);
        let gb = b.nodes().iter().map(|&i| tree.nodes[i as usize].node);
        ga.cmp(gb)
    })
}

#[inline]
fn keep_top(tree: &UserTree, chains: &mut Vec<ChainBuf>, k: usize) {
    chains.sort_unstable_by(|a, b| chain_order(tree, a, b));
    chains.truncate(k);
}

/// Walks `tree` for a candidate with retrieval vector `x`, fills `s.chains`, `s.chain_nodes`
/// and `s.evidence`. `node_vectors(n)` / `item_vectors(i)` give retrieval vectors.
#[inline(always)]
pub fn walk<'a>(
    tree: &UserTree,
    cfg: &EngineConfig,
    x: &[f32],
    node_vector: impl Fn(u32) -> &'a [f32],
    item_vector: impl Fn(u32) -> &'a [f32],
    s: &mut WalkScratch,
) {
    s.node_score.clear();
    s.node_score.resize(tree.nodes.len(), f64::NAN);
    s.node_sim.clear();
    s.node_sim.resize(tree.nodes.len(), f64::NAN);
    let score = |i: u32, s: &mut WalkScratch| -> f64 {
        let sim = dot_f64(node_vector(tree.nodes[i as usize].node), x);
        let v = sim + cfg.walk_alpha * tree.weight(i).ln();
        s.node_sim[i as usize] = sim;
        s.node_score[i as usize] = v;
        v
    };

    s.frontier.clear();
    s.complete.clear();
    for &r in &tree.roots {
        let v = score(r, s);
        s.frontier.push(ChainBuf::root(r, v));
    }
    keep_top(tree, &mut s.frontier, cfg.beam_width);
    while !s.frontier.is_empty() {
        s.next.clear();
        for fi in 0..s.frontier.len() {
            let chain = s.frontier[fi];
            let children = &tree.nodes[chain.last() as usize].children;
            if children.is_empty() || chain.len as usize == cfg.max_chain_depth {
                s.complete.push(chain);
            } else {
                for &ch in children {
                    let v = score(ch, s);
                    s.next.push(chain.extended(ch, v));
                }
            }
        }
        std::mem::swap(&mut s.frontier, &mut s.next);
        keep_top(tree, &mut s.frontier, cfg.beam_width);
    }
    s.chains.clear();
    s.chains.extend_from_slice(&s.complete);
    keep_top(tree, &mut s.chains, cfg.max_chains);

    s.chain_nodes.clear();
    for c in &s.chains {
        for &n in c.nodes() {
            if !s.chain_nodes.contains(&n) {
                s.chain_nodes.push(n);
            }
        }
    }

    // Evidence: events under the chains' last nodes, pruned by weight, similarity, recency.
    s.candidate_events.clear();
    for c in &s.chains {
        s.candidate_events.extend_from_slice(&tree.nodes[c.last() as usize].evidence);
    }
    s.candidate_events.sort_unstable();
    s.candidate_events.dedup();
    s.evidence.clear();
    for &e in &s.candidate_events {
        if let Some(max_age) = cfg.evidence_max_age {
            if tree.event_age(e) > max_age {
                continue;
            }
        }
        let sim = dot_f64(item_vector(tree.events()[e as usize].item), x);
        s.evidence.push((e, tree.event_weight(e).ln() + cfg.evidence_alpha * sim));
    }
    s.evidence.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    s.evidence.truncate(cfg.max_evidence);
}
