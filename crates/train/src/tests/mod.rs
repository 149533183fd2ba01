//! Tests of the internals working together (the steps, the epoch loop, the loader), on small
//! generated data; the public API's tests are in `crates/train/tests/`.

mod cuda;
mod training;
