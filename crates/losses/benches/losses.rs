//! Loss forward + backward at the Keras example's shapes: N = 525 samples, D = 128.

use criterion::{Criterion, criterion_group};
use losses::{contrastive_loss, nt_xent};
use tch::{Device, Kind, Tensor};

fn bench(c: &mut Criterion) {
    let mut devices = vec![Device::Cpu];
    if tch::Cuda::is_available() {
        devices.push(Device::Cuda(0));
    }
    let mut group = c.benchmark_group("loss_forward_backward_525x128");
    for device in devices {
        let z1 = Tensor::randn([525, 128], (Kind::Float, device)).set_requires_grad(true);
        let z2 = Tensor::randn([525, 128], (Kind::Float, device)).set_requires_grad(true);
        for (name, f) in [
            (
                "contrastive_loss",
                contrastive_loss as fn(&Tensor, &Tensor, f64) -> _,
            ),
            ("nt_xent", nt_xent),
        ] {
            group.bench_function(format!("{name}/{device:?}"), |b| {
                b.iter(|| {
                    let (loss, _) = f(&z1, &z2, 0.1).expect("valid inputs");
                    loss.backward();
                    z1.grad().double_value(&[0, 0])
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);

/// Under the CLI's allocator tuning, so the figures agree with `simclr-cli bench`.
fn main() {
    accel::tune_allocator();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
