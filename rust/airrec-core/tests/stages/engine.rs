//! The engine as a whole: batches, threads, input checks, top-k retrieval, nearest intents,
//! cold start and configuration overrides.

use airrec_core::testing::{synthetic_candidates, synthetic_histories, SyntheticHistories};
use airrec_core::{Candidates, Engine, Error, Histories};
use serde_json::json;

use crate::common::{close, small};

fn histories(e: &Engine, users: usize, events: usize, seed: u64) -> SyntheticHistories {
    synthetic_histories(users, events, e.bundle().n_items(), e.config().n_behaviours(), seed)
}

#[test]
fn batch_equals_per_user_requests() {
    let e = small();
    let h = histories(e, 9, 25, 1);
    let (users, nc, d) = (h.n_users(), 12, e.dim());
    let cands = synthetic_candidates(users, nc, e.bundle().n_items(), 3);
    let mut scores = vec![0.0f32; users * nc];
    e.scores_batch(h.as_histories(), &cands, nc, &mut scores).unwrap();
    let mut vectors = vec![0.0f32; users * nc * d];
    e.intent_vectors_batch(h.as_histories(), &cands, nc, &mut vectors).unwrap();
    for u in 0..users {
        let (items, behaviours, ts) = h.user(u);
        let t = e.build_tree(items, behaviours, ts).unwrap();
        let c = Candidates::Items(&cands[u * nc..(u + 1) * nc]);
        assert_eq!(e.scores(&t, c).unwrap(), &scores[u * nc..(u + 1) * nc], "user {u}");
        assert_eq!(e.intent_vectors(&t, c).unwrap(), &vectors[u * nc * d..(u + 1) * nc * d], "user {u}");
    }
    assert!(scores.iter().any(|&s| s != scores[0]));
}

#[test]
fn explain_and_contexts_take_the_scoring_path_bit_for_bit() {
    // One kernel set for every call: the explanation's score and intent vector are exactly the
    // scored ones (not equal to rounding), and its chains/evidence are the contexts'.
    let e = small();
    let h = histories(e, 6, 40, 5);
    let cands = synthetic_candidates(1, 30, e.bundle().n_items(), 9);
    for u in 0..h.n_users() {
        let (items, behaviours, ts) = h.user(u);
        let t = e.build_tree(items, behaviours, ts).unwrap();
        let scores = e.scores(&t, Candidates::Items(&cands)).unwrap();
        let vectors = e.intent_vectors(&t, Candidates::Items(&cands)).unwrap();
        let contexts = e.contexts(&t, Candidates::Items(&cands)).unwrap();
        let d = e.dim();
        for (k, &c) in cands.iter().enumerate() {
            let ex = e.explain(&t, Candidates::Items(&[c])).unwrap();
            assert_eq!(ex.score.to_bits(), scores[k].to_bits(), "user {u} candidate {c}");
            assert_eq!(ex.intent_vector, &vectors[k * d..(k + 1) * d], "user {u} candidate {c}");
            let chains: Vec<Vec<u32>> = ex.chains.iter().map(|ch| ch.nodes.clone()).collect();
            assert_eq!(chains, contexts[k].chains, "user {u} candidate {c}");
            let evidence: Vec<u32> = ex.evidence.iter().map(|ev| ev.event).collect();
            assert_eq!(evidence, contexts[k].evidence, "user {u} candidate {c}");
        }
    }
}

#[test]
fn batch_results_do_not_depend_on_the_thread_count() {
    let e = small();
    let h = histories(e, 17, 20, 4);
    let nc = 7;
    let cands = synthetic_candidates(h.n_users(), nc, e.bundle().n_items(), 5);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut out = vec![0.0f32; h.n_users() * nc];
            e.scores_batch(h.as_histories(), &cands, nc, &mut out).unwrap();
            out
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(5));
}

