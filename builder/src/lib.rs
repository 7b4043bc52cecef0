//! strata's builder: runs a build graph.
//!
//! Frontends (Dockerfile, buildpacks) translate their input into a [`graph::Graph`] plus
//! [`graph::Target`]s; the builder keys each node, finds cached results, runs the rest with the
//! runner and the store, and exports the targets as images. It never sees Dockerfile syntax.

pub mod copy;
pub mod graph;
pub mod pathmatch;
