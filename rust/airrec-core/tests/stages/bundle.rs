//! Bundle loading: the fixture writer round-trips, and every kind of broken bundle is a typed
//! `Error` (never a panic).

use std::path::Path;

use airrec_core::testing::{edit_manifest, npy_bytes, replace_file, sha256_hex, write_index, Fixture, IndexSpec, SyntheticSpec};
use airrec_core::{Bundle, Error, LoadOptions};
use serde_json::json;
use tempfile::TempDir;

use crate::common::load;

/// Six nodes (roots 0 and 1; 2, 3 under 0; 4 under 2; 5 under 1), four items in two domains,
/// item 3 without paths.
pub fn base() -> Fixture {
    let mut f = Fixture::new(4);
    let a = f.node(None, "a", &[1.0, 0.0, 0.0, 0.0]);
    let b = f.node(None, "b", &[0.0, 1.0, 0.0, 0.0]);
    let a1 = f.node(Some(a), "a1", &[1.0, 0.5, 0.0, 0.0]);
    let a2 = f.node(Some(a), "a2", &[1.0, 0.0, 0.5, 0.0]);
    let a1x = f.node(Some(a1), "a1x", &[1.0, 0.5, 0.0, 0.5]);
    let b1 = f.node(Some(b), "b1", &[0.0, 1.0, 0.0, 0.5]);
    f.domains = vec!["books".into(), "films".into()];
    f.item(&[1.0, 0.4, 0.0, 0.4], 0, &[a1x]);
    f.item(&[1.0, 0.0, 0.4, 0.0], 0, &[a2]);
    f.item(&[0.1, 1.0, 0.0, 0.4], 1, &[b1, a1x]);
    f.item(&[0.0, 1.0, 0.0, 0.6], 1, &[]);
    f
}

fn written() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    base().write(dir.path()).unwrap();
    dir
}

fn no_checksums() -> LoadOptions {
    LoadOptions { verify_checksums: false, ..LoadOptions::default() }
}

#[track_caller]
fn bundle_error(dir: &Path, needle: &str) {
    match load(dir) {
        Err(Error::Bundle { message, .. }) => assert!(message.contains(needle), "message {message:?} lacks {needle:?}"),
        other => panic!("expected Error::Bundle containing {needle:?}, got {other:?}"),
    }
}

#[track_caller]
fn checksum_error(dir: &Path, options: &LoadOptions, needle: &str) {
    match Bundle::load(dir, options) {
        Err(Error::BundleChecksum { message, .. }) => assert!(message.contains(needle), "{message:?} lacks {needle:?}"),
        other => panic!("expected Error::BundleChecksum, got {other:?}"),
    }
}

#[test]
fn fixture_round_trips() {
    let dir = written();
    let f = base();
    let e = load(dir.path()).unwrap();
    let b = e.bundle();
    assert_eq!(b.dims.n_nodes, 6);
    assert_eq!(b.dims.n_items, 4);
    assert_eq!(b.dims.max_depth, 3);
    assert_eq!(b.dims.n_heads, 1);
    assert_eq!(b.dims.attn_dim, 4);
    assert_eq!(b.dims.path_slots, 1);
    assert_eq!(b.domains, vec!["books", "films"]);
    assert_eq!(b.config, f.config);
    assert_eq!(b.trie.phrase(4), "a1x");
    assert_eq!(b.trie.path_text(4), "a > a1 > a1x");
    assert_eq!(b.path_leaves(2), &[5, 4]);
    assert!(b.path_leaves(3).is_empty());
    assert_eq!(&*b.item_domain, &[0, 0, 1, 1]);
    assert_eq!((0..4).map(|i| b.external_ids.get(i)).collect::<Vec<_>>(), ["item-0", "item-1", "item-2", "item-3"]);
    assert_eq!((b.external_ids.find("item-2"), b.external_ids.find("item-4"), b.external_ids.find("2")), (Some(2), None, None));
    let arrays = f.arrays();
    assert_eq!(&*b.node_vectors, &arrays.node_vectors[..]);
    assert_eq!(&*b.item_vectors, &arrays.item_vectors[..]);
    assert_eq!(b.meta["fixture"], json!("airrec_core::testing::Fixture"));
}

