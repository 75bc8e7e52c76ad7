//! Target-aware retrieval (docs/online-path.md §3): the beam walk and evidence pruning, on hand-made
//! trees whose similarities are chosen so that each rule decides the outcome.

use airrec_core::testing::Fixture;
use airrec_core::{Candidates, Context, Engine};
use serde_json::json;

use crate::common::{close, engine_with};

const X: [f32; 4] = [1.0, 0.0, 0.0, 0.0];

/// A unit vector with cosine `s` to `X`, in the plane of `X` and axis `axis` (1..4).
fn at(s: f64, axis: usize) -> Vec<f64> {
    let mut v = vec![0.0; 4];
    v[0] = s;
    v[axis] += (1.0 - s * s).max(0.0).sqrt();
    v
}

fn contexts(e: &Engine, t: &airrec_core::UserTree, x: &[f32]) -> Context {
    e.contexts(t, Candidates::Vectors(x)).unwrap().remove(0)
}

/// Greedy trap: root 0 (sim 0.9) > node 2 (sim 0); root 1 (sim 0.5) > node 3 (sim 1.0).
/// Chain means: [0, 2] = 0.45, [1, 3] = 0.75. Item 0 reaches everything.
fn greedy_trap() -> Fixture {
    let mut f = Fixture::new(4);
    let a = f.node(None, "a", &at(0.9, 1));
    let b = f.node(None, "b", &at(0.5, 1));
    let a1 = f.node(Some(a), "a1", &at(0.0, 2));
    let b1 = f.node(Some(b), "b1", &at(1.0, 2));
    f.item(&at(0.3, 3), 0, &[a1, b1]);
    f
}

#[test]
fn beam_width_one_is_greedy_and_misses_the_best_chain() {
    let f = greedy_trap();
    let (_d1, narrow) = engine_with(&f, json!({"beam_width": 1, "walk_alpha": 0.0}));
    let t = narrow.build_tree(&[0], &[0], &[0.0]).unwrap();
    assert_eq!(contexts(&narrow, &t, &X).chains, vec![vec![0, 2]]);
    let (_d2, wide) = engine_with(&f, json!({"beam_width": 2, "walk_alpha": 0.0}));
    let t = wide.build_tree(&[0], &[0], &[0.0]).unwrap();
    assert_eq!(contexts(&wide, &t, &X).chains, vec![vec![1, 3], vec![0, 2]]);
    let ex = wide.explain(&t, Candidates::Vectors(&X)).unwrap();
    close(ex.chains[0].score, 0.75, 1e-6);
    close(ex.chains[1].score, 0.45, 1e-6);
    close(ex.chains[0].similarities[1], 1.0, 1e-6);
    assert_eq!(ex.chains[0].phrases, vec!["b", "b1"]);
}

#[test]
fn max_chains_limits_the_chains_best_first() {
    let f = greedy_trap();
    let (_d, e) = engine_with(&f, json!({"beam_width": 4, "walk_alpha": 0.0, "max_chains": 1}));
    let t = e.build_tree(&[0], &[0], &[0.0]).unwrap();
    let c = contexts(&e, &t, &X);
    assert_eq!(c.chains, vec![vec![1, 3]]);
    let e3 = e.with_overrides(&json!({"max_chains": 3})).unwrap();
    assert_eq!(contexts(&e3, &t, &X).chains.len(), 2, "only two complete chains exist");
}

