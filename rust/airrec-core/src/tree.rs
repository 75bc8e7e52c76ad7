//! The user intent tree (docs/online-path.md §2): the cached intent paths of a user's events,
//! merged by shared prefix, with decayed behaviour weights and bounded evidence per node.

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::trie::Trie;

/// One behaviour event: the user did `behaviour` on `item` at `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    pub item: u32,
    pub behaviour: u32,
    pub timestamp: f64,
}

/// A node of a user's tree.
#[derive(Debug, Clone)]
pub struct TreeNode {
    /// Global trie node id.
    pub node: u32,
    /// Local index of the parent, if any.
    pub parent: Option<u32>,
    /// Decayed behaviour mass reaching this node, in units of the tree's reference time.
    pub(crate) mass: f64,
    /// Local indices of children, in ascending global node id. Inline up to four (most nodes
    /// have fewer), so building a tree does not allocate twice per node.
    pub children: SmallVec<[u32; 4]>,
    /// Event indices of the strongest evidence, unordered, at most `node_evidence_cap`; inline
    /// up to four, like `children`.
    pub evidence: SmallVec<[u32; 4]>,
}

/// Parameters fixed when a tree is built; an engine checks them before using a tree.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeParams {
    pub behaviour_weights: Vec<f64>,
    pub decay_lambda: f64,
    pub node_evidence_cap: usize,
    /// Identity of the bundle whose trie the node ids refer to.
    pub bundle_id: u64,
}

/// `exp(-lambda * age)`, exactly 1 without decay: `0 * inf` would be NaN when two finite
/// timestamps are so far apart that their difference overflows.
#[inline]
pub fn decay(lambda: f64, age: f64) -> f64 {
    if lambda == 0.0 {
        1.0
    } else {
        (-lambda * age).exp()
    }
}

/// How far (in units of `1/lambda`) the latest event may get ahead of the base time the masses
/// are stored in before they are all re-expressed at a new base: `exp(100)` ≈ 3e43 keeps every
/// stored mass (behaviour weights ≤ 1e6, any number of events) far inside `f64`, and makes the
/// O(events + nodes) renormalisation rare, so an add is O(1) amortised.
const RENORMALISE_AT: f64 = 100.0;

/// Smallest normalised weight fed to `ln`: keeps `ln(w)` finite when old events decay to zero.
pub const MIN_WEIGHT: f64 = 1e-30;

/// A user's weighted intent tree. Built from events at once or updated one event at a time;
/// both give the same tree (up to rounding).
#[derive(Debug, Clone)]
pub struct UserTree {
    pub(crate) params: TreeParams,
    events: Vec<Event>,
    /// Contribution `c_e` of each event, in units of `t_base`: `w_b · exp(-λ (t_base − t_e))`
    /// (≥ 1 for events after `t_base`). Masses and the total are in the same units, so every
    /// normalised weight is unchanged by the choice of base; only [`UserTree::total_mass`]
    /// converts to units of `t_ref`.
    contrib: Vec<f64>,
    t_ref: f64,
    t_base: f64,
    total: f64,
    pub(crate) nodes: Vec<TreeNode>,
    local: FxHashMap<u32, u32>,
    pub(crate) roots: Vec<u32>,
    /// Scratch for an event's node set.
    scratch: Vec<u32>,
    path: Vec<u32>,
}

