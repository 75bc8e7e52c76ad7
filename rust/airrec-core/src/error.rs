//! One error type for the whole core, with variants a binding can map one-to-one onto typed
//! exceptions (the Python layer does: see `airrec-py/src/errors.rs`).

use std::path::PathBuf;

/// Everything the engine can refuse. Loading never panics on bad files: it returns one of these.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle is missing a file, or a file is malformed or inconsistent with the manifest.
    #[error("bundle {path}: {message}")]
    Bundle { path: PathBuf, message: String },

    /// A bundle file's size or sha256 differs from the manifest (truncated or corrupted).
    #[error("bundle file {path}: {message}")]
    BundleChecksum { path: PathBuf, message: String },

    /// The bundle declares a format version this build cannot read.
    #[error(
        "bundle {path}: format version {found} is not supported (this build reads {supported}); rebuild it with this airrec (`airrec build`, or `airrec train` to re-export)"
    )]
    BundleVersion { path: PathBuf, found: u64, supported: u64 },

    /// A configuration value is out of range.
    #[error("config: {0}")]
    Config(String),

    /// An item id outside `[0, n_items)`.
    #[error("unknown item {item}: the bundle has {n_items} items (ids 0..{n_items})")]
    UnknownItem { item: i64, n_items: usize },

    /// An external item id the bundle does not hold.
    #[error("unknown item id {id}: not one of the bundle's {n_items} items' external ids")]
    UnknownExternalItem { id: String, n_items: usize },

    /// A behaviour id outside the configured behaviour types.
    #[error("unknown behaviour {behaviour}: the bundle configures {n_behaviours} behaviour types (ids 0..{n_behaviours})")]
    UnknownBehaviour { behaviour: i64, n_behaviours: usize },

    /// Any other invalid request input (shape, non-finite value, negative k, ...).
    #[error("{0}")]
    Input(String),

    /// The vector index failed (usearch).
    #[error("vector index: {0}")]
    Index(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn bundle(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Bundle { path: path.into(), message: message.into() }
    }
}
