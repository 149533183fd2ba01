//! The strong (contrastive) preset on the Keras example's step: both views of 525 images, one
//! `augment` on the doubled batch (1,050 x 3 x 96 x 96 uint8 in, float32 out), NCHW and
//! channels-last output, on the CPU and, when present, CUDA. Runs under the CLI's allocator
//! tuning so the figures agree with `simclr-cli bench`. Prints views/s.

use augment::{AugmentConfig, Augmenter, MemoryFormat};
use criterion::{Criterion, Throughput, criterion_group};
use tch::{Device, Kind, Tensor};

fn bench(c: &mut Criterion) {
    let mut devices = vec![Device::Cpu];
    if tch::Cuda::is_available() {
        devices.push(Device::Cuda(0));
    }
    let images =
        Tensor::randint(256, [1050, 3, 96, 96], (Kind::Int64, Device::Cpu)).to_kind(Kind::Uint8);
    let mut group = c.benchmark_group("augment_contrastive_2x525x3x96x96");
    group.sample_size(10).throughput(Throughput::Elements(1050));
    for device in devices {
        let input = images.to_device(device);
        for format in [MemoryFormat::Contiguous, MemoryFormat::ChannelsLast] {
            let mut strong = Augmenter::new(AugmentConfig::contrastive(), 0, device)
                .expect("valid preset")
                .with_format(format);
            group.bench_function(format!("{device:?}/{}", format.name()), |b| {
                b.iter(|| {
                    let out = strong.augment(&input).expect("a valid batch");
                    // Synchronise so CUDA timings count the work, not the launch.
                    out.double_value(&[0, 0, 0, 0])
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    accel::tune_allocator();
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
