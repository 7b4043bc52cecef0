//! strata's builder: runs a build graph.
//!
//! Frontends (Dockerfile, buildpacks) translate their input into a [`graph::Graph`] plus
//! [`graph::Target`]s; the builder keys each node ([`cache`]), finds cached results, runs the
//! rest with the runner and the store in dependency order ([`scheduler`]), reports
//! [`progress`], and exports the targets as images. It never sees Dockerfile syntax.

pub mod cache;
pub mod content_cache;
pub mod copy;
pub mod exec;
pub mod explain;
pub mod export;
pub mod fileop;
pub mod graph;
pub mod layers;
pub mod pathmatch;
pub mod progress;
pub mod remote;
pub mod remote_cache;
pub mod scheduler;
pub mod solve;

pub use solve::{BuildConfig, BuildFailure, Builder, Explanation};