#[test]
fn batch_edge_cases_and_errors() {
    let e = small();
    let n = e.bundle().n_items();
    let h = histories(e, 3, 4, 6);
    // Users without events and zero candidates.
    let empty = Histories { offsets: &[0, 0, 0], items: &[], behaviours: &[], timestamps: &[] };
    let mut out = vec![f32::NAN; 2 * 3];
    e.scores_batch(empty, &[1, 2, 3, 4, 5, 6], 3, &mut out).unwrap();
    assert!(out.iter().all(|v| v.is_finite()));
    assert_eq!(out[0..3], e.scores(&e.new_tree(), Candidates::Items(&[1, 2, 3])).unwrap()[..]);
    e.scores_batch(h.as_histories(), &[], 0, &mut []).unwrap();
    let mut out = vec![0.0f32; 3 * 2];
    let hist = h.as_histories();
    // Candidate out of range, wrong candidate count, wrong output size.
    let mut cands = vec![0u32; 6];
    cands[4] = n as u32;
    assert!(matches!(e.scores_batch(hist, &cands, 2, &mut out), Err(Error::UnknownItem { item, .. }) if item == n as i64));
    assert!(matches!(e.scores_batch(hist, &[0; 5], 2, &mut out), Err(Error::Input(_))));
    assert!(matches!(e.scores_batch(hist, &[0; 6], 2, &mut out[..5]), Err(Error::Input(_))));
    assert!(matches!(e.intent_vectors_batch(hist, &[0; 6], 2, &mut out), Err(Error::Input(_))));
    // Broken histories.
    let bad_items: Vec<i64> = h.items.iter().enumerate().map(|(k, &i)| if k == 7 { -3 } else { i }).collect();
    let hb = Histories { items: &bad_items, ..hist };
    assert!(matches!(e.scores_batch(hb, &[0; 6], 2, &mut out), Err(Error::UnknownItem { item: -3, .. })));
    let mut bad_ts = h.timestamps.clone();
    bad_ts[2] = f64::NAN;
    let hb = Histories { timestamps: &bad_ts, ..hist };
    match e.scores_batch(hb, &[0; 6], 2, &mut out) {
        Err(Error::Input(m)) => assert!(m.contains("event 2"), "{m}"),
        other => panic!("{other:?}"),
    }
    for offsets in [vec![0i64, 4, 8], vec![1, 4, 8, 12], vec![0, 8, 4, 12], vec![]] {
        let hb = Histories { offsets: &offsets, ..hist };
        let users = offsets.len().saturating_sub(1);
        let mut o = vec![0.0f32; users * 2];
        assert!(matches!(e.scores_batch(hb, &vec![0; users * 2], 2, &mut o), Err(Error::Input(_))), "{offsets:?}");
    }
    let hb = Histories { behaviours: &h.behaviours[1..], ..hist };
    assert!(matches!(e.scores_batch(hb, &[0; 6], 2, &mut out), Err(Error::Input(_))));
    let hb = Histories { behaviours: &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], ..hist };
    assert!(matches!(e.scores_batch(hb, &[0; 6], 2, &mut out), Err(Error::UnknownBehaviour { behaviour: 1, .. })));
}

#[test]
fn bad_candidates_are_typed_errors() {
    let e = small();
    let n = e.bundle().n_items() as u32;
    let h = histories(e, 1, 10, 8);
    let (items, behaviours, ts) = h.user(0);
    let t = e.build_tree(items, behaviours, ts).unwrap();
    for c in [vec![n], vec![0, 1, n + 5], vec![u32::MAX]] {
        let cands = Candidates::Items(&c);
        let bad = *c.last().unwrap() as i64;
        assert!(matches!(e.scores(&t, cands), Err(Error::UnknownItem { item, .. }) if item == bad));
        assert!(matches!(e.intent_vectors(&t, cands), Err(Error::UnknownItem { .. })));
        assert!(matches!(e.contexts(&t, cands), Err(Error::UnknownItem { .. })));
    }
    let d = e.dim();
    let good: Vec<f32> = e.bundle().item_vector(3).to_vec();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut v = [good.clone(), good.clone()].concat();
        v[d + 3] = bad;
        assert!(matches!(e.scores(&t, Candidates::Vectors(&v)), Err(Error::Input(_))));
        assert!(matches!(e.intent_vectors(&t, Candidates::Vectors(&v)), Err(Error::Input(_))));
        assert!(matches!(e.explain(&t, Candidates::Vectors(&v[d..])), Err(Error::Input(_))));
    }
    assert!(matches!(e.scores(&t, Candidates::Vectors(&good[1..])), Err(Error::Input(_))));
    assert!(matches!(e.explain(&t, Candidates::Items(&[1, 2])), Err(Error::Input(_))));
    assert!(matches!(e.explain(&t, Candidates::Items(&[])), Err(Error::Input(_))));
    let mut out = vec![0.0; 2];
    let mut s = airrec_core::Scratch::default();
    assert!(matches!(e.scores_into(&t, Candidates::Items(&[1, 2, 3]), &mut out, &mut s), Err(Error::Input(_))));
    assert!(matches!(e.intent_vectors_into(&t, Candidates::Items(&[1, 2]), &mut out, &mut s), Err(Error::Input(_))));
    // Zero candidates are fine.
    assert!(e.scores(&t, Candidates::Items(&[])).unwrap().is_empty());
    // Reused scratch gives the same answers as fresh scratch.
    let mut out = vec![0.0; 3];
    e.scores_into(&t, Candidates::Items(&[4, 5, 6]), &mut out, &mut s).unwrap();
    assert_eq!(out, e.scores(&t, Candidates::Items(&[4, 5, 6])).unwrap());
}

