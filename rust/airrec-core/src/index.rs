//! Approximate nearest-neighbour search (usearch HNSW, cosine) over item and leaf vectors.

use std::path::Path;

use memmap2::Mmap;
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::error::{Error, Result};
use crate::index_file::{validate, Expected};

/// A loaded usearch index whose keys are item or node ids: a read-only view of the validated,
/// memory-mapped file, so every process serving the bundle shares its pages.
pub struct VectorIndex {
    // Field order is drop order: the index view goes before the map it reads.
    inner: Index,
    _map: Mmap,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VectorIndex(dim={}, size={})", self.inner.dimensions(), self.inner.size())
    }
}

impl VectorIndex {
    /// Views the index in `map` (its file, memory-mapped) after [`crate::index_file::validate`]
    /// has checked every field a search dereferences against `expected`, so a hostile file is
    /// an error, not undefined behaviour. The view reads exactly the bytes that were validated
    /// (the map, never the path again), so the file cannot change between the check and the
    /// view; bundles are immutable once written (writers replace whole directories), which is
    /// what every memory-mapped array of the bundle relies on too (docs/online-path.md §0).
    pub fn from_map(path: &Path, map: Mmap, expected: &Expected<'_>, threads: usize, expansion_search: usize) -> Result<Self> {
        let bad = |m: String| Error::bundle(path, m);
        validate(&map, expected).map_err(bad)?;
        let options =
            IndexOptions { dimensions: expected.dim, metric: MetricKind::Cos, quantization: ScalarKind::F32, ..Default::default() };
        let inner = Index::new(&options).map_err(|e| bad(format!("cannot create index: {e}")))?;
        // SAFETY: usearch reads the view's graph and vectors from `map` for as long as `inner`
        // lives; `map` is moved into the same struct and dropped after `inner` (field order),
        // and it is a read-only mapping nobody writes through. `validate` checked every offset,
        // count and slot a search follows against the buffer's length, so the view never reads
        // outside it.
        unsafe { inner.view_from_buffer(&map) }.map_err(|e| bad(format!("cannot view index: {e}")))?;
        // Concurrent searches each need a context; give every worker thread one.
        inner.reserve_capacity_and_threads(inner.size(), threads.max(1)).map_err(|e| bad(format!("cannot reserve search threads: {e}")))?;
        inner.change_expansion_search(expansion_search.max(1));
        if inner.size() != expected.n {
            return Err(bad(format!("index holds {} vectors, expected {}", inner.size(), expected.n)));
        }
        Ok(VectorIndex { inner, _map: map })
    }

    /// The `k` nearest keys to `query` with their cosine similarity, best first.
    pub fn search(&self, query: &[f32], k: usize) -> Result<(Vec<u64>, Vec<f32>)> {
        // usearch allocates `k` results up front: a caller's `k = 2^63` would abort the process
        // on a capacity overflow. More results than vectors cannot exist anyway.
        let k = k.min(self.inner.size());
        if k == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let m = self.inner.search(query, k).map_err(|e| Error::Index(e.to_string()))?;
        // usearch reports cosine *distance*; callers want similarity.
        let sims = m.distances.iter().map(|d| 1.0 - d).collect();
        Ok((m.keys, sims))
    }

    pub fn size(&self) -> usize {
        self.inner.size()
    }
}