#[test]
fn manifest_matches_the_python_layout() {
    let dir = written();
    let text = std::fs::read_to_string(dir.path().join("manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Key order as docs/online-path.md §0 lists it.
    let order = [
        "\"format\"",
        "\"format_version\"",
        "\"created_by\"",
        "\"dims\"",
        "\"domains\"",
        "\"config\"",
        "\"index\"",
        "\"files\"",
        "\"meta\"",
    ];
    let pos: Vec<usize> = order.iter().map(|k| text.find(k).unwrap_or_else(|| panic!("no {k}"))).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
    assert_eq!(m["format"], "airrec-bundle");
    assert_eq!(m["format_version"], 3);
    assert_eq!(m["index"], json!({"metric": "cos", "connectivity": 16, "expansion_add": 128, "expansion_search": 64}));
    assert_eq!(
        m["dims"],
        json!({"n_nodes": 6, "n_items": 4, "dim": 4, "attn_dim": 4, "n_heads": 1, "max_depth": 3, "path_slots": 1, "n_domains": 2})
    );
    assert_eq!(m["config"]["evidence_max_age"], serde_json::Value::Null);
    assert_eq!(m["config"]["behaviour_weights"], json!([1.0]));
    let files = m["files"].as_object().unwrap();
    let names: Vec<&str> = files.keys().map(|s| s.as_str()).collect();
    let mut expected: Vec<String> = [
        "trie_parent",
        "trie_depth",
        "trie_phrase_offsets",
        "trie_phrase_bytes",
        "item_path_offsets",
        "item_path_leaves",
        "node_vectors",
        "item_vectors",
        "item_domain",
        "item_ext_offsets",
        "item_ext_bytes",
        "compose_wq",
        "compose_wk",
        "compose_wv",
        "compose_wo",
        "compose_bo",
        "compose_type_key",
        "compose_type_value",
        "compose_weight_bias",
        "score_w_out",
        "score_w_inter",
        "score_bias",
        "fold_item_rows",
        "fold_item_kv",
        "fold_node_kv",
    ]
    .iter()
    .map(|n| format!("{n}.npy"))
    .collect();
    expected.extend(["index_items_0.usearch".into(), "index_items_1.usearch".into(), "index_leaves.usearch".into()]);
    let mut sorted_expected = expected.clone();
    sorted_expected.sort();
    let mut sorted_names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    sorted_names.sort();
    assert_eq!(sorted_names, sorted_expected);
    assert!(text.find("\"trie_parent.npy\"").unwrap() < text.find("\"index_leaves.usearch\"").unwrap());
    for (name, entry) in files {
        let bytes = std::fs::read(dir.path().join(name)).unwrap();
        assert_eq!(entry["bytes"], bytes.len() as u64, "{name}");
        assert_eq!(entry["sha256"].as_str().unwrap(), sha256_hex(&bytes), "{name}");
        if name.ends_with(".npy") {
            let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + header_len) % 64, 0, "{name}: data not 64-byte aligned");
        }
    }
}

#[test]
fn synthetic_bundle_loads_with_its_indexes() {
    let e = crate::common::small();
    let b = e.bundle();
    let spec = SyntheticSpec::small(11);
    assert_eq!((b.dims.n_nodes, b.dims.n_items, b.dims.dim, b.dims.n_heads), (spec.n_nodes, spec.n_items, spec.dim, spec.n_heads));
    assert_eq!(b.dims.max_depth, spec.depth);
    assert_eq!(b.domains, vec!["d0", "d1"]);
    // The leaf index holds exactly the trie's leaves: a leaf's own vector finds itself.
    let leaves: Vec<u32> = (0..b.dims.n_nodes as u32).filter(|&n| b.trie.is_leaf(n)).collect();
    for &leaf in leaves.iter().step_by(leaves.len() / 5) {
        let (found, sims) = e.nearest_intents(b.node_vector(leaf), 1).unwrap();
        assert_eq!(found, vec![leaf]);
        crate::common::close(sims[0] as f64, 1.0, 1e-5);
    }
}

#[test]
fn truncated_file_is_a_checksum_error() {
    let dir = written();
    let p = dir.path().join("node_vectors.npy");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 4]).unwrap();
    checksum_error(dir.path(), &LoadOptions::default(), "truncated");
    // The size is checked even when checksums are off.
    checksum_error(dir.path(), &no_checksums(), "truncated");
}

