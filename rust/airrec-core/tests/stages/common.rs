//! Helpers shared by the stage tests.

use std::path::Path;
use std::sync::OnceLock;

use airrec_core::testing::{Fixture, SyntheticSpec};
use airrec_core::{Engine, LoadOptions};
use tempfile::TempDir;

pub fn load(dir: &Path) -> airrec_core::Result<Engine> {
    Engine::load(dir, &LoadOptions::default(), None)
}

/// Writes `f` into a fresh temp dir and loads it with config overrides (the dir lives as long
/// as the returned guard).
pub fn engine_with(f: &Fixture, overrides: serde_json::Value) -> (TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    f.write(dir.path()).unwrap();
    let e = Engine::load(dir.path(), &LoadOptions::default(), Some(&overrides)).unwrap();
    (dir, e)
}

/// One small synthetic bundle (seed 11) shared by every test of the binary.
pub fn small() -> &'static Engine {
    static CELL: OnceLock<(TempDir, Engine)> = OnceLock::new();
    &CELL
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            SyntheticSpec::small(11).write(dir.path()).unwrap();
            let e = load(dir.path()).unwrap();
            (dir, e)
        })
        .1
}

#[track_caller]
pub fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{a} != {b} (tol {tol})");
}

#[track_caller]
pub fn close_slices(a: &[f32], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (k, (&x, &y)) in a.iter().zip(b).enumerate() {
        assert!((x as f64 - y).abs() <= tol * (1.0 + y.abs()), "index {k}: {x} != {y} (tol {tol})\n{a:?}\n{b:?}");
    }
}

pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}
