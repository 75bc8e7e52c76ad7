//! The user intent tree (docs/online-path.md §2).

use airrec_core::testing::synthetic_histories;
use airrec_core::{Engine, Error, UserTree};
use serde_json::json;

use crate::common::{close, engine_with, small};

/// The bundle fixture of `bundle::base` (nodes 0..6: 0 > 2 > 4, 0 > 3, 1 > 5; items 0 -> [4],
/// 1 -> [3], 2 -> [5, 4], 3 -> no paths) plus item 4 -> [4, 3] (paths sharing root 0) and
/// item 5 -> [4, 2] (the path to 2 is a prefix of the path to 4).
fn fixture() -> airrec_core::testing::Fixture {
    let mut f = crate::bundle::base();
    f.item(&[1.0, 0.2, 0.2, 0.2], 0, &[4, 3]);
    f.item(&[1.0, 0.3, 0.0, 0.3], 0, &[4, 2]);
    f
}

/// Global node id -> `w̃` of the tree.
fn weight_of(t: &UserTree, node: u32) -> f64 {
    t.weight(t.local_index(node).unwrap_or_else(|| panic!("node {node} not in the tree")))
}

fn evidence_of(t: &UserTree, node: u32) -> Vec<u32> {
    let mut ev = t.nodes()[t.local_index(node).unwrap() as usize].evidence.to_vec();
    ev.sort_unstable();
    ev
}

fn global_children(t: &UserTree, node: u32) -> Vec<u32> {
    let li = t.local_index(node).unwrap() as usize;
    t.nodes()[li].children.iter().map(|&c| t.nodes()[c as usize].node).collect()
}

#[test]
fn hand_computed_weights_with_decay_and_behaviour_weights() {
    let (_d, e) = engine_with(&fixture(), json!({"behaviour_weights": [1.0, 3.0], "decay_lambda": 0.5}));
    // (item, behaviour, t): e0 = (0, 0, 0), e1 = (1, 1, 2), e2 = (2, 0, 1). t_ref = 2.
    let t = e.build_tree(&[0, 1, 2], &[0, 1, 0], &[0.0, 2.0, 1.0]).unwrap();
    let (c0, c1, c2) = ((-1.0f64).exp(), 3.0, (-0.5f64).exp());
    let w = c0 + c1 + c2;
    assert_eq!(t.t_ref(), 2.0);
    close(t.total_mass(), w, 1e-14);
    close(t.event_weight(0), c0 / w, 1e-14);
    close(t.event_weight(1), c1 / w, 1e-14);
    close(t.event_weight(2), c2 / w, 1e-14);
    close(weight_of(&t, 0), 1.0, 1e-14); // every event reaches root 0
    close(weight_of(&t, 2), (c0 + c2) / w, 1e-14);
    close(weight_of(&t, 4), (c0 + c2) / w, 1e-14);
    close(weight_of(&t, 3), c1 / w, 1e-14);
    close(weight_of(&t, 1), c2 / w, 1e-14);
    close(weight_of(&t, 5), c2 / w, 1e-14);
    assert_eq!(t.nodes().len(), 6);
    assert_eq!(evidence_of(&t, 0), vec![0, 1, 2]);
    assert_eq!(evidence_of(&t, 3), vec![1]);
    assert_eq!(evidence_of(&t, 5), vec![2]);
    close(t.event_age(0), 2.0, 0.0);
    // Structure: roots and children in ascending global id, parents linked.
    let roots: Vec<u32> = t.nodes().iter().filter(|n| n.parent.is_none()).map(|n| n.node).collect();
    assert_eq!(roots.len(), 2);
    assert_eq!(global_children(&t, 0), vec![2, 3]);
    assert_eq!(global_children(&t, 2), vec![4]);
    assert_eq!(global_children(&t, 1), vec![5]);
    assert!(global_children(&t, 4).is_empty());
    let li5 = t.local_index(5).unwrap() as usize;
    assert_eq!(t.nodes()[li5].parent.map(|p| t.nodes()[p as usize].node), Some(1));
    let mut leaves: Vec<u32> = t.leaves().map(|li| t.nodes()[li as usize].node).collect();
    leaves.sort_unstable();
    assert_eq!(leaves, vec![3, 4, 5]);
}

#[test]
fn children_are_sorted_even_when_reached_in_descending_order() {
    let (_d, e) = engine_with(&fixture(), json!({}));
    // Item 1 reaches node 3 before item 0 reaches node 2 (both children of 0).
    let t = e.build_tree(&[2, 1, 0], &[0, 0, 0], &[0.0, 1.0, 2.0]).unwrap();
    assert_eq!(global_children(&t, 0), vec![2, 3]);
}

