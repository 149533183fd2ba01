//! Batch gathering from the memory-mapped unlabeled split: 500 random images per step, as one
//! STL-10 pretraining step draws them, from STL-10's own file and from its packed copy
//! (`data pack`). Prints images/s.

use criterion::{Criterion, Throughput, criterion_group};
use seeds::{Stream, permutation};
use stl10_data::pack::{PackOptions, pack};
use stl10_data::{DataConfig, DataKind, Dataset, load};
use test_support::fixtures::write_stl10;

fn gather(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    write_stl10(dir.path(), 10, 10, 4000).expect("fixture");
    let ds = load(
        &DataConfig {
            root: dir.path().into(),
            ..DataConfig::default()
        },
        0,
    )
    .expect("load");
    let packed_dir = dir.path().join("packed");
    let source = DataConfig {
        root: dir.path().into(),
        ..DataConfig::default()
    };
    pack(&source, &packed_dir, &PackOptions::default(), &mut ()).expect("pack");
    let packed = load(
        &DataConfig {
            kind: DataKind::Packed,
            root: packed_dir,
            ..DataConfig::default()
        },
        0,
    )
    .expect("load the pack");
    let order = permutation(ds.unlabeled.len(), 0, 0, Stream::Unlabeled);
    let mut group = c.benchmark_group("gather");
    group.throughput(Throughput::Elements(500));
    let mut bench = |name: &str, ds: &Dataset| {
        let mut step = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                let start = (step * 500) % (order.len() - 500);
                step += 1;
                ds.unlabeled.images(&order[start..start + 500]).unwrap()
            })
        });
    };
    bench("unlabeled_mmap_500x96x96", &ds);
    bench("unlabeled_packed_500x96x96", &packed);
    group.finish();
}

criterion_group!(benches, gather);

/// Under the CLI's allocator tuning, so the figures agree with `simclr-cli bench`.
fn main() {
    accel::tune_allocator();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