#[test]
fn walk_alpha_weighs_node_weights_into_the_walk() {
    // Roots 0 and 1 equally similar; root 1 carries three times the mass.
    let mut f = Fixture::new(4);
    let a = f.node(None, "a", &at(0.6, 1));
    let b = f.node(None, "b", &at(0.6, 2));
    f.item(&at(0.5, 3), 0, &[a]);
    f.item(&at(0.5, 3), 0, &[b]);
    let (_d, e) = engine_with(&f, json!({"max_chains": 1, "walk_alpha": 0.1}));
    let t = e.build_tree(&[0, 1, 1, 1], &[0; 4], &[0.0; 4]).unwrap();
    assert_eq!(contexts(&e, &t, &X).chains, vec![vec![1]]);
    let ex = e.explain(&t, Candidates::Vectors(&X)).unwrap();
    close(ex.chains[0].score, 0.6 + 0.1 * 0.75f64.ln(), 1e-6);
    close(ex.chains[0].weights[0], 0.75, 1e-12);
    // Without the weight term the two tie and the lower node id wins.
    let e0 = e.with_overrides(&json!({"walk_alpha": 0.0})).unwrap();
    assert_eq!(contexts(&e0, &t, &X).chains, vec![vec![0]]);
    // A large alpha lets weight beat similarity: for x = e1, sims are 0.8 (node 0) and 0
    // (node 1); with alpha 1, 0.8 + ln 0.25 = -0.59 < 0 + ln 0.75 = -0.29.
    let mut x = vec![0.0f32; 4];
    x[1] = 1.0;
    assert_eq!(contexts(&e0, &t, &x).chains, vec![vec![0]]);
    assert_eq!(contexts(&e, &t, &x).chains, vec![vec![0]], "alpha 0.1: 0.8 - 0.14 > 0 - 0.03");
    let heavy = e.with_overrides(&json!({"walk_alpha": 1.0})).unwrap();
    assert_eq!(contexts(&heavy, &t, &x).chains, vec![vec![1]]);
}

#[test]
fn max_chain_depth_truncates_chains() {
    // 0 > 1 > 2 > 3, every node similar to X.
    let mut f = Fixture::new(4);
    let mut parent = None;
    for k in 0..4 {
        parent = Some(f.node(parent, &format!("n{k}"), &at(0.9 - 0.1 * k as f64, 1 + k % 3)));
    }
    f.item(&at(0.5, 3), 0, &[3]);
    for depth in 1..=5 {
        let (_d, e) = engine_with(&f, json!({"max_chain_depth": depth}));
        let t = e.build_tree(&[0], &[0], &[0.0]).unwrap();
        let want: Vec<u32> = (0..depth.min(4) as u32).collect();
        let c = contexts(&e, &t, &X);
        assert_eq!(c.chains, vec![want], "max_chain_depth {depth}");
        // Evidence comes from the last node of the (truncated) chain.
        assert_eq!(c.evidence, vec![0]);
    }
}

#[test]
fn exact_ties_break_by_node_ids_lexicographically() {
    // Roots 0 and 1 identical; 1 > 2 and 0 > 3 identical. Chains [0, 3] and [1, 2] tie exactly;
    // [0, 3] < [1, 2] lexicographically (comparing only the last node would pick [1, 2]).
    let mut f = Fixture::new(4);
    let r0 = f.node(None, "r0", &at(0.7, 1));
    let r1 = f.node(None, "r1", &at(0.7, 1));
    let c1 = f.node(Some(r1), "c1", &at(0.4, 2));
    let c0 = f.node(Some(r0), "c0", &at(0.4, 2));
    f.item(&at(0.1, 3), 0, &[c0, c1]);
    let (_d, e) = engine_with(&f, json!({"max_chains": 2}));
    let t = e.build_tree(&[0], &[0], &[0.0]).unwrap();
    assert_eq!(contexts(&e, &t, &X).chains, vec![vec![0, 3], vec![1, 2]]);
    let one = e.with_overrides(&json!({"max_chains": 1})).unwrap();
    assert_eq!(contexts(&one, &t, &X).chains, vec![vec![0, 3]]);
    // In the beam too: width 1 keeps root 0 of the two tied roots.
    let narrow = e.with_overrides(&json!({"beam_width": 1})).unwrap();
    assert_eq!(contexts(&narrow, &t, &X).chains, vec![vec![0, 3]]);
    // Chain nodes: each node once, chain by chain, root to leaf.
    let ex = e.explain(&t, Candidates::Vectors(&X)).unwrap();
    assert_eq!(ex.chains.iter().map(|c| c.nodes.clone()).collect::<Vec<_>>(), vec![vec![0, 3], vec![1, 2]]);
}