impl UserTree {
    pub(crate) fn empty(params: TreeParams) -> Self {
        UserTree {
            params,
            events: Vec::new(),
            contrib: Vec::new(),
            t_ref: f64::NEG_INFINITY,
            t_base: f64::NEG_INFINITY,
            total: 0.0,
            nodes: Vec::new(),
            local: FxHashMap::default(),
            roots: Vec::new(),
            scratch: Vec::new(),
            path: Vec::new(),
        }
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn nodes(&self) -> &[TreeNode] {
        &self.nodes
    }

    pub fn n_events(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Largest timestamp seen (`-inf` for an empty tree).
    pub fn t_ref(&self) -> f64 {
        self.t_ref
    }

    /// Total decayed behaviour mass `W`, in units of `t_ref` (the latest event has weight
    /// `behaviour_weights[b]`).
    pub fn total_mass(&self) -> f64 {
        if self.events.is_empty() {
            return 0.0;
        }
        self.total * decay(self.params.decay_lambda, self.t_ref - self.t_base)
    }

    /// `w̃_n`: the share of the user's decayed behaviour mass that reaches local node `i`.
    #[inline]
    pub fn weight(&self, i: u32) -> f64 {
        (self.nodes[i as usize].mass / self.total).max(MIN_WEIGHT)
    }

    /// `c_e / W` for event `e`.
    #[inline]
    pub fn event_weight(&self, e: u32) -> f64 {
        (self.contrib[e as usize] / self.total).max(MIN_WEIGHT)
    }

    pub fn event_age(&self, e: u32) -> f64 {
        self.t_ref - self.events[e as usize].timestamp
    }

    /// Local index of a global node id, if the user's events reach it.
    pub fn local_index(&self, node: u32) -> Option<u32> {
        self.local.get(&node).copied()
    }

    /// Validates an event against the parameters (behaviour range, finite time).
    pub(crate) fn check_event(&self, e: &Event) -> Result<()> {
        let nb = self.params.behaviour_weights.len();
        if e.behaviour as usize >= nb {
            return Err(Error::UnknownBehaviour { behaviour: e.behaviour as i64, n_behaviours: nb });
        }
        if !e.timestamp.is_finite() {
            return Err(Error::Input(format!("timestamp must be finite, got {}", e.timestamp)));
        }
        Ok(())
    }

    /// Room for `n_events` more events and the nodes they are likely to add, so a batch build
    /// does not grow its arrays and node map step by step (a fifth of a 50-event build was
    /// reallocation). Nodes are guessed at four per event (three paths of depth three share
    /// most of their prefixes), at most 4,096: past that, growth is already amortised.
    pub(crate) fn reserve(&mut self, n_events: usize) {
        self.events.reserve(n_events);
        self.contrib.reserve(n_events);
        let nodes = n_events.saturating_mul(4).min(4096);
        self.nodes.reserve(nodes);
        self.local.reserve(nodes);
    }

    /// Fixes the reference time of an empty tree (a batch build uses the latest timestamp, so no
    /// mass is ever rescaled).
    pub(crate) fn set_reference_time(&mut self, t: f64) {
        debug_assert!(self.events.is_empty());
        self.t_ref = t;
        self.t_base = t;
    }

    /// Moves the reference time to `t` if it is later. Stored masses keep their base time
    /// unless the new latest event is so far ahead that they would grow too large; then all of
    /// them are re-expressed at base `t` (rare: see [`RENORMALISE_AT`]).
    fn advance_to(&mut self, t: f64) {
        if t <= self.t_ref {
            return;
        }
        self.t_ref = t;
        let lambda = self.params.decay_lambda;
        if !self.t_base.is_finite() {
            self.t_base = t;
        } else if lambda * (t - self.t_base) > RENORMALISE_AT {
            let f = decay(lambda, t - self.t_base);
            self.contrib.iter_mut().for_each(|c| *c *= f);
            self.nodes.iter_mut().for_each(|n| n.mass *= f);
            self.total *= f;
            self.t_base = t;
        }
    }

    /// Adds one event whose intent paths are given by their leaves. The caller has validated
    /// the event.
    pub(crate) fn push(&mut self, trie: &Trie, event: Event, leaves: &[u32]) {
        self.advance_to(event.timestamp);
        let bw = self.params.behaviour_weights[event.behaviour as usize];
        let c = bw * decay(self.params.decay_lambda, self.t_base - event.timestamp);
        let e = self.events.len() as u32;
        self.events.push(event);
        self.contrib.push(c);
        self.total += c;

        let mut set = std::mem::take(&mut self.scratch);
        let mut path = std::mem::take(&mut self.path);
        set.clear();
        for &leaf in leaves {
            trie.path_into(leaf, &mut path);
            let mut parent: Option<u32> = None;
            for &node in &path {
                let li = self.get_or_insert(node, parent);
                set.push(li);
                parent = Some(li);
            }
        }
        set.sort_unstable();
        set.dedup();
        for &li in &set {
            self.nodes[li as usize].mass += c;
            self.offer_evidence(li, e);
        }
        self.scratch = set;
        self.path = path;
    }

    fn get_or_insert(&mut self, node: u32, parent: Option<u32>) -> u32 {
        if let Some(&li) = self.local.get(&node) {
            return li;
        }
        let li = self.nodes.len() as u32;
        self.nodes.push(TreeNode { node, parent, mass: 0.0, children: SmallVec::new(), evidence: SmallVec::new() });
        self.local.insert(node, li);
        // Keep siblings in ascending global id; node ids are what ties break on.
        let siblings: &[u32] = match parent {
            Some(p) => &self.nodes[p as usize].children,
            None => &self.roots,
        };
        let pos = siblings.partition_point(|&s| self.nodes[s as usize].node < node);
        match parent {
            Some(p) => self.nodes[p as usize].children.insert(pos, li),
            None => self.roots.insert(pos, li),
        }
        li
    }

    /// Keeps the `node_evidence_cap` largest events by `(c_e, e)`.
    fn offer_evidence(&mut self, li: u32, e: u32) {
        let cap = self.params.node_evidence_cap;
        if cap == 0 {
            return;
        }
        let contrib = &self.contrib;
        let ev = &mut self.nodes[li as usize].evidence;
        if ev.len() < cap {
            ev.push(e);
            return;
        }
        let key = |x: u32| (contrib[x as usize], x);
        let (min_pos, &min_e) =
            ev.iter().enumerate().min_by(|a, b| key(*a.1).partial_cmp(&key(*b.1)).unwrap_or(std::cmp::Ordering::Equal)).expect("cap > 0");
        if key(e) > key(min_e) {
            ev[min_pos] = e;
        }
    }

    /// Local leaves of the tree (nodes without tree children).
    pub fn leaves(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.nodes.len() as u32).filter(|&i| self.nodes[i as usize].children.is_empty())
    }
}