#[test]
fn flipped_byte_is_a_checksum_error() {
    let dir = written();
    let p = dir.path().join("compose_wq.npy");
    let mut bytes = std::fs::read(&p).unwrap();
    let data_offset = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    bytes[data_offset] ^= 0x01; // the lowest mantissa bit of the first value
    std::fs::write(&p, &bytes).unwrap();
    checksum_error(dir.path(), &LoadOptions::default(), "sha256");
    // With checksums off, array files are trusted (the flipped bit still gives a valid float) ...
    Bundle::load(dir.path(), &no_checksums()).unwrap();
    // An index file with a flipped byte is a checksum error with checksums on ...
    let p = dir.path().join("index_leaves.usearch");
    let clean = std::fs::read(&p).unwrap();
    let mut bytes = clean.clone();
    bytes[clean.len() / 2] ^= 0x40;
    std::fs::write(&p, &bytes).unwrap();
    let dir2 = written();
    std::fs::write(dir2.path().join("index_leaves.usearch"), &bytes).unwrap();
    checksum_error(dir2.path(), &LoadOptions::default(), "sha256");
    // ... and with checksums off (or a manifest rewritten to match), usearch never sees it
    // unchecked: every single-byte change of the file either loads an index whose searches
    // return leaves, or is a bundle error. (usearch itself segfaulted on some of these.)
    // Leaf vectors are rows 8..8 + 3 * 16 of the file: those must all be refused (the index
    // would rank by vectors other than the checksummed ones); most other loaded ones are
    // unused neighbour-slot padding.
    let vectors = 8..8 + 3 * 16;
    let (mut loaded, mut refused, mut refused_vectors) = (0, 0, 0);
    for at in 0..clean.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bytes = clean.clone();
            bytes[at] ^= flip;
            std::fs::write(&p, &bytes).unwrap();
            match Bundle::load(dir.path(), &no_checksums()) {
                Ok(b) => {
                    loaded += 1;
                    let config = b.config.clone();
                    let engine = airrec_core::Engine::from_bundle(std::sync::Arc::new(b), config).unwrap();
                    let tree = engine.build_tree(&[0, 1], &[0, 0], &[0.0, 1.0]).unwrap();
                    engine.retrieve(&tree, 0, 3, 8, true).unwrap();
                    let (keys, _) = engine.nearest_intents(&[0.5, 0.5, 0.5, 0.5], 3).unwrap();
                    assert!(keys.iter().all(|&k| [3, 4, 5].contains(&k)), "{keys:?}");
                }
                Err(Error::Bundle { .. }) => {
                    refused += 1;
                    refused_vectors += usize::from(vectors.contains(&at));
                }
                Err(other) => panic!("byte {at} ^ {flip:#x}: {other:?}"),
            }
        }
    }
    assert_eq!(refused_vectors, 3 * vectors.len(), "{refused} refused, {loaded} loaded");
    assert!(refused > 0 && loaded > 0, "{refused} refused, {loaded} loaded");
}

#[test]
fn other_format_versions_are_version_errors() {
    for v in [0u64, 1, 2, 4, 99] {
        let dir = written();
        edit_manifest(dir.path(), |m| m["format_version"] = json!(v)).unwrap();
        match load(dir.path()) {
            Err(Error::BundleVersion { found, supported, .. }) => assert_eq!((found, supported), (v, 3)),
            other => panic!("expected BundleVersion, got {other:?}"),
        }
    }
    // The version is checked before anything else in the manifest.
    let dir = written();
    edit_manifest(dir.path(), |m| {
        m["format_version"] = json!(1);
        m["dims"] = json!("garbage");
    })
    .unwrap();
    assert!(matches!(load(dir.path()), Err(Error::BundleVersion { found: 1, .. })));
}

#[test]
fn not_a_bundle_is_a_bundle_error() {
    let dir = tempfile::tempdir().unwrap();
    bundle_error(&dir.path().join("nope"), "cannot open the bundle directory");
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    bundle_error(&dir.path().join("file"), "not a directory");
    bundle_error(dir.path(), "missing file");
    std::fs::write(dir.path().join("manifest.json"), "{not json").unwrap();
    bundle_error(dir.path(), "invalid JSON");
    let dir = written();
    edit_manifest(dir.path(), |m| m["format"] = json!("something-else")).unwrap();
    bundle_error(dir.path(), "not an airrec bundle");
    let dir = written();
    edit_manifest(dir.path(), |m| {
        m.as_object_mut().unwrap().remove("format_version");
    })
    .unwrap();
    bundle_error(dir.path(), "format_version");
    let dir = written();
    edit_manifest(dir.path(), |m| {
        m["dims"].as_object_mut().unwrap().remove("n_heads");
    })
    .unwrap();
    bundle_error(dir.path(), "invalid manifest");
}

