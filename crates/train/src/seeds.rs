//! The random streams of one run, each derived from `runtime.seed` and a fixed stream number,
//! so that every model's initial weights and every augmenter's draws depend on the seed alone,
//! whatever ran before in the process. (Data order and label selection have their own streams
//! in `stl10_data::Stream`.)

/// The independent random streams of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SeedStream {
    Contrastive = 11,
    ProbeAugment = 12,
    Baseline = 13,
    Finetune = 14,
    /// Dense(classes) on frozen features: its initial weights and minibatch order.
    LinearEval = 15,
}

pub(crate) fn stream_seed(seed: u64, stream: SeedStream) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (stream as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

/// Seeds libtorch's generator for one model's initialisation, so each run's initial weights
/// depend on the configured seed alone, not on what ran before. The returned guard keeps other
/// threads' models from drawing from the (process-wide) generator until this one is built.
pub(crate) fn init_seed(seed: u64, stream: SeedStream) -> std::sync::MutexGuard<'static, ()> {
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed((stream_seed(seed, stream) >> 1) as i64);
    guard
}
