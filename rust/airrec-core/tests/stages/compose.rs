//! Composition (docs/online-path.md §4): multi-head attention over chain nodes, evidence and the
//! null slot, the output projection and the score head, against hand computations and an f64
//! reference written from the contract.

use airrec_core::testing::{Composition, Fixture, Rng};
use airrec_core::{Candidates, Engine, Scratch, UserTree};
use serde_json::json;

use crate::common::{close, close_slices, engine_with, small};

/// One attention slot of the reference: vector (`None` for the null slot), weight, type.
struct RefSlot {
    z: Option<Vec<f32>>,
    w: f64,
    ty: usize,
}

struct RefOut {
    u: Vec<f64>,
    score: f64,
    /// Attention per slot, mean over heads.
    att: Vec<f64>,
}

/// docs/online-path.md §4, literally, in f64.
fn reference(c: &Composition, x: &[f32], slots: &[RefSlot]) -> RefOut {
    let (d, a, h) = (c.dim, c.attn_dim, c.n_heads);
    let dk = a / h;
    let mat = |z: &[f32], w: &[f32], cols: usize| -> Vec<f64> {
        (0..cols).map(|j| (0..z.len()).map(|i| z[i] as f64 * w[i * cols + j] as f64).sum()).collect()
    };
    let q = mat(x, &c.wq, a);
    let kv: Vec<(Vec<f64>, Vec<f64>)> = slots
        .iter()
        .map(|s| {
            let (mut k, mut v) = match &s.z {
                Some(z) => (mat(z, &c.wk, a), mat(z, &c.wv, a)),
                None => (vec![0.0; a], vec![0.0; a]),
            };
            for j in 0..a {
                k[j] += c.type_key[s.ty * a + j] as f64;
                v[j] += c.type_value[s.ty * a + j] as f64;
            }
            (k, v)
        })
        .collect();
    let mut concat = vec![0.0; a];
    let mut att = vec![0.0; slots.len()];
    for hh in 0..h {
        let r = hh * dk..(hh + 1) * dk;
        let logits: Vec<f64> = slots
            .iter()
            .zip(&kv)
            .map(|(s, (k, _))| {
                let qk: f64 = r.clone().map(|j| q[j] * k[j]).sum();
                qk / (dk as f64).sqrt() + c.weight_bias[hh] as f64 * s.w.ln()
            })
            .collect();
        let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
        let z: f64 = e.iter().sum();
        for (j, (_, v)) in kv.iter().enumerate() {
            let p = e[j] / z;
            att[j] += p / h as f64;
            for i in r.clone() {
                concat[i] += p * v[i];
            }
        }
    }
    let u: Vec<f64> = (0..d).map(|i| c.bo[i] as f64 + (0..a).map(|j| concat[j] * c.wo[j * d + i] as f64).sum::<f64>()).collect();
    let score = c.score_bias[0] as f64
        + (0..d).map(|i| c.score_w_out[i] as f64 * u[i] + c.score_w_inter[i] as f64 * u[i] * x[i] as f64).sum::<f64>();
    RefOut { u, score, att }
}

fn score_head(c: &Composition, u: &[f32], x: &[f32]) -> f64 {
    c.score_bias[0] as f64
        + (0..c.dim).map(|i| c.score_w_out[i] as f64 * u[i] as f64 + c.score_w_inter[i] as f64 * (u[i] * x[i]) as f64).sum::<f64>()
}

/// d = 6, a = 4, H = 2, depth 3, random weights everywhere; nodes and items spread randomly.
fn random_fixture(seed: u64) -> Fixture {
    random_fixture_heads(seed, 4, 2)
}

/// [`random_fixture`] with attention dimension `attn_dim` over `heads` heads.
fn random_fixture_heads(seed: u64, attn_dim: usize, heads: usize) -> Fixture {
    let mut rng = Rng::new(seed);
    let mut f = Fixture::new(6);
    let v = |rng: &mut Rng| (0..6).map(|_| rng.normal()).collect::<Vec<f64>>();
    let r0 = f.node(None, "r0", &v(&mut rng));
    let r1 = f.node(None, "r1", &v(&mut rng));
    let a = f.node(Some(r0), "a", &v(&mut rng));
    let b = f.node(Some(r0), "b", &v(&mut rng));
    let c = f.node(Some(r1), "c", &v(&mut rng));
    let a1 = f.node(Some(a), "a1", &v(&mut rng));
    let a2 = f.node(Some(a), "a2", &v(&mut rng));
    let c1 = f.node(Some(c), "c1", &v(&mut rng));
    for leaves in [vec![a1], vec![a2, b], vec![c1], vec![b], vec![a1, c1], vec![a2]] {
        f.item(&v(&mut rng), 0, &leaves);
    }
    f.composition = Some(Composition::random(6, attn_dim, heads, 3, seed));
    f
}

