//! The guard around a model's initialisation: libtorch's generator is process-wide, so each
//! model seeds it from its own stream (`seeds::torch_seed`) and holds a lock while it draws.
//! Every stream itself is derived in the `seeds` crate.

use std::sync::{Mutex, MutexGuard};

static INIT: Mutex<()> = Mutex::new(());

/// Seeds libtorch's generator for one model's initialisation, so each run's initial weights
/// depend on the configured seed alone, not on what ran before. The returned guard keeps other
/// threads' models from drawing from the (process-wide) generator until this one is built.
pub fn init_seed(seed: u64, stream: seeds::Stream) -> MutexGuard<'static, ()> {
    let guard = init_lock();
    tch::manual_seed(seeds::torch_seed(seed, stream));
    guard
}

/// The guard alone, for a model whose drawn weights a checkpoint replaces at once: it draws
/// without seeding (what it draws does not matter), but not while another thread's seeded
/// model is being built.
pub fn init_lock() -> MutexGuard<'static, ()> {
    INIT.lock().unwrap_or_else(|e| e.into_inner())
}
