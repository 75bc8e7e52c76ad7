//! A valid usearch index file of 64 vectors, patched at fuzzer-chosen offsets: whatever
//! `index_file::validate` accepts, usearch must then view and search without reading out of
//! bounds (the address sanitizer checks), and every key it returns must be one of the 64.
#![no_main]

use std::sync::OnceLock;

use airrec_core::index::VectorIndex;
use airrec_core::index_file::Expected;
use airrec_core::testing::{unit, write_index, IndexSpec, Rng};
use libfuzzer_sys::fuzz_target;

const N: usize = 64;
const DIM: usize = 8;

struct Base {
    vectors: Vec<f32>,
    bytes: Vec<u8>,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut rng = Rng::new(7);
        let vectors: Vec<f32> = (0..N).flat_map(|_| unit(&(0..DIM).map(|_| rng.normal()).collect::<Vec<_>>())).collect();
        let dir = tempfile::tempdir().expect("tmp dir");
        let path = dir.path().join("index.usearch");
        let keys: Vec<u64> = (0..N as u64).collect();
        write_index(&path, &keys, &vectors, DIM, &IndexSpec::default()).expect("index");
        Base { vectors, bytes: std::fs::read(&path).expect("read") }
    })
}

fuzz_target!(|data: &[u8]| {
    let b = base();
    let mut bytes = b.bytes.clone();
    // Input: (u32 little-endian offset, byte) patches; a final odd tail sets the length.
    let mut chunks = data.chunks_exact(5);
    for c in &mut chunks {
        let at = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize % bytes.len();
        bytes[at] = c[4];
    }
    if let [cut, ..] = chunks.remainder() {
        bytes.truncate(bytes.len() * (*cut as usize) / 255);
    }
    let vector = |key: u64| usize::try_from(key).ok().filter(|&k| k < N).map(|k| &b.vectors[k * DIM..(k + 1) * DIM]);
    let expected = Expected { what: "a test vector".into(), dim: DIM, n: N, vector: &vector };
    let mut map = memmap2::MmapMut::map_anon(bytes.len().max(1)).expect("anon map");
    map[..bytes.len()].copy_from_slice(&bytes);
    let map = map.make_read_only().expect("read-only");
    if bytes.len() != map.len() {
        return; // an empty file cannot be mapped at length 0; validate refuses it anyway
    }
    if let Ok(index) = VectorIndex::from_map(std::path::Path::new("fuzz.usearch"), map, &expected, 2, 16) {
        for q in 0..4 {
            let (keys, sims) = index.search(&b.vectors[q * DIM..(q + 1) * DIM], 10).expect("search");
            assert!(keys.iter().all(|&k| (k as usize) < N), "{keys:?}");
            assert!(sims.iter().all(|s| s.is_finite()), "{sims:?}");
        }
    }
});
