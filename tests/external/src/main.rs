//! Two strong views of a batch of images, and the Keras example's contrastive loss between two
//! projections of them: what a project outside simclr-rs does with `augment` and `losses`.
//! Exits non-zero if anything is off.

use augment::{AugmentConfig, Augmenter};
use tch::{Device, Kind, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::cuda_if_available();
    tch::manual_seed(0);
    let images = Tensor::randint(256, [8, 3, 32, 32], (Kind::Uint8, Device::Cpu));
    let mut strong = Augmenter::new(AugmentConfig::contrastive(), 42, device)?;
    let (a, b) = (strong.augment(&images)?, strong.augment(&images)?);
    assert_eq!(a.size(), [8, 3, 32, 32]);
    assert!(a.min().double_value(&[]) >= 0.0 && a.max().double_value(&[]) <= 1.0);
    assert!((&a - &b).abs().max().double_value(&[]) > 0.0, "two views differ");

    // A fixed random projection of each view, and the loss between them.
    let w = Tensor::randn([3 * 32 * 32, 16], (Kind::Float, device));
    let (z1, z2) = (a.flatten(1, -1).matmul(&w), b.flatten(1, -1).matmul(&w));
    let (loss, logits) = losses::contrastive_loss(&z1, &z2, 0.1)?;
    let same = losses::contrastive_accuracy(&losses::contrastive_loss(&z1, &z1, 0.1)?.1)?;
    assert_eq!(same.combined(), 1.0, "a view always finds itself");
    assert!(loss.double_value(&[]).is_finite());
    assert!(losses::contrastive_loss(&z1, &z2, 0.0).is_err(), "temperature 0 is refused");
    println!(
        "device {device:?}: contrastive loss {:.4} over {:?} logits, CUDA linked: {}",
        loss.double_value(&[]),
        logits.size(),
        tch::Cuda::is_available() || libtorch_cuda_loaded()
    );
    Ok(())
}

/// Whether `libtorch_cuda.so` is mapped into this process (what `torch_link::link` keeps).
fn libtorch_cuda_loaded() -> bool {
    std::fs::read_to_string("/proc/self/maps").is_ok_and(|m| m.contains("libtorch_cuda"))
}
