//! Unit tests of every stage of the online path (docs/online-path.md), on bundles written by
//! `airrec_core::testing`. One test binary, one module per stage.

mod common;

mod bundle;
mod compose;
mod engine;
mod slots;
mod tree;
mod walk;
