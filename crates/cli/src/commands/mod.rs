//! One module per group of subcommands, each taking resolved arguments and delegating to
//! the libraries.

pub mod data;
pub mod eval;
pub mod train;
