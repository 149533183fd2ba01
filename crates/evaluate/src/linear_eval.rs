//! Linear evaluation on frozen features: Dense(classes) trained with the project's Adam on
//! precomputed, un-augmented encoder features (softmax cross-entropy, minibatches reshuffled
//! from the seed every pass), then scored on the test features. The standard "linear probe"
//! of self-supervised papers, as opposed to the example's probe trained inside the pretraining
//! step on weakly augmented images.

use models::LinearProbe;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use optim::Optimizer;
use train::config::EvalConfig;
use train::{error::Result, error::TrainError};

/// What a linear evaluation measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearScore {
    /// Mean cross-entropy of the last pass over the training features.
    pub train_loss: f64,
    pub test_acc: f64,
}

/// Trains Dense(classes) on `train` `[N, D]` / `train_labels` `[N]` for `cfg.linear_epochs`
/// passes (and at least `cfg.linear_min_steps` steps) in batches of `cfg.linear_batch_size`
/// features (a pass drops its last partial batch; fewer features than a batch make one
/// batch) and returns its accuracy on `test` /
/// `test_labels`. Everything stays on the features' device.
pub fn evaluate(
    cfg: &EvalConfig,
    seed: u64,
    (train, train_labels): (&Tensor, &Tensor),
    (test, test_labels): (&Tensor, &Tensor),
    classes: i64,
) -> Result<LinearScore> {
    let n = train.size()[0] as usize;
    if n == 0 {
        return Err(TrainError::file(
            "linear evaluation",
            "no labeled training features",
        ));
    }
    let device = train.device();
    let _init = train::steps::init_seed(seed, seeds::Stream::LinearEval);
    let vs = nn::VarStore::new(device);
    let probe = LinearProbe::new(&(vs.root() / "linear_probe"), train.size()[1], classes);
    drop(_init);
    let mut adam = Optimizer::new("linear_optimizer", &vs, &cfg.linear_optimizer);
    let batch = cfg.linear_batch_size.min(n);
    let order_seed = seeds::seed(seed, seeds::Stream::LinearEval);
    let (mut pass, mut order, mut at) = (0u64, Vec::new(), n);
    // Sum and count of the losses of the current pass, on the device.
    let mut last = (Tensor::zeros([], (Kind::Double, device)), 0usize);
    let labels = train_labels.to_kind(Kind::Int64);
    let steps = (cfg.linear_epochs * (n / batch).max(1)).max(cfg.linear_min_steps);
    for _ in 0..steps {
        if at + batch > n {
            pass += 1;
            order = seeds::permutation(n, order_seed, pass, seeds::Stream::Supervised)
                .into_iter()
                .map(|i| i as i64)
                .collect();
            at = 0;
            last = (Tensor::zeros([], (Kind::Double, device)), 0);
        }
        let idx = Tensor::from_slice(&order[at..at + batch]).to_device(device);
        at += batch;
        let logits = probe.forward(&train.index_select(0, &idx));
        let loss = logits.cross_entropy_for_logits(&labels.index_select(0, &idx));
        adam.backward_step(&loss);
        last.0 += loss.detach().to_kind(Kind::Double);
        last.1 += 1;
    }
    let test_acc = tch::no_grad(|| {
        if test.size()[0] == 0 {
            return f64::NAN;
        }
        probe
            .forward(test)
            .argmax(1, false)
            .eq_tensor(&test_labels.to_kind(Kind::Int64))
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[])
    });
    Ok(LinearScore {
        train_loss: last.0.double_value(&[]) / last.1.max(1) as f64,
        test_acc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_features_are_learned_and_noise_is_not() {
        // Class c's features sit around 3 * e_c: linearly separable, so test accuracy is
        // (almost) perfect. Features that carry nothing about the labels (fresh noise for
        // training and testing) score near chance, 25% (one standard deviation is 2.2 points
        // over 400 test images).
        let dev = tch::Device::Cpu;
        let make = |n: i64, seed: i64| {
            tch::manual_seed(seed);
            let labels = Tensor::randint(4, [n], (Kind::Int64, dev));
            let x = labels.one_hot(4).to_kind(Kind::Float) * 3.0
                + Tensor::randn([n, 4], (Kind::Float, dev)) * 0.3;
            (x, labels)
        };
        let (xa, ya) = make(400, 1);
        let (xb, yb) = make(400, 2);
        let cfg = EvalConfig {
            linear_optimizer: train::config::OptimizerConfig {
                learning_rate: 1e-2,
                ..Default::default()
            },
            linear_epochs: 300,
            linear_min_steps: 1,
            ..EvalConfig::default()
        };
        let s = evaluate(&cfg, 5, (&xa, &ya), (&xb, &yb), 4).unwrap();
        assert!(s.test_acc > 0.97, "{s:?}");
        assert!(s.train_loss < 0.3, "{s:?}");
        let noise = |seed| {
            tch::manual_seed(seed);
            Tensor::randn([400, 4], (Kind::Float, dev))
        };
        let (na, nb) = (noise(3), noise(4));
        let chance = evaluate(&cfg, 5, (&na, &ya), (&nb, &yb), 4).unwrap();
        assert!(chance.test_acc < 0.40, "{chance:?}");
        assert!(chance.train_loss > 1.0, "{chance:?}");
        // The same seed gives the same result.
        let again = evaluate(&cfg, 5, (&xa, &ya), (&xb, &yb), 4).unwrap();
        assert_eq!(again, s);
        let empty = Tensor::zeros([0, 4], (Kind::Float, dev));
        let none = Tensor::zeros([0], (Kind::Int64, dev));
        assert!(evaluate(&cfg, 5, (&empty, &none), (&xb, &yb), 4).is_err());
    }
}
