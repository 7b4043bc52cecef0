//! One module per subcommand; each takes its parsed arguments and the open store.

pub mod build;
pub mod buildpacks;
pub mod debug;
pub mod images;
pub mod import;
pub mod login;
pub mod pull;
pub mod push;
pub mod run;
pub mod system;