#[test]
fn invalid_config_in_the_manifest_is_a_bundle_error() {
    for (key, value) in
        [("beam_width", json!(0)), ("behaviour_weights", json!([])), ("max_chain_depth", json!(17)), ("decay_lambda", json!(-1.0))]
    {
        let dir = written();
        edit_manifest(dir.path(), |m| m["config"][key] = value.clone()).unwrap();
        bundle_error(dir.path(), key);
    }
    let dir = written();
    edit_manifest(dir.path(), |m| m["config"]["beam_widht"] = json!(3)).unwrap();
    bundle_error(dir.path(), "beam_widht");
}

#[test]
fn wrong_shape_or_dtype_is_a_bundle_error() {
    let f = base();
    let dir = written();
    // node_vectors with one column too many.
    let wide: Vec<f32> = vec![0.5; 6 * 5];
    replace_file(dir.path(), "node_vectors.npy", &npy_bytes(&wide, &[6, 5])).unwrap();
    bundle_error(dir.path(), "shape");
    // The right values as float64.
    let dir = written();
    let as_f64: Vec<f64> = f.arrays().node_vectors.iter().map(|&v| v as f64).collect();
    replace_file(dir.path(), "node_vectors.npy", &npy_bytes(&as_f64, &[6, 4])).unwrap();
    bundle_error(dir.path(), "dtype");
    // 1-D where 2-D is needed.
    let dir = written();
    replace_file(dir.path(), "compose_wq.npy", &npy_bytes(&[0.0f32; 16], &[16])).unwrap();
    bundle_error(dir.path(), "shape");
    // The manifest's dims disagree with the arrays.
    let dir = written();
    edit_manifest(dir.path(), |m| m["dims"]["dim"] = json!(5)).unwrap();
    bundle_error(dir.path(), "shape");
    let dir = written();
    edit_manifest(dir.path(), |m| m["dims"]["n_items"] = json!(5)).unwrap();
    bundle_error(dir.path(), "shape");
    // attn_dim not a multiple of n_heads.
    let dir = written();
    edit_manifest(dir.path(), |m| m["dims"]["n_heads"] = json!(3)).unwrap();
    bundle_error(dir.path(), "multiple of n_heads");
    // A header that is not a .npy header.
    let dir = written();
    replace_file(dir.path(), "item_domain.npy", b"PK\x03\x04 not numpy at all").unwrap();
    bundle_error(dir.path(), "not a valid .npy");
}

#[test]
fn non_finite_weights_are_bundle_errors() {
    for (name, rows, cols) in
        [("node_vectors", 6, 4), ("item_vectors", 4, 4), ("compose_wq", 4, 4), ("compose_type_value", 5, 4), ("score_bias", 1, 0)]
    {
        // Finite but huge (3.4e38 in a projection) made every score NaN.
        for bad in [f32::NAN, f32::INFINITY, 3.4e38, -2e4] {
            let dir = written();
            let shape: Vec<usize> = if cols == 0 { vec![rows] } else { vec![rows, cols] };
            let mut values = vec![0.1f32; shape.iter().product()];
            values[shape.iter().product::<usize>() - 1] = bad;
            replace_file(dir.path(), &format!("{name}.npy"), &npy_bytes(&values, &shape)).unwrap();
            bundle_error(dir.path(), "non-finite");
        }
    }
}

/// The folded arrays of `dir` as the loader maps them: `(name, values, shape)`.
fn folded(dir: &Path) -> Vec<(&'static str, Vec<f32>, Vec<usize>)> {
    let bundle = Bundle::load(dir, &LoadOptions::default()).unwrap();
    bundle.composer.folded().arrays().iter().map(|(name, a)| (*name, a.to_vec(), a.shape().to_vec())).collect()
}

