//! The losses against independent f64 references written out as loops, hand-computed values,
//! finite differences and closed forms.

use losses::{LossError, contrastive_accuracy, contrastive_loss, nt_xent};
use tch::{Device, Kind, Tensor};

fn t(rows: &[&[f64]]) -> Tensor {
    let n = rows.len() as i64;
    let d = rows[0].len() as i64;
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_slice(&flat).view([n, d])
}

fn normalize(v: &[f64]) -> Vec<f64> {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-7);
    v.iter().map(|x| x / norm).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// -log softmax(row)[target]
fn ce(row: &[f64], target: usize) -> f64 {
    let lse = row.iter().map(|x| x.exp()).sum::<f64>().ln();
    lse - row[target]
}

/// The Keras example's loss, as loops in f64.
fn reference_keras(z1: &[&[f64]], z2: &[&[f64]], temp: f64) -> f64 {
    let (a, b): (Vec<_>, Vec<_>) = (
        z1.iter().map(|r| normalize(r)).collect(),
        z2.iter().map(|r| normalize(r)).collect(),
    );
    let n = a.len();
    let mut total = 0.0;
    for i in 0..n {
        let row: Vec<f64> = (0..n).map(|j| dot(&a[i], &b[j]) / temp).collect();
        let col: Vec<f64> = (0..n).map(|j| dot(&a[j], &b[i]) / temp).collect();
        total += (ce(&row, i) + ce(&col, i)) / 2.0;
    }
    total / n as f64
}

/// NT-Xent, as loops in f64: each of 2N anchors against the 2N - 1 others.
fn reference_nt_xent(z1: &[&[f64]], z2: &[&[f64]], temp: f64) -> f64 {
    let z: Vec<Vec<f64>> = z1.iter().chain(z2).map(|r| normalize(r)).collect();
    let m = z.len();
    let n = m / 2;
    let mut total = 0.0;
    for i in 0..m {
        let positive = (i + n) % m;
        let others: Vec<usize> = (0..m).filter(|&k| k != i).collect();
        let row: Vec<f64> = others.iter().map(|&k| dot(&z[i], &z[k]) / temp).collect();
        let target = others.iter().position(|&k| k == positive).unwrap();
        total += ce(&row, target);
    }
    total / m as f64
}

fn value(x: &Tensor) -> f64 {
    x.double_value(&[])
}

#[test]
fn two_by_two_matches_the_hand_computed_value() {
    // logits = I / 1: each row's loss is -log(e / (e + 1)) = log(1 + 1/e).
    let z = t(&[&[1.0, 0.0], &[0.0, 1.0]]);
    let (loss, logits) = contrastive_loss(&z, &(&z * 3.0), 1.0).unwrap();
    let hand = (1.0 + (-1f64).exp()).ln();
    assert!(
        (value(&loss) - hand).abs() < 1e-12,
        "{} vs {hand}",
        value(&loss)
    );
    assert!((value(&loss) - 0.313_261_687_518_222_8).abs() < 1e-12);
    assert_eq!(
        Vec::<f64>::try_from(logits.flatten(0, -1)).unwrap(),
        [1.0, 0.0, 0.0, 1.0]
    );
    // NT-Xent on the same input: anchors see 1 positive (cos 1) and 2 negatives (cos 0, 0):
    // -log(e / (e + 2)).
    let (loss, _) = nt_xent(&z, &z, 1.0).unwrap();
    let hand = -((1f64).exp() / ((1f64).exp() + 2.0)).ln();
    assert!((value(&loss) - hand).abs() < 1e-12);
}

#[test]
fn three_by_two_matches_the_f64_loops() {
    let z1: [&[f64]; 3] = [&[1.0, 0.0], &[0.0, 2.0], &[1.0, 1.0]];
    let z2: [&[f64]; 3] = [&[0.5, 0.1], &[-1.0, 1.0], &[0.3, 0.9]];
    for temp in [0.1, 0.5, 2.0] {
        let (loss, _) = contrastive_loss(&t(&z1), &t(&z2), temp).unwrap();
        let want = reference_keras(&z1, &z2, temp);
        assert!(
            (value(&loss) - want).abs() < 1e-10,
            "T={temp}: {} vs {want}",
            value(&loss)
        );
        let (loss, _) = nt_xent(&t(&z1), &t(&z2), temp).unwrap();
        let want = reference_nt_xent(&z1, &z2, temp);
        assert!(
            (value(&loss) - want).abs() < 1e-10,
            "T={temp}: {} vs {want}",
            value(&loss)
        );
    }
}