#[test]
fn an_event_counts_once_per_node_even_when_its_paths_share_it() {
    let (_d, e) = engine_with(&fixture(), json!({}));
    // Item 4's paths 0>2>4 and 0>3 share node 0; item 5's paths 0>2>4 and 0>2 share 0 and 2.
    for item in [4i64, 5] {
        let t = e.build_tree(&[item, 1], &[0, 0], &[5.0, 5.0]).unwrap();
        close(t.total_mass(), 2.0, 1e-15);
        close(weight_of(&t, 0), 1.0, 1e-15); // 2 events of mass 1, not 3
        close(weight_of(&t, 2), 0.5, 1e-15);
        close(weight_of(&t, 4), 0.5, 1e-15);
        assert_eq!(evidence_of(&t, 0), vec![0, 1]);
        assert_eq!(evidence_of(&t, 2), vec![0]);
    }
    let t = e.build_tree(&[5], &[0], &[0.0]).unwrap();
    assert_eq!(t.nodes().len(), 3);
    close(weight_of(&t, 2), 1.0, 1e-15);
}

#[test]
fn events_without_paths_count_in_the_total_mass() {
    let (_d, e) = engine_with(&fixture(), json!({"cold_start_paths": 0}));
    let t = e.build_tree(&[0, 3], &[0, 0], &[1.0, 1.0]).unwrap();
    close(t.total_mass(), 2.0, 1e-15);
    close(weight_of(&t, 4), 0.5, 1e-15);
    assert_eq!(t.nodes().len(), 3);
    let t = e.build_tree(&[3], &[0], &[1.0]).unwrap();
    assert!(t.nodes().is_empty() && !t.is_empty());
    close(t.total_mass(), 1.0, 0.0);
}

#[test]
fn evidence_cap_keeps_the_largest_contribution_then_the_later_event() {
    let (_d, e) = engine_with(&fixture(), json!({"behaviour_weights": [1.0, 3.0], "decay_lambda": 0.5, "node_evidence_cap": 2}));
    // Contributions: e0 = 1, e1 = 3, e2 = 1 (ties e0, the later e2 wins), e3 = exp(-2.5).
    let items = [0i64, 0, 0, 0];
    let t = e.build_tree(&items, &[0, 1, 0, 0], &[0.0, 0.0, 0.0, -5.0]).unwrap();
    for node in [0, 2, 4] {
        assert_eq!(evidence_of(&t, node), vec![1, 2], "node {node}");
    }
    // The same events one by one, in another time order.
    let mut inc = e.new_tree();
    for (k, (b, ts)) in [(0i64, 0.0), (1, 0.0), (0, 0.0), (0, -5.0)].into_iter().enumerate() {
        e.add_event(&mut inc, items[k], b, ts).unwrap();
    }
    assert_eq!(evidence_of(&inc, 0), vec![1, 2]);
    // A zero cap keeps nothing; a cap of 1 keeps the strongest.
    let (_d0, e0) = engine_with(&fixture(), json!({"node_evidence_cap": 0}));
    let t = e0.build_tree(&[0, 0], &[0, 0], &[0.0, 1.0]).unwrap();
    assert!(t.nodes().iter().all(|n| n.evidence.is_empty()));
    let (_d1, e1) = engine_with(&fixture(), json!({"node_evidence_cap": 1}));
    let t = e1.build_tree(&[0, 0, 0], &[0, 0, 0], &[3.0, 7.0, 1.0]).unwrap();
    assert_eq!(evidence_of(&t, 4), vec![1]);
}

fn assert_same_tree(a: &UserTree, b: &UserTree, tol: f64) {
    assert_eq!(a.nodes().len(), b.nodes().len());
    assert_eq!(a.n_events(), b.n_events());
    assert_eq!(a.t_ref(), b.t_ref());
    close(a.total_mass(), b.total_mass(), tol);
    for (i, n) in a.nodes().iter().enumerate() {
        let j = b.local_index(n.node).expect("same node set");
        close(a.weight(i as u32), b.weight(j), tol);
        let mut ea = n.evidence.clone();
        let mut eb = b.nodes()[j as usize].evidence.clone();
        ea.sort_unstable();
        eb.sort_unstable();
        assert_eq!(ea, eb, "evidence of node {}", n.node);
        let ga: Vec<u32> = n.children.iter().map(|&c| a.nodes()[c as usize].node).collect();
        let gb: Vec<u32> = b.nodes()[j as usize].children.iter().map(|&c| b.nodes()[c as usize].node).collect();
        assert_eq!(ga, gb);
    }
    for k in 0..a.n_events() as u32 {
        close(a.event_weight(k), b.event_weight(k), tol);
    }
}