#[test]
fn folded_arrays_are_stored_mapped_and_checked_against_the_weights() {
    let dir = written();
    let bundle = Bundle::load(dir.path(), &LoadOptions::default()).unwrap();
    for (name, array) in bundle.composer.folded().arrays() {
        assert!(array.is_mapped(), "{name} is a private copy");
        assert!(dir.path().join(format!("{name}.npy")).is_file());
    }
    drop(bundle);
    for (name, values, shape) in folded(dir.path()) {
        // A value changed (file re-checksummed): the weights give something else.
        let mut edited = values.clone();
        edited[shape[1] + 1] += 0.5;
        let d = written();
        replace_file(d.path(), &format!("{name}.npy"), &npy_bytes(&edited, &shape)).unwrap();
        bundle_error(d.path(), "the weights give");
        // Unverified (checksums off), it loads and every score stays finite.
        let engine = airrec_core::Engine::load(d.path(), &LoadOptions { verify_checksums: false, ..LoadOptions::default() }, None).unwrap();
        let tree = engine.build_tree(&[0, 1, 2], &[0, 0, 0], &[0.0, 1.0, 2.0]).unwrap();
        let scores = engine.scores(&tree, airrec_core::Candidates::Items(&[0, 1, 2, 3])).unwrap();
        assert!(scores.iter().all(|s| s.is_finite()), "{name}: {scores:?}");
        // Non-finite or beyond the folded bound, and wrong shapes, are refused outright.
        for bad in [f32::NAN, f32::INFINITY, 1e15] {
            let mut edited = values.clone();
            edited[0] = bad;
            let d = written();
            replace_file(d.path(), &format!("{name}.npy"), &npy_bytes(&edited, &shape)).unwrap();
            bundle_error(d.path(), "non-finite");
        }
        let d = written();
        replace_file(d.path(), &format!("{name}.npy"), &npy_bytes(&values[shape[1]..], &[shape[0] - 1, shape[1]])).unwrap();
        bundle_error(d.path(), "shape");
    }
    // Weights replaced by others (re-checksummed) no longer match the stored folds.
    let d = written();
    replace_file(d.path(), "compose_wk.npy", &npy_bytes(&[0.25f32; 16], &[4, 4])).unwrap();
    bundle_error(d.path(), "the weights give");
    // A missing folded file is a missing required file (a v1 layout under a v2 label).
    let d = written();
    edit_manifest(d.path(), |m| {
        m["files"].as_object_mut().unwrap().remove("fold_node_kv.npy");
    })
    .unwrap();
    bundle_error(d.path(), "fold_node_kv.npy");
}

#[test]
fn an_edited_config_is_a_checksum_error() {
    // The manifest's config is covered by `config_sha256` (no file checksum covers it).
    let dir = written();
    edit_manifest(dir.path(), |m| m["config"]["beam_width"] = json!(7)).unwrap();
    checksum_error(dir.path(), &LoadOptions::default(), "config");
    // Whitespace and key order do not matter: the digest is of the parsed config.
    let dir = written();
    edit_manifest(dir.path(), |_| {}).unwrap();
    assert!(load(dir.path()).is_ok());
    // Unverified loads trust it (the bounds still apply).
    let dir = written();
    edit_manifest(dir.path(), |m| m["config"]["beam_width"] = json!(7)).unwrap();
    let options = LoadOptions { verify_checksums: false, ..LoadOptions::default() };
    assert_eq!(Bundle::load(dir.path(), &options).unwrap().config.beam_width, 7);
}

#[test]
fn broken_tries_are_bundle_errors() {
    // A parent after its child (not topological).
    let dir = written();
    replace_file(dir.path(), "trie_parent.npy", &npy_bytes(&[-1i32, -1, 3, 0, 2, 1], &[6])).unwrap();
    bundle_error(dir.path(), "topological");
    // A node that is its own parent.
    let dir = written();
    replace_file(dir.path(), "trie_parent.npy", &npy_bytes(&[-1i32, -1, 2, 0, 2, 1], &[6])).unwrap();
    bundle_error(dir.path(), "topological");
    // Roots must use -1.
    let dir = written();
    replace_file(dir.path(), "trie_parent.npy", &npy_bytes(&[-1i32, -2, 0, 0, 2, 1], &[6])).unwrap();
    bundle_error(dir.path(), "roots use -1");
    // Depth disagrees with the parents.
    let dir = written();
    replace_file(dir.path(), "trie_depth.npy", &npy_bytes(&[1u8, 1, 2, 2, 2, 2], &[6])).unwrap();
    bundle_error(dir.path(), "depth");
    // max_depth smaller than the trie's depth.
    let dir = written();
    edit_manifest(dir.path(), |m| m["dims"]["max_depth"] = json!(2)).unwrap();
    assert!(matches!(load(dir.path()), Err(Error::Bundle { .. })));
    // max_depth out of range.
    let dir = written();
    edit_manifest(dir.path(), |m| m["dims"]["max_depth"] = json!(0)).unwrap();
    bundle_error(dir.path(), "max_depth");
    // Phrase bytes that are not UTF-8.
    let dir = written();
    let mut bytes = b"aba1a2a1xb1".to_vec();
    bytes[0] = 0xFF;
    replace_file(dir.path(), "trie_phrase_bytes.npy", &npy_bytes(&bytes, &[bytes.len()])).unwrap();
    bundle_error(dir.path(), "UTF-8");
}

