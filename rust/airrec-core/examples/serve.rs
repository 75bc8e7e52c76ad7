//! How a Rust service uses airrec-core directly: load a bundle once, build and update users'
//! intent trees from their events, score candidates, explain a score, retrieve top-k, and run a
//! batch.
//!
//! ```text
//! cargo run --release -p airrec-core --example serve                 # synthetic bundle
//! cargo run --release -p airrec-core --example serve -- path/to/bundle
//! ```
//!
//! Without a path, a small synthetic bundle (20k trie nodes, 5k items) is written into a
//! temporary directory first with `airrec_core::testing` (a dev-only feature; a service only
//! needs `Engine`, `LoadOptions`, `Candidates`, `Histories`).

use std::error::Error as StdError;
use std::path::PathBuf;
use std::time::Instant;

use airrec_core::testing::SyntheticSpec;
use airrec_core::{Candidates, Engine, Error, Histories, LoadOptions, Scratch};

fn main() -> Result<(), Box<dyn StdError>> {
    // 1. Load the bundle (checks the format version, every file's size and sha256, shapes,
    //    ranges and the trie; any problem is a typed `Error`, never a panic).
    let mut _tmp = None;
    let path = match std::env::args().nth(1) {
        Some(p) => PathBuf::from(p),
        None => {
            let dir = tempfile::tempdir()?;
            let t = Instant::now();
            let spec = SyntheticSpec { n_nodes: 20_000, n_items: 5_000, ..SyntheticSpec::default() };
            spec.write(dir.path())?;
            println!("wrote a synthetic bundle ({} nodes, {} items) in {:.1?}", spec.n_nodes, spec.n_items, t.elapsed());
            let p = dir.path().to_path_buf();
            _tmp = Some(dir);
            p
        }
    };
    let t = Instant::now();
    let engine = Engine::load(&path, &LoadOptions::default(), None)?;
    let b = engine.bundle();
    println!("loaded {} in {:.1?}: {:?}", path.display(), t.elapsed(), b.dims);
    // Any config value can be overridden per engine (same bundle, shared, no reload).
    let engine = engine.with_overrides(&serde_json::json!({"beam_width": 4, "max_evidence": 8}))?;

    // 2. A user's history: (item id, behaviour id, timestamp). Ids are the bundle's.
    let n_items = b.n_items() as i64;
    let items: Vec<i64> = (0..20).map(|k| (n_items / 3 + 7 * k) % n_items).collect();
    let behaviours = vec![0i64; items.len()];
    let timestamps: Vec<f64> = (0..items.len()).map(|k| k as f64).collect();
    let mut tree = engine.build_tree(&items, &behaviours, &timestamps)?;
    // A new event arrives: update the tree in place (same result as rebuilding).
    engine.add_event(&mut tree, items[3], 0, 20.0)?;
    println!("user tree: {} events, {} intent nodes", tree.n_events(), tree.nodes().len());

    // 3. Score candidates (bundle items; raw vectors of new items work too).
    let candidates: Vec<u32> = (0..50).map(|k| ((n_items / 3 + 13 * k) % n_items) as u32).collect();
    let scores = engine.scores(&tree, Candidates::Items(&candidates))?;
    let mut ranked: Vec<(u32, f32)> = candidates.iter().copied().zip(scores).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("top candidates: {:?}", &ranked[..5]);
    // The hot path without allocation: reuse a Scratch and an output buffer per thread.
    let mut scratch = Scratch::default();
    let mut out = vec![0.0f32; candidates.len()];
    let t = Instant::now();
    for _ in 0..100 {
        engine.scores_into(&tree, Candidates::Items(&candidates), &mut out, &mut scratch)?;
    }
    println!("scores_into, {} candidates: {:.1?} per request", candidates.len(), t.elapsed() / 100);

    // 4. Why did the best candidate score so? Chains of intents, evidence events, attention.
    let best = ranked[0].0;
    let ex = engine.explain(&tree, Candidates::Items(&[best]))?;
    println!("explain item {best}: score {:.4}, null attention {:.3}", ex.score, ex.null_attention);
    for c in &ex.chains {
        println!("  chain {:<40} walk score {:.3}", c.phrases.join(" > "), c.score);
        for k in 0..c.nodes.len() {
            println!(
                "    node {:>6} {:<12} w {:.3} sim {:+.3} attention {:.3}",
                c.nodes[k], c.phrases[k], c.weights[k], c.similarities[k], c.attention[k]
            );
        }
    }
    for ev in &ex.evidence {
        println!(
            "  evidence: event {} (item {}, t {}) weight {:.3} sim {:+.3} attention {:.3}",
            ev.event, ev.item, ev.timestamp, ev.weight, ev.similarity, ev.attention
        );
    }

    // 5. Top-k items of domain 0: the profile vector's nearest items, re-scored target-aware.
    let (ids, top) = engine.retrieve(&tree, 0, 5, 100, true)?;
    println!("retrieve (domain {:?}): {:?}", b.domains[0], ids.iter().zip(&top).collect::<Vec<_>>());
    // Intents nearest to an item's vector (e.g. for an item the LLM has not seen yet).
    let (leaves, sims) = engine.nearest_intents(b.item_vector(best), 3)?;
    for (l, s) in leaves.iter().zip(sims) {
        println!("  nearest intent {:.3}  {}", s, b.trie.path_text(*l));
    }

    // 6. A batch: users' histories as CSR, candidates [users, C], scored in parallel (rayon).
    let users = 256;
    let per_user = 30;
    let offsets: Vec<i64> = (0..=users).map(|u| (u * per_user) as i64).collect();
    let b_items: Vec<i64> = (0..users * per_user).map(|k| (k as i64 * 7919) % n_items).collect();
    let b_behaviours = vec![0i64; b_items.len()];
    let b_times: Vec<f64> = (0..b_items.len()).map(|k| (k % per_user) as f64).collect();
    let histories = Histories { offsets: &offsets, items: &b_items, behaviours: &b_behaviours, timestamps: &b_times };
    let n_cands = 100;
    let b_cands: Vec<u32> = (0..users * n_cands).map(|k| ((k as i64 * 104_729) % n_items) as u32).collect();
    let mut b_out = vec![0.0f32; users * n_cands];
    let t = Instant::now();
    engine.scores_batch(histories, &b_cands, n_cands, &mut b_out)?;
    println!("scores_batch: {users} users x {n_cands} candidates in {:.1?} ({} threads)", t.elapsed(), rayon::current_num_threads());

    // 7. Errors are typed: map them to your service's responses.
    match engine.scores(&tree, Candidates::Items(&[n_items as u32])) {
        Err(Error::UnknownItem { item, n_items }) => println!("refused item {item} (the bundle has {n_items})"),
        other => println!("unexpected: {other:?}"),
    }
    Ok(())
}