#[test]
fn incremental_updates_equal_a_batch_build() {
    let e = small().with_overrides(&json!({"node_evidence_cap": 3})).unwrap();
    let n_items = e.bundle().n_items();
    let h = synthetic_histories(6, 40, n_items, 1, 5);
    for u in 0..h.n_users() {
        let (items, behaviours, ts) = h.user(u);
        // Out of time order: the first half rises (later events outweigh the stored ones), the
        // second half arrives late.
        let mut ts: Vec<f64> = ts.to_vec();
        ts.rotate_left(20);
        ts[25..].reverse();
        let built = e.build_tree(items, behaviours, &ts).unwrap();
        let mut inc = e.new_tree();
        for k in 0..items.len() {
            e.add_event(&mut inc, items[k], behaviours[k], ts[k]).unwrap();
        }
        assert!(built.nodes().len() > 10);
        assert_same_tree(&built, &inc, 1e-12);
    }
}

#[test]
fn incremental_updates_across_renormalisations_equal_a_batch_build() {
    // Masses are stored relative to a base time and re-expressed only when the latest event
    // is >100/lambda ahead of it: with lambda = 1 and steps of 4 the base moves every ~25
    // events (4 times here, the span staying clear of f64 underflow, where ties at 0 would
    // break differently), and weights, evidence and the total mass must not notice.
    let e = small().with_overrides(&json!({"node_evidence_cap": 3, "decay_lambda": 1.0})).unwrap();
    let n_items = e.bundle().n_items();
    let h = synthetic_histories(3, 120, n_items, 1, 11);
    for u in 0..h.n_users() {
        let (items, behaviours, _) = h.user(u);
        let mut ts: Vec<f64> = (0..items.len()).map(|k| 4.0 * k as f64).collect();
        ts[60..70].reverse(); // a few late arrivals too
        let built = e.build_tree(items, behaviours, &ts).unwrap();
        let mut inc = e.new_tree();
        for k in 0..items.len() {
            e.add_event(&mut inc, items[k], behaviours[k], ts[k]).unwrap();
        }
        assert_same_tree(&built, &inc, 1e-9);
        assert!(built.event_weight(0) < 1e-29 && inc.event_weight(0) < 1e-29, "old events decay away (to the MIN_WEIGHT floor)");
    }
}

#[test]
fn weights_are_invariant_under_a_common_time_shift() {
    let e = small();
    let h = synthetic_histories(3, 30, e.bundle().n_items(), 1, 9);
    for u in 0..h.n_users() {
        let (items, behaviours, ts) = h.user(u);
        let base = e.build_tree(items, behaviours, ts).unwrap();
        for shift in [-1e4, 1e3, 1.7e6] {
            let shifted: Vec<f64> = ts.iter().map(|t| t + shift).collect();
            let t = e.build_tree(items, behaviours, &shifted).unwrap();
            assert_eq!(t.nodes().len(), base.nodes().len());
            for (i, n) in base.nodes().iter().enumerate() {
                let j = t.local_index(n.node).unwrap();
                close(t.weight(j), base.weight(i as u32), 1e-9);
            }
            close(t.total_mass(), base.total_mass(), 1e-9);
        }
    }
}

#[test]
fn path_slots_per_behaviour_choose_the_event_paths() {
    let mut f = fixture();
    f.path_slots = 2;
    f.config.behaviour_weights = vec![1.0, 2.0];
    for it in f.items.iter_mut() {
        let first = it.2[0].clone();
        it.2 = vec![first, vec![5]];
    }
    let (_d, e) = engine_with(&f, json!({}));
    let t = e.build_tree(&[0], &[0], &[0.0]).unwrap();
    let mut nodes: Vec<u32> = t.nodes().iter().map(|n| n.node).collect();
    nodes.sort_unstable();
    assert_eq!(nodes, vec![0, 2, 4]);
    let t = e.build_tree(&[0], &[1], &[0.0]).unwrap();
    let nodes: Vec<u32> = t.nodes().iter().map(|n| n.node).collect();
    assert_eq!(nodes, vec![1, 5]);
    // Per-behaviour paths need one behaviour weight per slot.
    assert!(matches!(e.with_overrides(&json!({"behaviour_weights": [1.0]})), Err(Error::Config(_))));
    assert!(matches!(e.with_overrides(&json!({"behaviour_weights": [1.0, 1.0, 1.0]})), Err(Error::Config(_))));
}

