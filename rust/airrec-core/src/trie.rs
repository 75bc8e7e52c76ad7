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
    pub(crate) fn new(parent: Array<i32>, depth: Array<u8>, phrase_offsets: Array<i64>, phrase_bytes: Array<u8>) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Roots 0 and 1; 2 and 4 under 0; 3 and 6 under 1; 5 under 2. Phrases are UTF-8.
    fn trie() -> Trie {
        let parent = vec![-1, -1, 0, 1, 0, 2, 1];
        let depth = vec![1u8, 1, 2, 2, 2, 3, 2];
        let phrases = ["sport", "küche", "laufen", "töpfe", "rad", "schuhe", "pfannen"];
        let mut offsets = vec![0i64];
        let mut bytes = Vec::new();
        for p in phrases {
            bytes.extend_from_slice(p.as_bytes());
            offsets.push(bytes.len() as i64);
        }
        let (n, nb) = (parent.len(), bytes.len());
        Trie::new(
            Array::from_vec(parent, vec![n]),
            Array::from_vec(depth, vec![n]),
            Array::from_vec(offsets, vec![n + 1]),
            Array::from_vec(bytes, vec![nb]),
        )
    }

    #[test]
    fn children_are_in_ascending_id_order() {
        let t = trie();
        assert_eq!(t.len(), 7);
        assert_eq!(t.children(0), &[2, 4]);
        assert_eq!(t.children(1), &[3, 6]);
        assert_eq!(t.children(2), &[5]);
        for leaf in [3, 4, 5, 6] {
            assert!(t.children(leaf).is_empty() && t.is_leaf(leaf));
        }
        assert!(!t.is_leaf(0) && !t.is_leaf(2));
        assert_eq!(t.n_leaves(), 4);
    }

    #[test]
    fn parents_and_depths() {
        let t = trie();
        assert_eq!(t.parent(0), None);
        assert_eq!(t.parent(1), None);
        assert_eq!(t.parent(5), Some(2));
        assert_eq!(t.parent(6), Some(1));
        assert_eq!((t.depth(0), t.depth(4), t.depth(5)), (1, 2, 3));
    }

    #[test]
    fn path_into_is_root_first_and_clears_the_buffer() {
        let t = trie();
        let mut out = vec![99, 98, 97, 96];
        t.path_into(5, &mut out);
        assert_eq!(out, vec![0, 2, 5]);
        t.path_into(1, &mut out);
        assert_eq!(out, vec![1]);
        t.path_into(6, &mut out);
        assert_eq!(out, vec![1, 6]);
    }

    #[test]
    fn phrases_and_path_text() {
        let t = trie();
        assert_eq!(t.phrase(1), "küche");
        assert_eq!(t.phrase(3), "töpfe");
        assert_eq!(t.path_text(5), "sport > laufen > schuhe");
        assert_eq!(t.path_text(3), "küche > töpfe");
        assert_eq!(t.path_text(0), "sport");
    }
}