#[test]
fn retrieve_returns_items_of_the_requested_domain() {
    let e = small();
    let b = e.bundle();
    let h = histories(e, 4, 30, 9);
    for u in 0..h.n_users() {
        let (items, behaviours, ts) = h.user(u);
        let t = e.build_tree(items, behaviours, ts).unwrap();
        for domain in 0..b.dims.n_domains {
            let (ids, scores) = e.retrieve(&t, domain, 10, 40, true).unwrap();
            assert_eq!(ids.len(), 10);
            assert!(ids.iter().all(|&i| b.item_domain[i as usize] as usize == domain), "domain {domain}: {ids:?}");
            assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best score first");
            let direct = e.scores(&t, Candidates::Items(&ids)).unwrap();
            assert_eq!(direct, scores);
            let mut uniq = ids.clone();
            uniq.sort_unstable();
            uniq.dedup();
            assert_eq!(uniq.len(), ids.len());
            // Without reranking: index order, best cosine to the profile first.
            let (ids2, sims) = e.retrieve(&t, domain, 10, 40, false).unwrap();
            assert_eq!(ids2.len(), 10);
            assert!(ids2.iter().all(|&i| b.item_domain[i as usize] as usize == domain));
            assert!(sims.windows(2).all(|w| w[0] >= w[1] - 1e-6));
            let p = e.profile_vector(&t).unwrap();
            for (&i, &s) in ids2.iter().zip(&sims) {
                close(s as f64, crate::common::dot(&p, b.item_vector(i)), 1e-4);
            }
        }
    }
    // k larger than the pool: the pool grows to k.
    let (items, behaviours, ts) = h.user(0);
    let t = e.build_tree(items, behaviours, ts).unwrap();
    assert_eq!(e.retrieve(&t, 0, 15, 3, true).unwrap().0.len(), 15);
    assert!(e.retrieve(&t, 0, 0, 10, true).unwrap().0.is_empty());
    assert!(matches!(e.retrieve(&t, b.dims.n_domains, 5, 10, true), Err(Error::Input(_))));
    // Absurd k and pool are capped at the domain's size (they used to abort the process with a
    // capacity overflow inside the index search).
    let (all, _) = e.retrieve(&t, 0, usize::MAX >> 1, usize::MAX >> 1, false).unwrap();
    let (some, _) = e.retrieve(&t, 0, 1 << 62, 3, true).unwrap();
    assert!(!all.is_empty() && all.len() == some.len(), "{} vs {}", all.len(), some.len());
    // An empty tree retrieves nothing.
    let (ids, scores) = e.retrieve(&e.new_tree(), 0, 5, 20, true).unwrap();
    assert!(ids.is_empty() && scores.is_empty());
    assert!(e.profile_vector(&e.new_tree()).is_none());
}

