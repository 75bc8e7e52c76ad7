//! Approximate nearest-neighbour search (usearch HNSW, cosine) over item and leaf vectors.

use std::path::Path;

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::error::{Error, Result};
use crate::index_file::{validate, Expected};

/// A loaded usearch index whose keys are item or node ids.
pub struct VectorIndex {
    inner: Index,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VectorIndex(dim={}, size={})", self.inner.dimensions(), self.inner.size())
    }
}

impl VectorIndex {
    /// Loads an index from the bytes of its file after [`crate::index_file::validate`] has
    /// checked every field a search dereferences against `expected`, so a hostile file is an
    /// error, not undefined behaviour. Loading from the validated bytes (not the path again)
    /// means the file cannot change between the check and the load.
    pub fn from_bytes(path: &Path, bytes: &[u8], expected: &Expected<'_>, threads: usize, expansion_search: usize) -> Result<Self> {
        let bad = |m: String| Error::bundle(path, m);
        validate(bytes, expected).map_err(bad)?;
        let options =
            IndexOptions { dimensions: expected.dim, metric: MetricKind::Cos, quantization: ScalarKind::F32, ..Default::default() };
        let inner = Index::new(&options).map_err(|e| bad(format!("cannot create index: {e}")))?;
        inner.load_from_buffer(bytes).map_err(|e| bad(format!("cannot load index: {e}")))?;
        // Concurrent searches each need a context; give every worker thread one.
        inner.reserve_capacity_and_threads(inner.size(), threads.max(1)).map_err(|e| bad(format!("cannot reserve search threads: {e}")))?;
        inner.change_expansion_search(expansion_search.max(1));
        if inner.size() != expected.n {
            return Err(bad(format!("index holds {} vectors, expected {}", inner.size(), expected.n)));
        }
        Ok(VectorIndex { inner })
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
