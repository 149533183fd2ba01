//! One encoder forward + backward at the Keras example's pretraining batch: 1,050 views
//! (2 x 525) of 96x96 images, NCHW and channels-last, on the CPU and, when present, CUDA.
//! Use `--sample-size 10`: one CPU iteration takes seconds.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use models::{Encoder, EncoderConfig, to_channels_last};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

fn bench(c: &mut Criterion) {
    let views: i64 = std::env::var("ENCODER_BENCH_VIEWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1050);
    let mut devices = vec![Device::Cpu];
    if tch::Cuda::is_available() {
        devices.push(Device::Cuda(0));
    }
    let mut group = c.benchmark_group(format!("encoder_forward_backward_{views}x96x96"));
    group
        .sample_size(10)
        .throughput(Throughput::Elements(views as u64));
    for device in devices {
        for channels_last in [false, true] {
            let vs = nn::VarStore::new(device);
            let encoder = Encoder::new(&(vs.root() / "encoder"), &EncoderConfig::default())
                .expect("96x96 fits");
            let mut x = Tensor::rand([views, 3, 96, 96], (Kind::Float, device));
            if channels_last {
                encoder.use_channels_last();
                x = to_channels_last(&x);
            }
            let name = if channels_last {
                "channels_last"
            } else {
                "nchw"
            };
            group.bench_function(format!("{name}/{device:?}"), |b| {
                b.iter(|| {
                    vs.variables().values().for_each(|v| {
                        let mut g = v.grad();
                        if g.defined() {
                            let _ = g.zero_();
                        }
                    });
                    let out = encoder.forward_t(&x, true);
                    out.mean(Kind::Float).backward();
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