#[test]
fn nearest_intents_are_leaves_best_first() {
    let e = small();
    let b = e.bundle();
    for item in [0u32, 50, 123] {
        let v = b.item_vector(item);
        let (nodes, sims) = e.nearest_intents(v, 6).unwrap();
        assert_eq!(nodes.len(), 6);
        assert!(nodes.iter().all(|&n| b.trie.is_leaf(n)), "{nodes:?}");
        assert!(sims.windows(2).all(|w| w[0] >= w[1] - 1e-6));
        for (&n, &s) in nodes.iter().zip(&sims) {
            close(s as f64, crate::common::dot(v, b.node_vector(n)), 1e-4);
        }
        // The best leaf is at least as close as every leaf checked exhaustively (exact top-1 on
        // a small index).
        let best = (0..b.dims.n_nodes as u32)
            .filter(|&n| b.trie.is_leaf(n))
            .map(|n| crate::common::dot(v, b.node_vector(n)))
            .fold(f64::MIN, f64::max);
        close(sims[0] as f64, best, 1e-4);
    }
    assert!(e.nearest_intents(b.item_vector(0), 0).unwrap().0.is_empty());
    let n_leaves = (0..b.dims.n_nodes as u32).filter(|&n| b.trie.is_leaf(n)).count();
    assert_eq!(e.nearest_intents(b.item_vector(0), usize::MAX).unwrap().0.len(), n_leaves);
    assert!(matches!(e.nearest_intents(&[0.0; 3], 2), Err(Error::Input(_))));
    let mut v = b.item_vector(0).to_vec();
    v[0] = f32::NAN;
    assert!(matches!(e.nearest_intents(&v, 2), Err(Error::Input(_))));
}

#[test]
fn cold_start_uses_the_nearest_leaves_for_items_without_paths() {
    let e = small();
    let b = e.bundle();
    let cold: Vec<u32> = (0..b.n_items() as u32).filter(|&i| b.path_leaves(i as usize).is_empty()).collect();
    assert!(!cold.is_empty(), "the synthetic bundle has items without paths");
    let k = e.config().cold_start_paths;
    assert_eq!(k, 2);
    for &item in &cold {
        let t = e.build_tree(&[item as i64], &[0], &[0.0]).unwrap();
        let mut leaves: Vec<u32> = t.leaves().map(|li| t.nodes()[li as usize].node).collect();
        leaves.sort_unstable();
        let (mut want, _) = e.nearest_intents(b.item_vector(item), k).unwrap();
        want.sort_unstable();
        assert_eq!(leaves, want, "item {item}");
        // Each leaf brings its whole path.
        for &l in &leaves {
            let mut p = Vec::new();
            b.trie.path_into(l, &mut p);
            assert!(p.iter().all(|&n| t.local_index(n).is_some()));
        }
    }
    // More cold-start paths.
    let e4 = e.with_overrides(&json!({"cold_start_paths": 4})).unwrap();
    let t = e4.build_tree(&[cold[0] as i64], &[0], &[0.0]).unwrap();
    assert_eq!(t.leaves().count(), 4);
    // Off: the event has no nodes, but still counts in the mass.
    let off = e.with_overrides(&json!({"cold_start_paths": 0})).unwrap();
    let t = off.build_tree(&[cold[0] as i64], &[0], &[0.0]).unwrap();
    assert!(t.nodes().is_empty());
    close(t.total_mass(), 1.0, 0.0);
    let s = off.scores(&t, Candidates::Items(&[0, 1])).unwrap();
    assert_eq!(s, off.scores(&off.new_tree(), Candidates::Items(&[0, 1])).unwrap());
    // Items with paths never use cold start.
    let warm = (0..b.n_items() as u32).find(|&i| !b.path_leaves(i as usize).is_empty()).unwrap();
    let t = e4.build_tree(&[warm as i64], &[0], &[0.0]).unwrap();
    let mut leaves: Vec<u32> = t.leaves().map(|li| t.nodes()[li as usize].node).collect();
    leaves.sort_unstable();
    let mut want: Vec<u32> = b.path_leaves(warm as usize).iter().map(|&l| l as u32).collect();
    want.sort_unstable();
    want.dedup();
    assert_eq!(leaves, want);
}

