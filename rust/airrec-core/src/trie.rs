//! The global intent trie: every intent phrase the LLM produced, merged by shared prefix.

use crate::npy::Array;

/// Nodes are ids `0..n` in topological order (`parent[n] < n`); roots have depth 1.
#[derive(Debug)]
pub struct Trie {
    pub(crate) parent: Array<i32>,
    pub(crate) depth: Array<u8>,
    phrase_offsets: Array<i64>,
    phrase_bytes: Array<u8>,
    /// Children CSR, derived at load time (ascending node id within a row).
    child_offsets: Vec<u32>,
    children: Vec<u32>,
}

impl Trie {
    /// Builds the trie from arrays that the bundle loader has already validated.
    pub(crate) fn new(
        parent: Array<i32>,
        depth: Array<u8>,
        phrase_offsets: Array<i64>,
        phrase_bytes: Array<u8>,
    ) -> Self {
        let n = parent.len();
        let mut counts = vec![0u32; n + 1];
        for &p in parent.iter() {
            if p >= 0 {
                counts[p as usize + 1] += 1;
            }
        }
        for i in 0..n {
            counts[i + 1] += counts[i];
        }
        let child_offsets = counts.clone();
        let mut fill = counts;
        let mut children = vec![0u32; child_offsets[n] as usize];
        // Node ids increase, so each row is filled in ascending order.
        for (node, &p) in parent.iter().enumerate() {
            if p >= 0 {
                let slot = &mut fill[p as usize];
                children[*slot as usize] = node as u32;
                *slot += 1;
            }
        }
        Trie { parent, depth, phrase_offsets, phrase_bytes, child_offsets, children }
    }

    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    #[inline]
    pub fn parent(&self, node: u32) -> Option<u32> {
        let p = self.parent[node as usize];
        (p >= 0).then_some(p as u32)
    }

    #[inline]
    pub fn depth(&self, node: u32) -> u8 {
        self.depth[node as usize]
    }

    pub fn children(&self, node: u32) -> &[u32] {
        let (a, b) = (self.child_offsets[node as usize], self.child_offsets[node as usize + 1]);
        &self.children[a as usize..b as usize]
    }

    pub fn is_leaf(&self, node: u32) -> bool {
        self.children(node).is_empty()
    }

    /// The node's phrase (validated as UTF-8 at load time).
    pub fn phrase(&self, node: u32) -> &str {
        let (a, b) = (self.phrase_offsets[node as usize], self.phrase_offsets[node as usize + 1]);
        std::str::from_utf8(&self.phrase_bytes[a as usize..b as usize]).unwrap_or("")
    }

    /// Root-to-node path, written into `out` (cleared first).
    pub fn path_into(&self, node: u32, out: &mut Vec<u32>) {
        out.clear();
        let mut cur = Some(node);
        while let Some(n) = cur {
            out.push(n);
            cur = self.parent(n);
        }
        out.reverse();
    }

    /// `root > ... > node` as text.
    pub fn path_text(&self, node: u32) -> String {
        let mut path = Vec::new();
        self.path_into(node, &mut path);
        path.iter().map(|&n| self.phrase(n)).collect::<Vec<_>>().join(" > ")
    }

    /// Number of leaves (nodes without children).
    pub fn n_leaves(&self) -> usize {
        (0..self.len() as u32).filter(|&n| self.is_leaf(n)).count()
    }
}