#[test]
fn bad_events_are_typed_errors_and_build_nothing() {
    let (_d, e) = engine_with(&fixture(), json!({"behaviour_weights": [1.0, 2.0]}));
    let n = e.bundle().n_items() as i64;
    for item in [-1, n, i64::MAX] {
        match e.build_tree(&[0, item], &[0, 0], &[0.0, 1.0]) {
            Err(Error::UnknownItem { item: got, n_items }) => assert_eq!((got, n_items), (item, n as usize)),
            other => panic!("{other:?}"),
        }
    }
    for b in [-1i64, 2, 99] {
        match e.build_tree(&[0], &[b], &[0.0]) {
            Err(Error::UnknownBehaviour { behaviour, n_behaviours }) => assert_eq!((behaviour, n_behaviours), (b, 2)),
            other => panic!("{other:?}"),
        }
    }
    for ts in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(matches!(e.build_tree(&[0], &[0], &[ts]), Err(Error::Input(_))));
    }
    assert!(matches!(e.build_tree(&[0, 1], &[0], &[0.0, 1.0]), Err(Error::Input(_))));
    assert!(matches!(e.build_tree(&[0], &[0], &[0.0, 1.0]), Err(Error::Input(_))));
    // add_event: the same checks, and a failed add leaves the tree unchanged.
    let mut t = e.build_tree(&[0], &[0], &[0.0]).unwrap();
    assert!(matches!(e.add_event(&mut t, n, 0, 1.0), Err(Error::UnknownItem { .. })));
    assert!(matches!(e.add_event(&mut t, 1, 5, 1.0), Err(Error::UnknownBehaviour { .. })));
    assert!(matches!(e.add_event(&mut t, 1, 0, f64::NAN), Err(Error::Input(_))));
    assert_eq!(t.n_events(), 1);
    assert_eq!(t.nodes().len(), 3);
}

#[test]
fn empty_trees() {
    let e = small();
    for t in [e.new_tree(), e.build_tree(&[], &[], &[]).unwrap()] {
        assert!(t.is_empty());
        assert_eq!(t.n_events(), 0);
        assert!(t.nodes().is_empty());
        assert_eq!(t.t_ref(), f64::NEG_INFINITY);
        assert_eq!(t.total_mass(), 0.0);
    }
}

#[test]
fn trees_only_work_with_the_engine_settings_they_were_built_with() {
    let e = small();
    let h = synthetic_histories(1, 10, e.bundle().n_items(), 1, 2);
    let (items, behaviours, ts) = h.user(0);
    let mut t = e.build_tree(items, behaviours, ts).unwrap();
    // Walk and composition settings may change ...
    let wider = e.with_overrides(&json!({"beam_width": 8, "max_evidence": 2})).unwrap();
    wider.scores(&t, airrec_core::Candidates::Items(&[1, 2])).unwrap();
    wider.add_event(&mut t, 3, 0, 100.0).unwrap();
    // ... tree settings may not.
    for o in [json!({"decay_lambda": 0.2}), json!({"node_evidence_cap": 3}), json!({"behaviour_weights": [2.0]})] {
        let other = e.with_overrides(&o).unwrap();
        assert!(matches!(other.scores(&t, airrec_core::Candidates::Items(&[1])), Err(Error::Input(_))), "{o}");
        assert!(matches!(other.add_event(&mut t, 1, 0, 1.0), Err(Error::Input(_))));
    }
    // Nor may the bundle (another load of the same files is another bundle).
    let other = Engine::from_bundle(
        std::sync::Arc::new(airrec_core::Bundle::load(&e.bundle().path, &Default::default()).unwrap()),
        e.config().clone(),
    )
    .unwrap();
    assert!(matches!(other.scores(&t, airrec_core::Candidates::Items(&[1])), Err(Error::Input(_))));
}

#[test]
fn zero_decay_tolerates_any_finite_timestamps() {
    // docs/online-path.md §2 with decay_lambda = 0: c_e = behaviour_weights[b_e], whatever the
    // timestamps. Timestamps are only required to be finite, but t_ref - t_e overflows to inf
    // for -1e308 and 1e308, and -0 * inf = NaN: W becomes NaN and every w̃ falls to the 1e-30
    // floor (scores stay finite, so nothing flags it).
    let (_d, e) = engine_with(&fixture(), json!({"decay_lambda": 0.0}));
    let t = e.build_tree(&[0, 1], &[0, 0], &[-1e308, 1e308]).unwrap();
    close(t.total_mass(), 2.0, 0.0);
    close(weight_of(&t, 0), 1.0, 0.0);
    close(weight_of(&t, 4), 0.5, 0.0);
    let mut inc = e.new_tree();
    e.add_event(&mut inc, 0, 0, -1e308).unwrap();
    e.add_event(&mut inc, 1, 0, 1e308).unwrap();
    close(inc.total_mass(), 2.0, 0.0);
}
