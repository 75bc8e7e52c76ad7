//! Approximate nearest-neighbour search (usearch HNSW, cosine) over item and leaf vectors.

use std::path::Path;

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::error::{Error, Result};

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
    /// Loads an index file, checking its header (metric, scalar type, dimension, size) before the
    /// body so that a mismatched file is an error, not undefined behaviour.
    pub fn load(path: &Path, dim: usize, expected_size: usize, threads: usize, expansion_search: usize) -> Result<Self> {
        let bad = |m: String| Error::bundle(path, m);
        let path_str = path.to_str().ok_or_else(|| bad("path is not UTF-8".into()))?;
        let meta = Index::metadata(path_str).map_err(|e| bad(format!("not a usearch index: {e}")))?;
        if meta.dimensions as usize != dim {
            return Err(bad(format!("index dimension {} != bundle dim {dim}", meta.dimensions)));
        }
        if meta.metric != MetricKind::Cos || meta.quantization != ScalarKind::F32 || meta.multi {
            return Err(bad(format!(
                "index must be cosine / f32 / single-vector, got {:?} / {:?} / multi={}",
                meta.metric, meta.quantization, meta.multi
            )));
        }
        if meta.count_present as usize != expected_size {
            return Err(bad(format!("index holds {} vectors, expected {expected_size}", meta.count_present)));
        }
        let options = IndexOptions {
            dimensions: dim,
            metric: MetricKind::Cos,
            quantization: ScalarKind::F32,
            ..Default::default()
        };
        let inner = Index::new(&options).map_err(|e| bad(format!("cannot create index: {e}")))?;
        inner.load(path_str).map_err(|e| bad(format!("cannot load index: {e}")))?;
        // Concurrent searches each need a context; give every worker thread one.
        inner
            .reserve_capacity_and_threads(inner.size(), threads.max(1))
            .map_err(|e| bad(format!("cannot reserve search threads: {e}")))?;
        inner.change_expansion_search(expansion_search.max(1));
        if inner.size() != expected_size {
            return Err(bad(format!("index holds {} vectors, expected {expected_size}", inner.size())));
        }
        Ok(VectorIndex { inner })
    }

    /// The first of `keys` the index does not hold, if any. With the size already checked equal
    /// to the number of `keys` (and keys unique), `None` means the index holds exactly `keys`,
    /// so every id a search returns is valid.
    pub(crate) fn first_missing(&self, mut keys: impl Iterator<Item = u64>) -> Option<u64> {
        keys.find(|&k| !self.inner.contains(k))
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