#[test]
fn overrides_are_validated() {
    let e = small();
    for bad in [
        json!({"beam_widht": 3}),
        json!({"beam_width": 0}),
        json!({"max_chains": 0}),
        json!({"max_chain_depth": 0}),
        json!({"max_chain_depth": 17}),
        json!({"behaviour_weights": []}),
        json!({"behaviour_weights": [1.0, 0.0]}),
        json!({"decay_lambda": -0.1}),
        json!({"evidence_max_age": -1.0}),
        json!({"beam_width": "wide"}),
        json!({"beam_width": -1}),
        json!([1, 2]),
        json!("beam_width"),
    ] {
        assert!(matches!(e.with_overrides(&bad), Err(Error::Config(_))), "{bad}");
    }
    let o = e.with_overrides(&json!({"beam_width": 7, "evidence_max_age": 3.5, "behaviour_weights": [1.0, 2.0]})).unwrap();
    assert_eq!(o.config().beam_width, 7);
    assert_eq!(o.config().evidence_max_age, Some(3.5));
    assert_eq!(o.config().n_behaviours(), 2);
    assert_eq!(o.config().max_chains, e.config().max_chains, "other values kept");
    let back = o.with_overrides(&json!({"evidence_max_age": null})).unwrap();
    assert_eq!(back.config().evidence_max_age, None);
    // The same checks at load time.
    let dir = &e.bundle().path;
    assert!(matches!(Engine::load(dir, &Default::default(), Some(&json!({"max_chains": 0}))), Err(Error::Config(_))));
    let loaded = Engine::load(dir, &Default::default(), Some(&json!({"max_chains": 3}))).unwrap();
    assert_eq!(loaded.config().max_chains, 3);
}

#[test]
fn the_engine_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
    assert_send_sync::<airrec_core::UserTree>();
    let e = small();
    let h = histories(e, 4, 15, 10);
    let want: Vec<Vec<f32>> = (0..4)
        .map(|u| {
            let (i, b, t) = h.user(u);
            e.scores(&e.build_tree(i, b, t).unwrap(), Candidates::Items(&[1, 2, 3])).unwrap()
        })
        .collect();
    std::thread::scope(|s| {
        for u in 0..4 {
            let (h, want) = (&h, &want);
            s.spawn(move || {
                let (i, b, t) = h.user(u);
                let got = e.scores(&e.build_tree(i, b, t).unwrap(), Candidates::Items(&[1, 2, 3])).unwrap();
                assert_eq!(got, want[u]);
            });
        }
    });
}

#[test]
fn a_user_with_history_scores_related_items_higher() {
    // Sanity of the whole path on the structured synthetic data with the untrained init
    // (score ≈ u · x): items near the user's interests outscore random items on average.
    let e = small();
    let n = e.bundle().n_items() as i64;
    let items: Vec<i64> = (40..60).collect();
    let t = e.build_tree(&items, &vec![0; items.len()], &(0..items.len()).map(|k| k as f64).collect::<Vec<_>>()).unwrap();
    let near: Vec<u32> = (42..58).collect();
    let far: Vec<u32> = (0..n as u32).filter(|&i| !(20..80).contains(&i)).step_by(7).collect();
    let mean = |v: Vec<f32>| v.iter().sum::<f32>() / v.len() as f32;
    let sn = mean(e.scores(&t, Candidates::Items(&near)).unwrap());
    let sf = mean(e.scores(&t, Candidates::Items(&far)).unwrap());
    assert!(sn > sf + 0.05, "near {sn} vs far {sf}");
}

#[test]
fn external_ids_resolve_both_ways() {
    let e = small();
    let n = e.bundle().n_items();
    for item in [0, 1, n / 2, n - 1] {
        let ext = e.external_id(item as i64).unwrap().to_string();
        assert_eq!(ext, format!("sku-{item:06}"));
        assert_eq!(e.item_by_external_id(&ext).unwrap(), item as u32);
    }
    match e.item_by_external_id("sku-9999999") {
        Err(Error::UnknownExternalItem { id, n_items }) => assert_eq!((id.as_str(), n_items), ("\"sku-9999999\"", n)),
        other => panic!("expected UnknownExternalItem, got {other:?}"),
    }
    // A hostile id is quoted short and escaped in the message.
    let hostile = format!("\n{}", "x".repeat(100_000));
    let msg = e.item_by_external_id(&hostile).unwrap_err().to_string();
    assert!(msg.len() < 200 && msg.contains("\\n") && !msg.contains('\n'), "{msg}");
    assert!(matches!(e.external_id(n as i64), Err(Error::UnknownItem { .. })));
    assert!(matches!(e.external_id(-1), Err(Error::UnknownItem { .. })));
}

