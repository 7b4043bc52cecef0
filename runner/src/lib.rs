//! strata's sandbox: runs one process over an overlay root filesystem in fresh Linux
//! namespaces, and mounts root filesystems for file operations.
//!
//! The runner never sees the build graph: it receives a [`spec::SandboxSpec`] (plain data) and
//! carries it out.

pub mod spec;
