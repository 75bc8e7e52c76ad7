//! One request shape, repeated, for instruction counts and line-level profiles under callgrind
//! (the Criterion bench measures time; this measures work, which machine load does not move).
//!
//! ```text
//! cargo run --release -p airrec-core --example profile_request -- write BUNDLE_DIR   # once
//! CARGO_PROFILE_RELEASE_DEBUG=true cargo build --release -p airrec-core --example profile_request
//! valgrind --tool=callgrind target/release/examples/profile_request BUNDLE_DIR 40 [EVENTS CANDIDATES]
//! ```
//!
//! The run warms up on five requests (page faults, lazy statics) and then scores `n`: the
//! instructions of `n` requests are the total of a run with `n` minus that of a run with 0.
//! It prints one JSON line: a checksum of the scores (equal across engine changes that must
//! not change results, on the same bundle directory: `write` builds the usearch indexes with
//! several threads, so two writes can give some items other nearest leaves for their cold
//! start, and another checksum) and the median / p90 wall time per request.
//! `scripts/engine_scaling.py` runs it over shapes and writes
//! `benches/results/engine-scaling.json`. With
//! `AIRREC_PROFILE_STATS=1` it first prints the first user's tree size, roots and mean slots
//! per candidate (what a request's work is made of); `AIRREC_PROFILE_OVERRIDES` takes engine
//! settings as JSON, to measure what each stage costs.

use airrec_core::testing::{synthetic_candidates, synthetic_histories, SyntheticSpec};
use airrec_core::{Candidates, Engine, LoadOptions, Scratch};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("write") {
        let dir = args.get(1).expect("write BUNDLE_DIR");
        SyntheticSpec::default().write(std::path::Path::new(dir)).expect("write the synthetic bundle");
        return;
    }
    let (path, n) = (&args[0], args[1].parse::<usize>().expect("n requests"));
    let events = args.get(2).map_or(50, |s| s.parse().expect("events"));
    let n_cands = args.get(3).map_or(200, |s| s.parse().expect("candidates"));
    let options = LoadOptions { verify_checksums: false, ..LoadOptions::default() };
    // Engine settings for stage costs (e.g. `{"beam_width": 1, "max_evidence": 0}`).
    let overrides = std::env::var("AIRREC_PROFILE_OVERRIDES").ok().map(|s| serde_json::from_str(&s).expect("overrides JSON"));
    let engine = Engine::load(path, &options, overrides.as_ref()).expect("load the bundle");
    let n_items = engine.bundle().n_items();
    let users = n + 5;
    let h = synthetic_histories(users, events, n_items, engine.config().n_behaviours(), 1);
    let cands = synthetic_candidates(users, n_cands, n_items, 2);
    let mut scratch = Scratch::default();
    let mut out = vec![0.0f32; n_cands];
    let mut checksum = 0.0f32;
    if std::env::var_os("AIRREC_PROFILE_STATS").is_some() {
        // The work per request: tree size, roots, and what the walk selects per candidate.
        let (items, behaviours, ts) = h.user(0);
        let tree = engine.build_tree(items, behaviours, ts).expect("tree");
        let ctx = engine.contexts(&tree, Candidates::Items(&cands[..n_cands])).expect("contexts");
        let slots: usize = ctx.iter().map(|c| c.chains.iter().map(Vec::len).sum::<usize>() + c.evidence.len()).sum();
        let roots = tree.nodes().iter().filter(|n| n.parent.is_none()).count();
        eprintln!(
            "nodes {} roots {roots} events {} mean slots/candidate {:.1}",
            tree.nodes().len(),
            tree.n_events(),
            slots as f64 / n_cands as f64
        );
    }
    let mut times = Vec::with_capacity(n);
    for u in 0..users {
        let started = std::time::Instant::now();
        let (items, behaviours, ts) = h.user(u);
        let tree = engine.build_tree(items, behaviours, ts).expect("tree");
        engine.scores_into(&tree, Candidates::Items(&cands[u * n_cands..(u + 1) * n_cands]), &mut out, &mut scratch).expect("scores");
        if u >= 5 {
            times.push(started.elapsed().as_secs_f64() * 1e6);
        }
        checksum += out.iter().sum::<f32>();
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times.get(((times.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
    println!("{{\"checksum\": {checksum}, \"requests\": {n}, \"p50_us\": {:.1}, \"p90_us\": {:.1}}}", at(0.5), at(0.9));
}
