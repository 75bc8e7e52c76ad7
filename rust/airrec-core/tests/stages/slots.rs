//! Training slots: `slots_batch` hands out exactly what a scoring request composes, and
//! `tree_slots_batch` the tree's nodes by weight.

use airrec_core::testing::{synthetic_candidates, synthetic_histories};
use airrec_core::{Candidates, Engine, Error, Histories, SlotsOut, TreeSlotsOut, PAD_TYPE};

use crate::common::small;

fn slots(e: &Engine, h: Histories<'_>, cands: &[u32], nc: usize) -> (Vec<i32>, Vec<u8>, Vec<f32>) {
    let n = h.n_users() * nc * e.slot_width();
    let (mut ids, mut types, mut ln_w) = (vec![7i32; n], vec![7u8; n], vec![7f32; n]);
    e.slots_batch(h, cands, nc, SlotsOut { ids: &mut ids, types: &mut types, ln_w: &mut ln_w }).unwrap();
    (ids, types, ln_w)
}

#[test]
fn slots_are_the_chains_and_evidence_a_request_composes() {
    let e = small();
    let h = synthetic_histories(6, 30, e.bundle().n_items(), e.config().n_behaviours(), 21);
    let nc = 9;
    let cands = synthetic_candidates(h.n_users(), nc, e.bundle().n_items(), 22);
    let (ids, types, ln_w) = slots(e, h.as_histories(), &cands, nc);
    let w = e.slot_width();
    let depth = e.bundle().dims.max_depth as u8;
    let mut saw_evidence = false;
    for u in 0..h.n_users() {
        let (items, behaviours, ts) = h.user(u);
        let tree = e.build_tree(items, behaviours, ts).unwrap();
        let ctx = e.contexts(&tree, Candidates::Items(&cands[u * nc..(u + 1) * nc])).unwrap();
        let (nodes, weights) = (tree.nodes(), (0..tree.nodes().len() as u32).map(|i| tree.weight(i)).collect::<Vec<_>>());
        for (k, c) in ctx.iter().enumerate() {
            let row = (u * nc + k) * w;
            let mut expected: Vec<(i32, u8, f32)> = Vec::new();
            for chain in &c.chains {
                for &n in chain {
                    if !expected.iter().any(|s| s.0 == n as i32 && s.1 < depth) {
                        let li = nodes.iter().position(|x| x.node == n).unwrap();
                        expected.push((n as i32, e.bundle().trie.depth(n) - 1, weights[li].ln() as f32));
                    }
                }
            }
            for &ev in &c.evidence {
                let event = &tree.events()[ev as usize];
                expected.push((event.item as i32, depth, tree.event_weight(ev).ln() as f32));
                saw_evidence = true;
            }
            for (j, (id, ty, lw)) in expected.iter().enumerate() {
                assert_eq!((ids[row + j], types[row + j]), (*id, *ty), "user {u} cand {k} slot {j}");
                assert!((ln_w[row + j] - lw).abs() <= 1e-5 * (1.0 + lw.abs()), "user {u} cand {k} slot {j}: {} vs {lw}", ln_w[row + j]);
            }
            for j in expected.len()..w {
                assert_eq!((ids[row + j], types[row + j], ln_w[row + j]), (-1, PAD_TYPE, 0.0));
            }
        }
    }
    assert!(saw_evidence);
}

#[test]
fn slots_errors_are_typed() {
    let e = small();
    let h = synthetic_histories(2, 5, e.bundle().n_items(), 1, 3);
    let cands = synthetic_candidates(2, 3, e.bundle().n_items(), 4);
    let n = 2 * 3 * e.slot_width();
    let (mut ids, mut types, mut ln_w) = (vec![0i32; n], vec![0u8; n], vec![0f32; n - 1]);
    let err = e.slots_batch(h.as_histories(), &cands, 3, SlotsOut { ids: &mut ids, types: &mut types, ln_w: &mut ln_w });
    assert!(matches!(err, Err(Error::Input(_))));
    let mut ln_w = vec![0f32; n];
    let bad = vec![e.bundle().n_items() as u32; 6];
    let err = e.slots_batch(h.as_histories(), &bad, 3, SlotsOut { ids: &mut ids, types: &mut types, ln_w: &mut ln_w });
    assert!(err.is_err());
    let err = e.slots_batch(h.as_histories(), &cands[..5], 3, SlotsOut { ids: &mut ids, types: &mut types, ln_w: &mut ln_w });
    assert!(matches!(err, Err(Error::Input(_))));
}

#[test]
fn tree_slots_are_nodes_by_weight() {
    let e = small();
    let h = synthetic_histories(4, 12, e.bundle().n_items(), 1, 8);
    let width = 5;
    let (mut ids, mut ln_w) = (vec![0i32; 4 * width], vec![0f32; 4 * width]);
    e.tree_slots_batch(h.as_histories(), width, TreeSlotsOut { ids: &mut ids, ln_w: &mut ln_w }).unwrap();
    for u in 0..4 {
        let (items, behaviours, ts) = h.user(u);
        let tree = e.build_tree(items, behaviours, ts).unwrap();
        let mut nodes: Vec<(f64, i32)> =
            (0..tree.nodes().len() as u32).map(|i| (tree.weight(i), tree.nodes()[i as usize].node as i32)).collect();
        nodes.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for j in 0..width {
            match nodes.get(j) {
                Some(&(w, n)) => {
                    assert_eq!(ids[u * width + j], n);
                    assert!((ln_w[u * width + j] - w.ln() as f32).abs() < 1e-5);
                }
                None => assert_eq!(ids[u * width + j], -1),
            }
        }
    }
}