#[test]
fn gradients_match_central_finite_differences() {
    tch::manual_seed(0);
    let opts = (Kind::Double, Device::Cpu);
    for loss_fn in [contrastive_loss, nt_xent] {
        let z1 = Tensor::randn([4, 3], opts).set_requires_grad(true);
        let z2 = Tensor::randn([4, 3], opts).set_requires_grad(true);
        let (loss, _) = loss_fn(&z1, &z2, 0.3).unwrap();
        loss.backward();
        let (g1, g2) = (z1.grad(), z2.grad());
        let h = 1e-6;
        tch::no_grad(|| {
            for (which, grad) in [(0, &g1), (1, &g2)] {
                for i in 0..4 {
                    for j in 0..3 {
                        let eval = |delta: f64| {
                            let (a, b) = (z1.detach().copy(), z2.detach().copy());
                            let target = if which == 0 { &a } else { &b };
                            let _ = target
                                .get(i)
                                .get(j)
                                .fill_(target.double_value(&[i, j]) + delta);
                            value(&loss_fn(&a, &b, 0.3).unwrap().0)
                        };
                        let numeric = (eval(h) - eval(-h)) / (2.0 * h);
                        let analytic = grad.double_value(&[i, j]);
                        assert!(
                            (numeric - analytic).abs() < 1e-7,
                            "z{}[{i},{j}]: {numeric} vs {analytic}",
                            which + 1
                        );
                    }
                }
            }
        });
    }
}

#[test]
fn identical_orthogonal_views_give_nearly_zero_loss() {
    let z = Tensor::eye(5, (Kind::Double, Device::Cpu)) * 2.5;
    let (loss, logits) = contrastive_loss(&z, &z, 0.01).unwrap();
    // Each row: log(1 + 4 e^{-100}).
    assert!(value(&loss) < 1e-40, "{}", value(&loss));
    assert_eq!(contrastive_accuracy(&logits).unwrap().combined(), 1.0);
    let (loss, _) = nt_xent(&z, &z, 0.01).unwrap();
    assert!(value(&loss) < 1e-40);
}

#[test]
fn uninformative_embeddings_give_ln_n() {
    for n in [2i64, 7, 32] {
        let z = Tensor::ones([n, 16], (Kind::Double, Device::Cpu));
        let (loss, _) = contrastive_loss(&z, &z, 0.1).unwrap();
        assert!((value(&loss) - (n as f64).ln()).abs() < 1e-12);
        // NT-Xent's closed form: ln(2N - 1).
        let (loss, _) = nt_xent(&z, &z, 0.1).unwrap();
        assert!((value(&loss) - ((2 * n - 1) as f64).ln()).abs() < 1e-12);
    }
    // Zero vectors are floored, not NaN: every similarity is 0.
    let z = Tensor::zeros([3, 4], (Kind::Float, Device::Cpu));
    let (loss, _) = contrastive_loss(&z, &z, 0.1).unwrap();
    assert!((value(&loss) - 3f64.ln()).abs() < 1e-6);
}

#[test]
fn accuracy_counts_rows_and_columns_separately() {
    // Row argmaxes: 0, 0, 2 -> 2/3; column argmaxes: 0, 2, 2 -> 2/3, with column 1 wrong.
    let logits = t(&[&[5.0, 1.0, 0.0], &[4.0, 2.0, 0.0], &[0.0, 3.0, 9.0]]);
    let acc = contrastive_accuracy(&logits).unwrap();
    assert!((acc.rows - 2.0 / 3.0).abs() < 1e-12);
    assert!((acc.columns - 2.0 / 3.0).abs() < 1e-12);
    // Rows: argmax 1, 1 -> 1/2 right; columns [0, 0] and [1, 2]: argmax 0 (first of a tie), 1.
    let logits = t(&[&[0.0, 1.0], &[0.0, 2.0]]);
    let acc = contrastive_accuracy(&logits).unwrap();
    assert_eq!((acc.rows, acc.columns), (0.5, 1.0));
    assert_eq!(acc.combined(), 0.75);
    assert!(matches!(
        contrastive_accuracy(&t(&[&[1.0, 2.0]])),
        Err(LossError::Logits(_))
    ));
}

#[test]
fn bad_temperatures_and_shapes_are_errors_not_nan() {
    let z = Tensor::ones([3, 4], (Kind::Float, Device::Cpu));
    for temp in [0.0, -0.1, f64::NAN, f64::INFINITY] {
        for f in [contrastive_loss, nt_xent] {
            let e = f(&z, &z, temp).unwrap_err();
            assert!(matches!(e, LossError::Temperature(_)), "{e}");
        }
    }
    let other = Tensor::ones([3, 5], (Kind::Float, Device::Cpu));
    let e = contrastive_loss(&z, &other, 0.1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the two views' projections differ in shape: z1 [3, 4] vs z2 [3, 5]"
    );
    let flat = Tensor::ones([12], (Kind::Float, Device::Cpu));
    assert!(matches!(
        nt_xent(&flat, &flat, 0.1),
        Err(LossError::Rank { .. })
    ));
    let empty = Tensor::ones([0, 4], (Kind::Float, Device::Cpu));
    assert!(matches!(
        contrastive_loss(&empty, &empty, 0.1),
        Err(LossError::Rank { .. })
    ));
}