#[test]
fn shared_prefixes_appear_once_in_the_chain_nodes() {
    // 0 > 1 and 0 > 2: chains [0, 1] and [0, 2] share the root slot.
    let mut f = Fixture::new(4);
    let r = f.node(None, "r", &at(0.9, 1));
    let a = f.node(Some(r), "a", &at(0.8, 2));
    let b = f.node(Some(r), "b", &at(0.7, 3));
    f.item(&at(0.5, 1), 0, &[a, b]);
    let (_d, e) = engine_with(&f, json!({"max_evidence": 0}));
    let t = e.build_tree(&[0], &[0], &[0.0]).unwrap();
    let c = contexts(&e, &t, &X);
    assert_eq!(c.chains, vec![vec![0, 1], vec![0, 2]]);
    assert!(c.evidence.is_empty(), "max_evidence 0 keeps no evidence");
    let ex = e.explain(&t, Candidates::Vectors(&X)).unwrap();
    // 3 node slots + null: attention over distinct nodes sums with null to 1 per head.
    let total: f32 = ex.chains[0].attention.iter().sum::<f32>() + ex.chains[1].attention[1] + ex.null_attention;
    close(total as f64, 1.0, 1e-5);
}

#[test]
fn a_chain_shares_its_prefix_with_any_earlier_chain_not_only_the_last() {
    // r1 > a, r1 > b, r2 > c; without weights in the walk, the chains rank [r1, a] (0.85),
    // [r2, c] (0.775), [r1, b] (0.6): the third shares r1 with the first, not the second.
    let mut f = Fixture::new(4);
    let r1 = f.node(None, "r1", &at(0.9, 1));
    let a = f.node(Some(r1), "a", &at(0.8, 2));
    let b = f.node(Some(r1), "b", &at(0.3, 3));
    let r2 = f.node(None, "r2", &at(0.85, 2));
    let c = f.node(Some(r2), "c", &at(0.7, 3));
    f.item(&at(0.5, 1), 0, &[a, b, c]);
    let (_d, e) = engine_with(&f, json!({"max_evidence": 0, "max_chains": 3, "walk_alpha": 0.0}));
    let t = e.build_tree(&[0], &[0], &[0.0]).unwrap();
    assert_eq!(contexts(&e, &t, &X).chains, vec![vec![r1, a], vec![r2, c], vec![r1, b]]);
    let ex = e.explain(&t, Candidates::Vectors(&X)).unwrap();
    // Five node slots (r1 once) + null: their attention sums to 1 per head, so to 1 in the mean.
    let distinct: f32 = ex.chains[0].attention.iter().sum::<f32>() + ex.chains[1].attention.iter().sum::<f32>() + ex.chains[2].attention[1];
    close((distinct + ex.null_attention) as f64, 1.0, 1e-5);
    assert_eq!(ex.chains[2].attention[0], ex.chains[0].attention[0], "r1 is one slot");
}

/// One leaf (node 1 under root 0) reached by three items: item 0 = X (sim 1), item 1 (sim 0),
/// item 2 (sim 0.5).
fn evidence_fixture() -> Fixture {
    let mut f = Fixture::new(4);
    let r = f.node(None, "r", &at(0.5, 1));
    let l = f.node(Some(r), "l", &at(0.5, 2));
    f.item(&at(1.0, 1), 0, &[l]);
    f.item(&at(0.0, 1), 0, &[l]);
    f.item(&at(0.5, 3), 0, &[l]);
    f
}

