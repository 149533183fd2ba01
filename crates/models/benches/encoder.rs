//! One encoder forward + backward at the Keras example's pretraining batch: 1,050 views
//! (2 x 525) of 96x96 images, NCHW and channels-last, on the CPU and, when present, CUDA, under
//! the CLI's allocator tuning.
//! Use `--sample-size 10`: one CPU iteration takes seconds.

use criterion::{Criterion, Throughput, criterion_group};
use models::{Encoder, EncoderConfig, MemoryFormat};
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
        for format in [MemoryFormat::Contiguous, MemoryFormat::ChannelsLast] {
            let vs = nn::VarStore::new(device);
            let encoder = Encoder::new(&(vs.root() / "encoder"), &EncoderConfig::default())
                .expect("96x96 fits");
            encoder.set_memory_format(format);
            let x = format.apply(&Tensor::rand([views, 3, 96, 96], (Kind::Float, device)));
            group.bench_function(format!("{}/{device:?}", format.name()), |b| {
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

fn main() {
    accel::tune_allocator();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