fn unit_vector(rng: &mut Rng, d: usize) -> Vec<f32> {
    airrec_core::testing::unit(&(0..d).map(|_| rng.normal()).collect::<Vec<_>>())
}

/// The reference slots of the engine's explanation (chain nodes once each, evidence, null).
fn slots_of(e: &Engine, t: &UserTree, x: &[f32]) -> Vec<RefSlot> {
    let b = e.bundle();
    let max_depth = b.dims.max_depth;
    let ex = e.explain(t, Candidates::Vectors(x)).unwrap();
    let mut slots = Vec::new();
    let mut seen = Vec::new();
    for ch in &ex.chains {
        for (k, &n) in ch.nodes.iter().enumerate() {
            if !seen.contains(&n) {
                seen.push(n);
                slots.push(RefSlot { z: Some(b.node_vector(n).to_vec()), w: ch.weights[k], ty: b.trie.depth(n) as usize - 1 });
            }
        }
    }
    for ev in &ex.evidence {
        slots.push(RefSlot { z: Some(b.item_vector(ev.item).to_vec()), w: ev.weight, ty: max_depth });
    }
    slots.push(RefSlot { z: None, w: 1.0, ty: max_depth + 1 });
    slots
}

#[test]
fn empty_history_attends_to_the_null_slot_alone() {
    let f = random_fixture(1);
    let c = f.composition();
    let (_d, e) = engine_with(&f, json!({}));
    let null = c.max_depth + 1;
    // u = bo + type_value[null] @ wo
    let want: Vec<f64> = (0..c.dim)
        .map(|i| {
            c.bo[i] as f64 + (0..c.attn_dim).map(|j| c.type_value[null * c.attn_dim + j] as f64 * c.wo[j * c.dim + i] as f64).sum::<f64>()
        })
        .collect();
    assert!(want.iter().any(|v| v.abs() > 0.05), "a test that could fail");
    let mut rng = Rng::new(2);
    for t in [e.new_tree(), e.build_tree(&[], &[], &[]).unwrap()] {
        for _ in 0..3 {
            let x = unit_vector(&mut rng, 6);
            let u = e.intent_vectors(&t, Candidates::Vectors(&x)).unwrap();
            close_slices(&u, &want, 1e-5);
            let s = e.scores(&t, Candidates::Vectors(&x)).unwrap();
            close(s[0] as f64, score_head(&c, &u, &x), 1e-5);
            let ex = e.explain(&t, Candidates::Vectors(&x)).unwrap();
            assert!(ex.chains.is_empty() && ex.evidence.is_empty());
            close(ex.null_attention as f64, 1.0, 1e-6);
        }
        // Bundle items too, and every item gets the same vector.
        let u = e.intent_vectors(&t, Candidates::Items(&[0, 3, 5])).unwrap();
        for row in u.chunks(6) {
            close_slices(row, &want, 1e-5);
        }
    }
}