#[test]
fn broken_csr_is_a_bundle_error() {
    // item_path_offsets (4 items * 1 slot + 1 = 5 entries over 4 leaves) that decrease.
    let dir = written();
    replace_file(dir.path(), "item_path_offsets.npy", &npy_bytes(&[0i64, 2, 1, 3, 4], &[5])).unwrap();
    bundle_error(dir.path(), "non-decreasing");
    // Not ending at the number of values.
    let dir = written();
    replace_file(dir.path(), "item_path_offsets.npy", &npy_bytes(&[0i64, 1, 2, 3, 3], &[5])).unwrap();
    bundle_error(dir.path(), "end at 4");
    // Not starting at 0.
    let dir = written();
    replace_file(dir.path(), "item_path_offsets.npy", &npy_bytes(&[1i64, 1, 2, 4, 4], &[5])).unwrap();
    bundle_error(dir.path(), "start at 0");
    // Phrase offsets out of the byte range.
    let dir = written();
    replace_file(dir.path(), "trie_phrase_offsets.npy", &npy_bytes(&[0i64, 1, 2, 4, 6, 9, 100], &[7])).unwrap();
    bundle_error(dir.path(), "offsets");
    let dir = written();
    replace_file(dir.path(), "trie_phrase_offsets.npy", &npy_bytes(&[0i64, 1, 2, 1, 6, 9, 11], &[7])).unwrap();
    bundle_error(dir.path(), "non-decreasing");
}

#[test]
fn broken_external_ids_are_bundle_errors() {
    let ids = |offsets: &[i64], bytes: &[u8], needle: &str| {
        let dir = written();
        replace_file(dir.path(), "item_ext_offsets.npy", &npy_bytes(offsets, &[offsets.len()])).unwrap();
        replace_file(dir.path(), "item_ext_bytes.npy", &npy_bytes(bytes, &[bytes.len()])).unwrap();
        bundle_error(dir.path(), needle);
    };
    ids(&[0, 1, 2, 3, 4], b"abca", "items 0 and 3 share the external id \"a\"");
    ids(&[0, 1, 1, 2, 3], b"abc", "item 1: an external id must not be empty");
    ids(&[0, 1, 2, 3, 4], b"ab\xffd", "the external id of item 2 is not UTF-8");
    ids(&[0, 1, 2, 3, 4], b"ab\x07d", "control character");
    ids(&[0, 2, 1, 3, 4], b"abcd", "never decrease");
    ids(&[0, 1, 2, 3, 9], b"abcd", "end at 4");
    // One entry per item plus one: a wrong count is a shape error.
    let dir = written();
    replace_file(dir.path(), "item_ext_offsets.npy", &npy_bytes(&[0i64, 24], &[2])).unwrap();
    assert!(matches!(load(dir.path()), Err(Error::Bundle { .. })));
}

#[test]
fn out_of_range_ids_are_bundle_errors() {
    for leaf in [6i32, -1, i32::MAX] {
        let dir = written();
        replace_file(dir.path(), "item_path_leaves.npy", &npy_bytes(&[4i32, 3, 5, leaf], &[4])).unwrap();
        bundle_error(dir.path(), "outside 0..6");
    }
    let dir = written();
    replace_file(dir.path(), "item_domain.npy", &npy_bytes(&[0u8, 0, 1, 2], &[4])).unwrap();
    bundle_error(dir.path(), "domain 2 outside");
}

#[test]
fn missing_files_are_bundle_errors() {
    for name in ["index_leaves.usearch", "trie_parent.npy", "score_bias.npy"] {
        let dir = written();
        std::fs::remove_file(dir.path().join(name)).unwrap();
        bundle_error(dir.path(), "missing file");
    }
    // Present on disk but not listed in the manifest.
    for name in ["compose_wo.npy", "index_items_1.usearch", "item_ext_bytes.npy"] {
        let dir = written();
        edit_manifest(dir.path(), |m| {
            m["files"].as_object_mut().unwrap().remove(name);
        })
        .unwrap();
        bundle_error(dir.path(), "does not list");
    }
}

