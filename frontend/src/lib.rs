//! strata's frontends: turn a Dockerfile, or a source tree through buildpacks ([`buildpacks`]),
//! into a build graph for the builder.
//!
//! The Dockerfile path: [`parser`] (text → syntax tree, [`ast`]) → [`instructions`] (typed,
//! flags checked) → [`convert`] (stages, scopes, expansion with [`shell`] → graph + image
//! config). [`dockerignore`] decides which context files exist for the build. Errors are
//! [`diagnostic::Diagnostic`]s pointing at file:line:column.

pub mod ast;
pub mod buildpacks;
pub mod convert;
pub mod csv;
pub mod diagnostic;
pub mod dockerignore;
pub mod fuzzing;
pub mod gofmt;
pub mod instructions;
pub mod lint;
pub mod parser;
pub mod shell;
pub mod suggest;