#[test]
fn hand_computed_single_slot_attention() {
    // d = a = 2, one head, identity projections, no type offsets, no weight bias:
    // slots = [root (1, 0)], null. For x = (1, 0): logit_root = 1/sqrt(2), logit_null = 0.
    let mut f = Fixture::new(2);
    let r = f.node(None, "r", &[1.0, 0.0]);
    f.item(&[0.0, 1.0], 0, &[r]);
    let mut c = Composition::zeros(2, 2, 1, 1);
    c.wq = vec![1.0, 0.0, 0.0, 1.0];
    c.wk = c.wq.clone();
    c.wv = c.wq.clone();
    c.wo = c.wq.clone();
    c.score_w_out = vec![1.0, 0.0];
    f.composition = Some(c.clone());
    let (_d, e) = engine_with(&f, json!({"max_evidence": 0}));
    let t = e.build_tree(&[0], &[0], &[0.0]).unwrap();
    let x = [1.0f32, 0.0];
    let p = 1.0 / (1.0 + (-std::f64::consts::FRAC_1_SQRT_2).exp()); // 0.66976...
    close(p, 0.669_761_5, 1e-6);
    let u = e.intent_vectors(&t, Candidates::Vectors(&x)).unwrap();
    close_slices(&u, &[p, 0.0], 1e-6);
    close(e.scores(&t, Candidates::Vectors(&x)).unwrap()[0] as f64, p, 1e-6);
    let ex = e.explain(&t, Candidates::Vectors(&x)).unwrap();
    close(ex.chains[0].attention[0] as f64, p, 1e-6);
    close(ex.null_attention as f64, 1.0 - p, 1e-6);
    // For x = (0, 1) the root's key is orthogonal: both logits 0, attention 1/2 each.
    let x = [0.0f32, 1.0];
    let u = e.intent_vectors(&t, Candidates::Vectors(&x)).unwrap();
    close_slices(&u, &[0.5, 0.0], 1e-6);

    // The weight bias adds weight_bias * ln(w) to the logit: two events, the root reached by
    // one of them (w = 1/2), a bias of 2 gives the root logit 1/sqrt(2) + 2 ln(1/2).
    let mut f2 = f.clone();
    f2.item(&[0.0, 1.0], 0, &[]); // no paths
    let mut c2 = c.clone();
    c2.weight_bias = vec![2.0];
    f2.composition = Some(c2);
    let (_d2, e2) = engine_with(&f2, json!({"max_evidence": 0, "cold_start_paths": 0, "decay_lambda": 0.0}));
    let t2 = e2.build_tree(&[0, 1], &[0, 0], &[0.0, 0.0]).unwrap();
    let l = std::f64::consts::FRAC_1_SQRT_2 + 2.0 * 0.5f64.ln();
    let p2 = 1.0 / (1.0 + (-l).exp());
    let u = e2.intent_vectors(&t2, Candidates::Vectors(&[1.0, 0.0])).unwrap();
    close_slices(&u, &[p2, 0.0], 1e-6);

    // Type offsets: a key offset on the null type shifts attention away from the root, a value
    // offset on the root's type (depth 1 -> type 0) adds to u.
    let mut c3 = c.clone();
    c3.type_key = vec![0.0, 0.0, 0.0, 0.0, 3.0, 0.0]; // types 0 (depth 1), 1 (evidence), 2 (null)
    c3.type_value = vec![0.0, 0.5, 0.0, 0.0, 0.0, 0.0];
    let mut f3 = f.clone();
    f3.composition = Some(c3);
    let (_d3, e3) = engine_with(&f3, json!({"max_evidence": 0}));
    let t3 = e3.build_tree(&[0], &[0], &[0.0]).unwrap();
    // logits: root 1/sqrt(2), null = q . type_key[null] / sqrt(2) = 3/sqrt(2).
    let p3 = 1.0 / (1.0 + (3.0 * std::f64::consts::FRAC_1_SQRT_2 - std::f64::consts::FRAC_1_SQRT_2).exp());
    let u = e3.intent_vectors(&t3, Candidates::Vectors(&[1.0, 0.0])).unwrap();
    close_slices(&u, &[p3, 0.5 * p3], 1e-6);
}

#[test]
fn engine_matches_the_reference_on_random_weights() {
    // The general attention body at small widths (with `a` a multiple of 8 the AVX2 kernels
    // run, otherwise the portable ones; 3 heads), and the compiled bodies at widths 32, 64 and
    // 128 (96: the general body at a large width). compose.rs's unit test pins the two bodies
    // to the same bits for every compiled shape.
    let shapes = [(4, 2), (4, 1), (6, 3), (8, 4), (16, 8), (6, 2), (32, 4), (64, 8), (128, 1), (64, 2), (96, 3)];
    for (seed, &(a, heads)) in shapes.iter().enumerate() {
        let seed = seed as u64;
        let f = random_fixture_heads(seed, a, heads);
        let c = f.composition();
        let (_d, e) = engine_with(&f, json!({"beam_width": 2, "max_chains": 2, "max_evidence": 3, "walk_alpha": 0.3}));
        let mut rng = Rng::new(seed + 100);
        let n = 8;
        let items: Vec<i64> = (0..n).map(|_| rng.below(6) as i64).collect();
        let ts: Vec<f64> = (0..n).map(|k| k as f64 + rng.uniform()).collect();
        let t = e.build_tree(&items, &vec![0; n], &ts).unwrap();
        let mut slots_seen = 0;
        for _ in 0..5 {
            let x = unit_vector(&mut rng, 6);
            let slots = slots_of(&e, &t, &x);
            slots_seen = slots_seen.max(slots.len());
            let r = reference(&c, &x, &slots);
            let u = e.intent_vectors(&t, Candidates::Vectors(&x)).unwrap();
            close_slices(&u, &r.u, 2e-5);
            let s = e.scores(&t, Candidates::Vectors(&x)).unwrap();
            close(s[0] as f64, r.score, 2e-5);
            let ex = e.explain(&t, Candidates::Vectors(&x)).unwrap();
            close(ex.score as f64, r.score, 2e-5);
            close(*r.att.last().unwrap(), ex.null_attention as f64, 1e-5);
            let n_nodes = slots.len() - ex.evidence.len() - 1;
            for (j, ev) in ex.evidence.iter().enumerate() {
                close(ev.attention as f64, r.att[n_nodes + j], 1e-5);
            }
        }
        assert!(slots_seen >= 5, "chains and evidence were exercised");
    }
}

