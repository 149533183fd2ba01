//! End-to-end tests of the `simclr-cli` binary on fixtures generated in the official formats.

mod bad_input;
mod compare;
mod data;
mod distributed;
mod eval;
mod resume;
mod tensorboard;
mod train;
mod util;
