//! Buildpacks: source code to an image with the Cloud Native Buildpacks API, no daemon.
//!
//! `strata build DIR` on a directory without a Dockerfile runs the lifecycle's phases
//! (Buildpack API 0.12 as lifecycle v0.21 implements it; descriptors of API 0.7 to 0.12 are
//! accepted, see [`descriptor`]):
//!
//! 1. **detect** ([`lifecycle::Lifecycle::detect`]): the order ([`order`]) is expanded into
//!    groups; each buildpack's `bin/detect` runs in the build image; the first group whose
//!    required buildpacks pass and whose build plan resolves ([`plan`]) is chosen;
//! 2. **analyze/restore** ([`lifecycle::Lifecycle::restore`]): `<layer>.toml` metadata from the
//!    previous image's `io.buildpacks.lifecycle.metadata` label ([`metadata`]) and cached
//!    layers from the build cache come back;
//! 3. **build** ([`lifecycle::Lifecycle::build`]): each `bin/build` runs with its buildpack
//!    plan and the environment of earlier buildpacks' build layers ([`env`]); what it leaves in
//!    its layers directory is read back ([`layers`]);
//! 4. **export** ([`export`]): the image as a build graph over the run image — one layer per
//!    launch layer, the app, the launcher ([`launcher`]) and config — which the builder runs
//!    like any Dockerfile graph; then the cache is saved.
//!
//! Processes run in the build image through a [`lifecycle::Sandbox`] the caller provides (the
//! CLI uses the builder's sandbox); host directories hold the app, layers and platform
//! directories ([`fsutil`]). The builder never learns about buildpacks: it sees processes with
//! host-directory mounts and, for the export, an ordinary graph.

pub mod descriptor;
pub mod env;
pub mod export;
pub mod fsutil;
pub mod launcher;
pub mod layers;
pub mod lifecycle;
pub mod metadata;
pub mod order;
pub mod plan;