#[test]
fn scores_are_the_score_head_of_the_intent_vectors() {
    let f = random_fixture(7);
    let c = f.composition();
    let (_d, e) = engine_with(&f, json!({}));
    let t = e.build_tree(&[0, 1, 2, 4], &[0; 4], &[0.0, 1.0, 2.0, 3.0]).unwrap();
    let items: Vec<u32> = (0..6).collect();
    let s = e.scores(&t, Candidates::Items(&items)).unwrap();
    let u = e.intent_vectors(&t, Candidates::Items(&items)).unwrap();
    let mut spread = 0.0f64;
    for (k, &item) in items.iter().enumerate() {
        let x = e.bundle().item_vector(item);
        close(s[k] as f64, score_head(&c, &u[k * 6..(k + 1) * 6], x), 2e-5);
        spread = spread.max((s[k] - s[0]).abs() as f64);
    }
    assert!(spread > 1e-3, "candidates get different scores");
    // Bundle items and the same vectors passed as raw candidates agree.
    let raw: Vec<f32> = items.iter().flat_map(|&i| e.bundle().item_vector(i).to_vec()).collect();
    let s_raw = e.scores(&t, Candidates::Vectors(&raw)).unwrap();
    for (a, b) in s.iter().zip(&s_raw) {
        close(*a as f64, *b as f64, 1e-6);
    }
    let u_raw = e.intent_vectors(&t, Candidates::Vectors(&raw)).unwrap();
    for (a, b) in u.iter().zip(&u_raw) {
        close(*a as f64, *b as f64, 1e-6);
    }
}

#[test]
fn scores_on_one_thread_across_engines_and_trees_are_a_fresh_scratchs() {
    // `scores` and `intent_vectors` reuse a per-thread scratch: alternate engines of other
    // widths (d = 6 with a = 4, d = 6 with a = 64, the small synthetic bundle's d = 16) and
    // trees of other sizes on this thread; every call gives a fresh scratch's bits.
    let (_d1, e1) = engine_with(&random_fixture_heads(1, 4, 2), json!({}));
    let (_d2, e2) = engine_with(&random_fixture_heads(2, 64, 4), json!({}));
    let e3 = small();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut rng = Rng::new(5);
    for round in 0..3 {
        for (k, e) in [&e1, &e2, e3].into_iter().enumerate() {
            let n_events = 2 + 3 * ((round + k) % 3);
            let items: Vec<i64> = (0..n_events).map(|_| rng.below(6) as i64).collect();
            let t = e.build_tree(&items, &vec![0; n_events], &(0..n_events).map(|i| i as f64).collect::<Vec<_>>()).unwrap();
            let x: Vec<f32> = (0..2 * e.dim()).map(|_| rng.normal() as f32).collect();
            let (mut want, mut want_u) = (vec![0.0f32; 2], vec![0.0f32; 2 * e.dim()]);
            e.scores_into(&t, Candidates::Vectors(&x), &mut want, &mut Scratch::default()).unwrap();
            e.intent_vectors_into(&t, Candidates::Vectors(&x), &mut want_u, &mut Scratch::default()).unwrap();
            assert_eq!(bits(&e.scores(&t, Candidates::Vectors(&x)).unwrap()), bits(&want), "round {round} engine {k}");
            assert_eq!(bits(&e.intent_vectors(&t, Candidates::Vectors(&x)).unwrap()), bits(&want_u), "round {round} engine {k}");
        }
    }
}