#[test]
fn evidence_is_ranked_by_weight_and_similarity() {
    let f = evidence_fixture();
    let (_d, e) = engine_with(&f, json!({"decay_lambda": 0.05, "evidence_alpha": 1.0}));
    // e0 = item 0 at t=0, e1 = item 1 at t=1, e2 = item 2 at t=1.
    let t = e.build_tree(&[0, 1, 2], &[0, 0, 0], &[0.0, 1.0, 1.0]).unwrap();
    // Scores: ln(c/W) + sim: e0 = -0.05 + 1, e1 = 0 + 0, e2 = 0 + 0.5 (minus ln W each).
    assert_eq!(contexts(&e, &t, &X).evidence, vec![0, 2, 1]);
    let ex = e.explain(&t, Candidates::Vectors(&X)).unwrap();
    let w = t.total_mass();
    close(ex.evidence[0].score, (-0.05f64).exp().ln() - w.ln() + 1.0, 1e-6);
    close(ex.evidence[1].similarity, 0.5, 1e-6);
    close(ex.evidence[2].weight, 1.0 / w, 1e-12);
    // Similarity off: recency (then event index) decides.
    let e0 = e.with_overrides(&json!({"evidence_alpha": 0.0})).unwrap();
    assert_eq!(contexts(&e0, &t, &X).evidence, vec![1, 2, 0]);
    // max_evidence keeps the best.
    let e1 = e.with_overrides(&json!({"max_evidence": 1})).unwrap();
    assert_eq!(contexts(&e1, &t, &X).evidence, vec![0]);
    let e2 = e0.with_overrides(&json!({"max_evidence": 1})).unwrap();
    assert_eq!(contexts(&e2, &t, &X).evidence, vec![1], "tie between e1 and e2 keeps the lower index");
}

#[test]
fn evidence_max_age_drops_old_events() {
    let f = evidence_fixture();
    let (_d, e) = engine_with(&f, json!({"decay_lambda": 0.0}));
    // Ages: e0 10, e1 5, e2 0.
    let t = e.build_tree(&[0, 1, 2], &[0; 3], &[0.0, 5.0, 10.0]).unwrap();
    assert_eq!(contexts(&e, &t, &X).evidence, vec![0, 2, 1]);
    for (age, want) in
        [(100.0, vec![0, 2, 1]), (10.0, vec![0, 2, 1]), (9.99, vec![2, 1]), (5.0, vec![2, 1]), (4.0, vec![2]), (0.0, vec![2])]
    {
        let ea = e.with_overrides(&json!({"evidence_max_age": age})).unwrap();
        assert_eq!(contexts(&ea, &t, &X).evidence, want, "max age {age}");
    }
}

#[test]
fn evidence_is_the_union_under_the_chains_last_nodes() {
    // Leaves 2 (under 0) and 3 (under 1); item 0 reaches both, item 1 only leaf 2, item 2 only
    // leaf 3; item 3 only root 0's other child 4, which the walk does not select.
    let mut f = Fixture::new(4);
    let r0 = f.node(None, "r0", &at(0.8, 1));
    let r1 = f.node(None, "r1", &at(0.7, 2));
    let l2 = f.node(Some(r0), "l2", &at(0.8, 3));
    let l3 = f.node(Some(r1), "l3", &at(0.7, 3));
    let l4 = f.node(Some(r0), "l4", &at(-0.5, 1));
    f.item(&at(0.9, 1), 0, &[l2, l3]);
    f.item(&at(0.8, 2), 0, &[l2]);
    f.item(&at(0.7, 3), 0, &[l3]);
    f.item(&at(0.6, 1), 0, &[l4]);
    let (_d, e) = engine_with(&f, json!({"max_chains": 2, "decay_lambda": 0.0}));
    let t = e.build_tree(&[0, 1, 2, 3], &[0; 4], &[0.0; 4]).unwrap();
    let c = contexts(&e, &t, &X);
    assert_eq!(c.chains, vec![vec![0, 2], vec![1, 3]]);
    let mut ev = c.evidence.clone();
    ev.sort_unstable();
    assert_eq!(ev, vec![0, 1, 2], "event 0 once, event 3 (under the unselected leaf 4) not at all");
    // Evidence order is by score: sims 0.9, 0.8, 0.7 with equal weights.
    assert_eq!(c.evidence, vec![0, 1, 2]);
}
