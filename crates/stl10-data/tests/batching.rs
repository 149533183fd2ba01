use std::collections::HashSet;

use stl10_data::{BatchPlan, DataConfig, LabeledEpoch, ZippedEpoch, load};
use test_support::fixtures::write_stl10;

#[test]
fn the_keras_example_gives_200_steps_of_500_plus_25() {
    let plan = BatchPlan::new(100_000, 5_000, 525).unwrap();
    assert_eq!(
        (plan.steps, plan.unlabeled_batch, plan.labeled_batch),
        (200, 500, 25)
    );
    assert_eq!(
        plan.describe(),
        "batch size is 500 (unlabeled) + 25 (labeled)"
    );
    // Fashion-MNIST, 100 labels per class, batch 256: 234 steps of 252 + 4.
    let plan = BatchPlan::new(59_000, 1_000, 256).unwrap();
    assert_eq!(
        (plan.steps, plan.unlabeled_batch, plan.labeled_batch),
        (234, 252, 4)
    );
}

#[test]
fn plans_without_a_step_or_with_an_empty_batch_say_why() {
    let e = BatchPlan::new(10, 5, 100).unwrap_err().to_string();
    assert!(e.contains("no full batch of 100"), "{e}");
    let e = BatchPlan::new(1000, 5, 100).unwrap_err().to_string();
    assert!(e.contains("empty batch") && e.contains("0 labeled"), "{e}");
    let e = BatchPlan::new(0, 500, 100).unwrap_err().to_string();
    assert!(
        e.contains("empty batch") && e.contains("unlabeled images"),
        "{e}"
    );
    assert!(BatchPlan::new(10, 10, 0).is_err());
}

#[test]
fn permutations_are_reproducible_and_differ_across_epochs_and_seeds() {
    let p = seeds::permutation(1000, 7, 0, seeds::Stream::Unlabeled);
    let mut sorted = p.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    assert_eq!(p, seeds::permutation(1000, 7, 0, seeds::Stream::Unlabeled));
    assert_ne!(p, seeds::permutation(1000, 7, 1, seeds::Stream::Unlabeled));
    assert_ne!(p, seeds::permutation(1000, 8, 0, seeds::Stream::Unlabeled));
    assert_ne!(p, seeds::permutation(1000, 7, 0, seeds::Stream::Labeled));
}

#[test]
fn a_zipped_epoch_visits_each_image_at_most_once() {
    let dir = tempfile::tempdir().unwrap();
    write_stl10(dir.path(), 20, 3, 41).unwrap();
    let ds = load(
        &DataConfig {
            root: dir.path().into(),
            batch_size: 15,
            ..DataConfig::default()
        },
        0,
    )
    .unwrap();
    let plan = BatchPlan::new(ds.unlabeled.len(), ds.train.len(), 15).unwrap();
    assert_eq!(
        (plan.steps, plan.unlabeled_batch, plan.labeled_batch),
        (4, 10, 5)
    );
    let epoch = ZippedEpoch::new(&ds.unlabeled, &ds.train, plan, 3, 0);
    let (mut seen_u, mut seen_l) = (HashSet::new(), HashSet::new());
    for step in 0..plan.steps {
        let (u, l) = epoch.positions(step);
        assert!(u.iter().all(|&i| seen_u.insert(i)) && l.iter().all(|&i| seen_l.insert(i)));
    }
    assert_eq!((seen_u.len(), seen_l.len()), (40, 20));
    let first_positions = epoch.positions(0).1.to_vec();
    let batches: Vec<_> = epoch.collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 4);
    assert_eq!(batches[0].unlabeled.size(), [10, 3, 96, 96]);
    assert_eq!(batches[0].labeled.size(), [5, 3, 96, 96]);
    let labels: Vec<i64> = Vec::try_from(&batches[0].labels).unwrap();
    let expected: Vec<i64> = first_positions
        .iter()
        .map(|&p| ds.train.labels().unwrap()[p])
        .collect();
    assert_eq!(labels, expected);
    let other = ZippedEpoch::new(&ds.unlabeled, &ds.train, plan, 3, 1);
    assert_ne!(
        other.positions(0).0,
        ZippedEpoch::new(&ds.unlabeled, &ds.train, plan, 3, 0)
            .positions(0)
            .0
    );
}

#[test]
fn labeled_batches_keep_the_last_partial_batch() {
    let dir = tempfile::tempdir().unwrap();
    write_stl10(dir.path(), 23, 11, 1).unwrap();
    let ds = load(
        &DataConfig {
            root: dir.path().into(),
            ..DataConfig::default()
        },
        0,
    )
    .unwrap();
    let test = LabeledEpoch::in_order(&ds.test, 5).unwrap();
    assert_eq!(test.steps(), 3);
    let positions: Vec<Vec<usize>> = test.positions().map(<[usize]>::to_vec).collect();
    assert_eq!(
        positions,
        vec![vec![0, 1, 2, 3, 4], vec![5, 6, 7, 8, 9], vec![10]]
    );
    let sizes: Vec<i64> = test.map(|b| b.unwrap().labels.size()[0]).collect();
    assert_eq!(sizes, [5, 5, 1]);
    let shuffled = LabeledEpoch::shuffled(&ds.train, 5, 1, 0).unwrap();
    let mut all: Vec<usize> = shuffled.positions().flatten().copied().collect();
    assert_ne!(all, (0..23).collect::<Vec<_>>());
    all.sort_unstable();
    assert_eq!(all, (0..23).collect::<Vec<_>>());
    assert!(
        LabeledEpoch::in_order(&ds.unlabeled, 5).is_err(),
        "unlabeled split has no labels"
    );
}
