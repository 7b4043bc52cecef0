//! One module per subcommand; each takes its parsed arguments and the open store.

pub mod images;
