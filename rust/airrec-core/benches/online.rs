//! Criterion benchmarks of the online path at the reference shape: a 100k-node trie of depth 3,
//! 40k items, d = 64, 4 heads, 3 paths per item, users with 50 events, 200 candidates.
//!
//! ```text
//! cargo bench -p airrec-core --bench online              # measure (about a minute plus setup)
//! cargo bench -p airrec-core --bench online -- --test    # run each bench once, on a small bundle
//! AIRREC_BENCH_BUNDLE=path/to/bundle cargo bench -p airrec-core --bench online   # your bundle
//! ```
//!
//! The synthetic bundle is generated into a temporary directory once per run (index building
//! dominates: tens of seconds on two cores).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use airrec_core::testing::{synthetic_candidates, synthetic_histories, SyntheticHistories, SyntheticSpec};
use airrec_core::{Candidates, Engine, LoadOptions, Scratch, UserTree};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const EVENTS_PER_USER: usize = 50;
const CANDIDATES: usize = 200;
const BATCH_USERS: usize = 64;

struct Setup {
    _dir: Option<tempfile::TempDir>,
    engine: Engine,
    histories: SyntheticHistories,
    /// `[BATCH_USERS, CANDIDATES]`
    candidates: Vec<u32>,
    trees: Vec<UserTree>,
}

/// `--test` (quick check) runs every bench once: a small bundle is enough for that.
fn quick_check() -> bool {
    std::env::args().any(|a| a == "--test")
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let started = Instant::now();
        let (dir, path): (Option<tempfile::TempDir>, PathBuf) = match std::env::var_os("AIRREC_BENCH_BUNDLE") {
            Some(p) => (None, PathBuf::from(p)),
            None => {
                let spec = if quick_check() {
                    SyntheticSpec { n_nodes: 3_000, n_items: 1_000, ..SyntheticSpec::default() }
                } else {
                    SyntheticSpec::default()
                };
                let dir = tempfile::tempdir().expect("temp dir");
                spec.write(dir.path()).expect("write the synthetic bundle");
                eprintln!("generated {spec:?} in {:.1?}", started.elapsed());
                let path = dir.path().to_path_buf();
                (Some(dir), path)
            }
        };
        let loading = Instant::now();
        let engine = Engine::load(&path, &LoadOptions::default(), None).expect("load the bundle");
        eprintln!("loaded {} in {:.1?}: {:?}", path.display(), loading.elapsed(), engine.bundle().dims);
        let n_items = engine.bundle().n_items();
        let histories = synthetic_histories(BATCH_USERS, EVENTS_PER_USER, n_items, engine.config().n_behaviours(), 1);
        let candidates = synthetic_candidates(BATCH_USERS, CANDIDATES, n_items, 2);
        let trees = (0..BATCH_USERS)
            .map(|u| {
                let (items, behaviours, ts) = histories.user(u);
                engine.build_tree(items, behaviours, ts).expect("tree")
            })
            .collect();
        Setup { _dir: dir, engine, histories, candidates, trees }
    })
}

fn online(c: &mut Criterion) {
    let s = setup();
    let e = &s.engine;
    let d = e.dim();
    let user_cands = |u: usize| &s.candidates[u * CANDIDATES..(u + 1) * CANDIDATES];
    let mut next_user = {
        let mut u = 0usize;
        move || {
            u = (u + 1) % BATCH_USERS;
            u
        }
    };

    let mut g = c.benchmark_group("online");

    g.throughput(Throughput::Elements(EVENTS_PER_USER as u64));
    g.bench_function("build_tree/50_events", |b| {
        b.iter(|| {
            let (items, behaviours, ts) = s.histories.user(next_user());
            e.build_tree(items, behaviours, ts).unwrap()
        })
    });
    g.bench_function("add_event/into_50_event_tree", |b| {
        let (items, behaviours, ts) = s.histories.user(0);
        b.iter_batched_ref(
            || s.trees[0].clone(),
            |t| e.add_event(t, items[7], behaviours[7], ts[EVENTS_PER_USER - 1] + 1.0).unwrap(),
            BatchSize::SmallInput,
        )
    });

    g.throughput(Throughput::Elements(CANDIDATES as u64));
    let mut scratch = Scratch::default();
    let mut out = vec![0.0f32; CANDIDATES];
    g.bench_function("scores/200_candidates", |b| {
        b.iter(|| {
            let u = next_user();
            e.scores_into(&s.trees[u], Candidates::Items(user_cands(u)), &mut out, &mut scratch).unwrap();
            out[0]
        })
    });
    g.bench_function("request/build_tree+scores_200", |b| {
        b.iter(|| {
            let u = next_user();
            let (items, behaviours, ts) = s.histories.user(u);
            let t = e.build_tree(items, behaviours, ts).unwrap();
            e.scores_into(&t, Candidates::Items(user_cands(u)), &mut out, &mut scratch).unwrap();
            out[0]
        })
    });
    let mut vectors = vec![0.0f32; CANDIDATES * d];
    g.bench_function("intent_vectors/200_candidates", |b| {
        b.iter(|| {
            let u = next_user();
            e.intent_vectors_into(&s.trees[u], Candidates::Items(user_cands(u)), &mut vectors, &mut scratch).unwrap();
            vectors[0]
        })
    });

    g.throughput(Throughput::Elements((BATCH_USERS * CANDIDATES) as u64));
    let mut batch_out = vec![0.0f32; BATCH_USERS * CANDIDATES];
    g.bench_function("scores_batch/64_users_x_200", |b| {
        b.iter(|| {
            e.scores_batch(s.histories.as_histories(), &s.candidates, CANDIDATES, &mut batch_out).unwrap();
            batch_out[0]
        })
    });

    g.throughput(Throughput::Elements(1));
    g.bench_function("retrieve/k10_pool200_rerank", |b| b.iter(|| e.retrieve(&s.trees[next_user()], 0, 10, 200, true).unwrap()));
    g.bench_function("retrieve/k10_pool200_index_only", |b| b.iter(|| e.retrieve(&s.trees[next_user()], 0, 10, 200, false).unwrap()));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = online
}
criterion_main!(benches);
