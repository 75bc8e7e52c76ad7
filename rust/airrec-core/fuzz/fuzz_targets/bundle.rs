//! A small valid bundle with one file (or the manifest) replaced by fuzzer bytes, its sha256
//! and size re-recorded so the bytes reach the parsers: `Engine::load` must give an engine
//! or a typed error, never a crash or hang, and a loaded engine's scores, explanation and
//! retrieval must be finite and in range.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use airrec_core::testing::{replace_file, SyntheticSpec};
use airrec_core::{Candidates, Engine, LoadOptions};
use libfuzzer_sys::fuzz_target;

struct Base {
    _dir: tempfile::TempDir,
    path: PathBuf,
    files: Vec<(String, Vec<u8>)>,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir_in("/dev/shm").expect("tmp dir");
        // Tiny, so a patch lands in a structure often and an input costs little.
        let spec = SyntheticSpec { n_nodes: 40, n_items: 30, dim: 8, ..SyntheticSpec::small(3) };
        let path = spec.write(dir.path().join("b")).expect("bundle");
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&path)
            .expect("list")
            .map(|e| {
                let e = e.expect("entry");
                (e.file_name().into_string().expect("utf-8"), std::fs::read(e.path()).expect("read"))
            })
            .collect();
        files.sort();
        Base { _dir: dir, path, files }
    })
}

/// Puts back the one file an input changed, and the manifest.
fn restore(b: &Base, changed: &str) {
    for (name, bytes) in b.files.iter().filter(|(n, _)| n == changed || n == "manifest.json") {
        std::fs::write(b.path.join(name), bytes).expect("restore");
    }
}

fuzz_target!(|data: &[u8]| {
    let b = base();
    let Some((&pick, rest)) = data.split_first() else { return };
    let (name, original) = &b.files[pick as usize % b.files.len()];
    // Half the inputs patch the original bytes (offset, byte pairs), half replace them.
    let bytes = if pick & 0x80 == 0 {
        let mut bytes = original.clone();
        for c in rest.chunks_exact(3) {
            if !bytes.is_empty() {
                let at = u16::from_le_bytes([c[0], c[1]]) as usize % bytes.len();
                bytes[at] = c[2];
            }
        }
        bytes
    } else {
        rest.to_vec()
    };
    if name == "manifest.json" {
        std::fs::write(b.path.join(name), &bytes).expect("write");
    } else {
        replace_file(&b.path, name, &bytes).expect("replace");
    }
    let options = LoadOptions { verify_checksums: true, search_threads: 2 };
    if let Ok(engine) = Engine::load(&b.path, &options, None) {
        let n = engine.bundle().n_items() as i64;
        let items: Vec<i64> = (0..8).map(|i| i % n.max(1)).collect();
        if let Ok(tree) = engine.build_tree(&items, &[0; 8], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]) {
            let cands: Vec<u32> = (0..n.min(16) as u32).collect();
            let scores = engine.scores(&tree, Candidates::Items(&cands)).expect("scores");
            assert!(scores.iter().all(|s| s.is_finite()), "{scores:?}");
            if let Some(&c) = cands.first() {
                let _ = engine.explain(&tree, Candidates::Items(&[c]));
            }
            if let Ok((ids, _)) = engine.retrieve(&tree, 0, 5, 20, true) {
                assert!(ids.iter().all(|&i| (i as i64) < n), "{ids:?}");
            }
        }
    }
    restore(b, name);
});
