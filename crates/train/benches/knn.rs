//! Weighted kNN at STL-10's evaluation shapes: a memory bank of 5,000 labeled features and
//! 8,000 test queries, D = 128, k = 200, 10 classes (what `val_knn_acc` costs per epoch on top
//! of encoding the images).

use criterion::{Criterion, criterion_group};
use tch::{Device, Kind, Tensor};
use train::features::knn::Knn;

fn bench(c: &mut Criterion) {
    let mut devices = vec![Device::Cpu];
    if tch::Cuda::is_available() {
        devices.push(Device::Cuda(0));
    }
    let mut group = c.benchmark_group("knn_5000_bank_8000_queries_d128_k200");
    group.sample_size(10);
    for device in devices {
        let bank = Tensor::randn([5000, 128], (Kind::Float, device));
        let labels = Tensor::randint(10, [5000], (Kind::Int64, device));
        let queries = Tensor::randn([8000, 128], (Kind::Float, device));
        let knn = Knn::default();
        group.bench_function(format!("predict/{device:?}"), |b| {
            b.iter(|| {
                knn.predict(&bank, &labels, &queries, 10)
                    .expect("valid inputs")
                    .int64_value(&[0])
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);

/// Under the CLI's allocator tuning, so the figures agree with `simclr-cli`.
fn main() {
    accel::tune_allocator();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