#[test]
fn with_composition_serves_exactly_what_a_bundle_of_those_weights_serves() {
    use airrec_core::testing::SyntheticSpec;

    let spec = SyntheticSpec::small(11);
    let mut arrays = spec.arrays().unwrap();
    for (k, w) in arrays.composition.wq.iter_mut().enumerate() {
        *w += 0.01 * ((k % 7) as f32 - 3.0);
    }
    arrays.composition.score_bias[0] = 0.25;
    let dir = tempfile::tempdir().unwrap();
    arrays.write(dir.path()).unwrap();
    let written = crate::common::load(dir.path()).unwrap();
    let swapped = small().with_composition(&arrays.composition).unwrap();
    let h = histories(&swapped, 5, 30, 7);
    let nc = 9;
    let cands = synthetic_candidates(h.n_users(), nc, swapped.bundle().n_items(), 8);
    let (mut a, mut b, mut base) = (vec![0.0f32; 5 * nc], vec![0.0f32; 5 * nc], vec![0.0f32; 5 * nc]);
    swapped.scores_batch(h.as_histories(), &cands, nc, &mut a).unwrap();
    written.scores_batch(h.as_histories(), &cands, nc, &mut b).unwrap();
    small().scores_batch(h.as_histories(), &cands, nc, &mut base).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, base, "the new weights must change the scores");
    // Overrides keep the swapped weights.
    let mut c = vec![0.0f32; 5 * nc];
    swapped.with_overrides(&json!({"beam_width": 4})).unwrap().scores_batch(h.as_histories(), &cands, nc, &mut c).unwrap();
    let mut d = vec![0.0f32; 5 * nc];
    written.with_overrides(&json!({"beam_width": 4})).unwrap().scores_batch(h.as_histories(), &cands, nc, &mut d).unwrap();
    assert_eq!(c, d);

    let mut wrong = arrays.composition.clone();
    wrong.n_heads = 1;
    wrong.weight_bias.truncate(1);
    assert!(matches!(small().with_composition(&wrong), Err(Error::Input(m)) if m.contains("does not fit")));
    let mut nan = arrays.composition.clone();
    nan.wv[3] = f32::NAN;
    assert!(matches!(small().with_composition(&nan), Err(Error::Input(m)) if m.contains("compose_wv")));
    let mut short = arrays.composition.clone();
    short.bo.pop();
    assert!(matches!(small().with_composition(&short), Err(Error::Input(_))));
}

#[test]
fn explained_chain_similarities_are_the_ones_the_walk_scored_with() {
    // The walk keeps only chain scores; an explanation recomputes its chain nodes'
    // similarities. Each chain's score must then be exactly the walk's running mean of
    // `similarity + walk_alpha * ln(weight)`, root first: same kernel, same rows. Both ways
    // the walk scores the first two levels are covered: one blocked product over the roots
    // and their children (every root in the beam), and one product per expanded root.
    let base = small();
    let h = histories(base, 6, 40, 21);
    let cands = synthetic_candidates(h.n_users(), 5, base.bundle().n_items(), 22);
    let (mut chains, mut shared, mut unshared) = (0, 0, 0);
    for beam in [1, 8] {
        let e = base.with_overrides(&json!({ "beam_width": beam })).unwrap();
        let alpha = e.config().walk_alpha;
        for u in 0..h.n_users() {
            let (items, behaviours, ts) = h.user(u);
            let tree = e.build_tree(items, behaviours, ts).unwrap();
            let roots = tree.nodes().iter().filter(|n| n.parent.is_none()).count();
            if roots <= beam {
                shared += 1;
            } else {
                unshared += 1;
            }
            for &c in &cands[u * 5..(u + 1) * 5] {
                let ex = e.explain(&tree, Candidates::Items(&[c])).unwrap();
                for ch in &ex.chains {
                    let mut sum = 0.0f64;
                    for (s, w) in ch.similarities.iter().zip(&ch.weights) {
                        assert!(s.is_finite() && s.abs() <= 1.0 + 1e-6, "similarity {s}");
                        sum += s + alpha * w.ln();
                    }
                    assert_eq!(ch.score, sum / ch.similarities.len() as f64, "chain {:?}", ch.phrases);
                    chains += 1;
                }
            }
        }
    }
    assert!(chains >= 60, "only {chains} chains explained");
    assert!(shared > 0 && unshared > 0, "trees with shared levels {shared}, without {unshared}");
}
