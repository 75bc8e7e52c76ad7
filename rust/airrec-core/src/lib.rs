//! # airrec-core
//!
//! The online half of AIR (Atomic Intent Reasoning): given the cached LLM intent paths of a
//! user's recent behaviour, build a weighted intent tree, retrieve for each candidate item the
//! intent chains and evidence that matter to it, and compose them with multi-head attention
//! into a target-aware intent vector and score, in microseconds and without an LLM.
//!
//! The exact semantics are in `docs/online-path.md`; the NumPy reference in the Python package
//! implements the same page and the tests hold the two to parity.
//!
//! ```no_run
//! use airrec_core::{Candidates, Engine, LoadOptions};
//! let engine = Engine::load("bundle/", &LoadOptions::default(), None)?;
//! let tree = engine.build_tree(&[3, 17, 42], &[0, 0, 0], &[0.0, 1.0, 2.0])?;
//! let scores = engine.scores(&tree, Candidates::Items(&[5, 9, 11]))?;
//! # Ok::<(), airrec_core::Error>(())
//! ```

pub mod bundle;
pub mod compose;
pub mod config;
pub mod engine;
pub mod error;
pub mod explain;
pub mod files;
pub mod index;
pub mod index_file;
pub mod item_ids;
mod kernels;
pub mod npy;
pub mod retrieve;
pub mod slots;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tree;
pub mod trie;
pub mod writer;

pub use bundle::{Bundle, Dims, LoadOptions, FORMAT_VERSION};
pub use config::EngineConfig;
pub use engine::{Candidates, Context, Engine, Histories, Scratch};
pub use error::{Error, Result};
pub use explain::{ChainExplanation, EvidenceExplanation, Explanation};
pub use slots::{SlotsOut, TreeSlotsOut, PAD_TYPE};
pub use tree::{Event, UserTree};
