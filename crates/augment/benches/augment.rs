//! The strong (contrastive) preset on the Keras example's batch: 525 x 3 x 96 x 96 uint8 in,
//! float32 out, on the CPU and, when present, CUDA. Prints images/s.

use augment::{AugmentConfig, Augmenter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tch::{Device, Kind, Tensor};

fn bench(c: &mut Criterion) {
    let mut devices = vec![Device::Cpu];
    if tch::Cuda::is_available() {
        devices.push(Device::Cuda(0));
    }
    let images =
        Tensor::randint(256, [525, 3, 96, 96], (Kind::Int64, Device::Cpu)).to_kind(Kind::Uint8);
    let mut group = c.benchmark_group("augment_contrastive_525x3x96x96");
    group.sample_size(10).throughput(Throughput::Elements(525));
    for device in devices {
        let input = images.to_device(device);
        let mut strong =
            Augmenter::new(AugmentConfig::contrastive(), 0, device).expect("valid preset");
        group.bench_function(format!("{device:?}"), |b| {
            b.iter(|| {
                let out = strong.augment(&input);
                // Synchronise so CUDA timings count the work, not the launch.
                out.double_value(&[0, 0, 0, 0])
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
