//! strata's frontends: turn a Dockerfile (or, later, a buildpack source tree) into a build
//! graph for the builder.

pub mod ast;
pub mod dockerignore;
pub mod parser;
pub mod shell;