#[test]
fn file_names_outside_the_bundle_are_refused() {
    for name in ["../escape.npy", "sub/node_vectors.npy", "..\\escape.npy", ".hidden", "/etc/passwd"] {
        let dir = written();
        // Even with a correct size and hash for an existing file, the name is refused.
        let bytes = std::fs::read(dir.path().join("score_bias.npy")).unwrap();
        edit_manifest(dir.path(), |m| m["files"][name] = json!({"sha256": sha256_hex(&bytes), "bytes": bytes.len()})).unwrap();
        bundle_error(dir.path(), "outside the bundle");
    }
}

#[test]
fn mismatched_indexes_are_bundle_errors() {
    let f = base();
    let a = f.arrays();
    // A leaf index over vectors of another dimension.
    let dir = written();
    let p = dir.path().join("index_leaves.usearch");
    write_index(&p, &[3, 4, 5], &[0.5f32; 15], 5, &IndexSpec::default()).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    replace_file(dir.path(), "index_leaves.usearch", &bytes).unwrap();
    bundle_error(dir.path(), "dimension");
    // An item index holding the wrong number of items.
    let dir = written();
    let p = dir.path().join("index_items_0.usearch");
    write_index(&p, &[0], &a.item_vectors[..4], 4, &IndexSpec::default()).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    replace_file(dir.path(), "index_items_0.usearch", &bytes).unwrap();
    bundle_error(dir.path(), "expected 2");
    // Not an index at all.
    let dir = written();
    replace_file(dir.path(), "index_items_1.usearch", b"definitely not usearch").unwrap();
    assert!(matches!(load(dir.path()), Err(Error::Bundle { .. })));
}

/// Replaces `index_<name>.usearch` by an index over `keys` with the vectors of `rows` of `vectors`.
fn replace_index(dir: &Path, file: &str, keys: &[u64], vectors: &[f32], rows: &[usize]) {
    let vecs: Vec<f32> = rows.iter().flat_map(|&r| vectors[r * 4..r * 4 + 4].to_vec()).collect();
    let p = dir.join(file);
    write_index(&p, keys, &vecs, 4, &IndexSpec::default()).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    replace_file(dir, file, &bytes).unwrap();
}

#[test]
fn indexes_must_hold_exactly_their_ids() {
    // Found by this suite: a leaf index with the right size but a key that is no node loaded,
    // then cold start (or nearest_intents) handed out node 99 and build_tree panicked indexing
    // the trie. The loader now checks the keys.
    let a = base().arrays();
    let dir = written();
    replace_index(dir.path(), "index_leaves.usearch", &[3, 4, 99], &a.node_vectors, &[3, 4, 5]);
    bundle_error(dir.path(), "key 99 is not a trie leaf");
    // An inner node instead of a leaf.
    let dir = written();
    replace_index(dir.path(), "index_leaves.usearch", &[3, 4, 0], &a.node_vectors, &[3, 4, 0]);
    bundle_error(dir.path(), "key 0 is not a trie leaf");
    // Items of another domain, or ids that are no items.
    let dir = written();
    replace_index(dir.path(), "index_items_0.usearch", &[0, 2], &a.item_vectors, &[0, 2]);
    bundle_error(dir.path(), "key 2 is not an item of domain 0");
    let dir = written();
    replace_index(dir.path(), "index_items_1.usearch", &[2, 40], &a.item_vectors, &[2, 3]);
    bundle_error(dir.path(), "key 40 is not an item of domain 1");
}

#[test]
fn the_writer_refuses_bad_external_ids() {
    let cases: [(Vec<&str>, &str); 4] = [
        (vec!["a", "b", "a", "c"], "external id \"a\" is given to more than one item"),
        (vec!["a", "b", "", "c"], "must not be empty"),
        (vec!["a", "b", "c"], "3 external ids for 4 items"),
        (vec!["a", "b\tx", "c", "d"], "control character"),
    ];
    for (ids, needle) in cases {
        let mut arrays = base().arrays();
        arrays.item_ext_ids = ids.iter().map(|s| s.to_string()).collect();
        let dir = tempfile::tempdir().unwrap();
        match arrays.write(dir.path()) {
            Err(Error::Input(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
            other => panic!("expected Error::Input for {ids:?}, got {other:?}"),
        }
    }
}
