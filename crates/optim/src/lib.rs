//! The optimizers, written in tensor operations so that their state can be saved and a run
//! resumed exactly (tch 0.24's optimizers keep their moments inside libtorch, out of reach).
//!
//! With `g` the gradient, `t` the 1-based step and `lr` the step's rate ([`Schedule`]):
//! - **Adam** keeps `m = b1 m + (1 - b1) g` and `v = b2 v + (1 - b2) g^2`; the two rules differ
//!   in where epsilon sits. [`AdamRule::Keras`] (the example is a Keras program, so the default):
//!   `alpha = lr sqrt(1 - b2^t) / (1 - b1^t)`, `var -= alpha m / (sqrt(v) + eps)`;
//!   [`AdamRule::Pytorch`]: `var -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
//!   `weight_decay` is decoupled (AdamW), as Keras's `weight_decay` and PyTorch's `AdamW`:
//!   `var -= lr wd var` before the update, not added to the gradient.
//! - **SGD** (PyTorch's `SGD`, no dampening): `d = g + wd var`, `m = momentum m + d`,
//!   `var -= lr m`.
//! - **LARS** (You et al. 2017, as SimCLR and lightly apply it): SGD whose `d` is first scaled
//!   by the trust ratio `eta |var| / |d|` (1 when either norm is 0).
//!
//! With `exclude_bias_and_norm`, one-dimensional variables (biases, BatchNorm scales and offsets)
//! get neither weight decay nor the trust ratio.
//!
//! The state is `<name>.step` (int64 scalar: updates applied), `<name>.m.<variable>` and, for
//! Adam, `<name>.v.<variable>` (float32, the variable's shape), with `<name>` the optimizer's
//! name in the Keras example (`optimizer`, `contrastive_optimizer`, `probe_optimizer`). The step
//! count places the schedule, so a resumed run continues its warm-up and decay where it stopped.

use std::collections::HashMap;

use tch::nn::VarStore;
use tch::{Kind, Tensor};

mod config;

pub use config::{AdamRule, LrScaling, LrSchedule, OptimizerConfig, OptimizerKind};

/// The batch size that [`LrScaling::Linear`] leaves the rate unchanged at.
pub const REFERENCE_BATCH: f64 = 256.0;

/// What a run's schedule needs to know of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunLength {
    pub steps_per_epoch: usize,
    pub epochs: usize,
    /// Images per step the rate is scaled by.
    pub batch: usize,
}

/// The learning rate of each step: the peak `learning_rate` scaled with the batch size, reached
/// by a linear warm-up, then constant or decayed by half a cosine to 0 at the last step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    peak: f64,
    warmup_steps: f64,
    total_steps: f64,
    cosine: bool,
}

impl Schedule {
    /// `cfg`'s schedule over `run`.
    pub fn new(cfg: &OptimizerConfig, run: RunLength) -> Self {
        let batch = run.batch as f64;
        let scale = match cfg.lr_scaling {
            LrScaling::None => 1.0,
            LrScaling::Linear => batch / REFERENCE_BATCH,
            LrScaling::Sqrt => batch.sqrt(),
        };
        Schedule {
            peak: cfg.learning_rate * scale,
            warmup_steps: cfg.warmup_epochs * run.steps_per_epoch as f64,
            total_steps: (run.steps_per_epoch * run.epochs) as f64,
            cosine: cfg.schedule == LrSchedule::Cosine,
        }
    }

    /// `learning_rate` at every step (what an optimizer uses until it is given a run).
    pub fn constant(cfg: &OptimizerConfig) -> Self {
        Schedule {
            peak: cfg.learning_rate,
            warmup_steps: 0.0,
            total_steps: 0.0,
            cosine: false,
        }
    }

    /// The rate of step `t` (1-based).
    pub fn rate(&self, t: i64) -> f64 {
        let t = t as f64;
        if t <= self.warmup_steps {
            return self.peak * t / self.warmup_steps;
        }
        if !self.cosine || self.total_steps <= self.warmup_steps {
            return self.peak;
        }
        let progress = ((t - self.warmup_steps) / (self.total_steps - self.warmup_steps)).min(1.0);
        self.peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// An optimizer over the trainable variables of one [`VarStore`], with its state.
pub struct Optimizer {
    name: &'static str,
    config: OptimizerConfig,
    schedule: Schedule,
    slots: Vec<Slot>,
    step: i64,
}

struct Slot {
    name: String,
    var: Tensor,
    /// Adam's first moment, or SGD's and LARS's velocity.
    m: Tensor,
    /// Adam's second moment.
    v: Option<Tensor>,
    /// One-dimensional and excluded from weight decay and adaptation.
    excluded: bool,
}

/// An optimizer state that does not fit the model: names the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("optimizer state: {0}")]
pub struct StateError(pub String);

impl Optimizer {
    /// The optimizer of `config` over every trainable variable of `vs`, with zero moments and
    /// a constant rate until [`Optimizer::set_run`]. The moments take each variable's memory
    /// format (channels-last kernels get channels-last moments).
    pub fn new(name: &'static str, vs: &VarStore, config: &OptimizerConfig) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let exclude = config.excludes_bias_and_norm();
        let adam = config.kind == OptimizerKind::Adam;
        let slots = vars
            .into_iter()
            .map(|(name, var)| Slot {
                m: var.zeros_like(),
                v: adam.then(|| var.zeros_like()),
                excluded: exclude && var.dim() <= 1,
                name,
                var,
            })
            .collect();
        Optimizer {
            name,
            schedule: Schedule::constant(config),
            config: config.clone(),
            slots,
            step: 0,
        }
    }

    /// Sets the schedule for a run of `run`'s length.
    pub fn set_run(&mut self, run: RunLength) {
        self.schedule = Schedule::new(&self.config, run);
    }

    /// The schedule the rate follows.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Updates applied so far.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// Its name (`contrastive_optimizer`, ...).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The rate of the last update (of the first, before any).
    pub fn learning_rate(&self) -> f64 {
        self.schedule.rate(self.step.max(1))
    }

    /// Clears the gradients, back-propagates `loss` and applies one update.
    pub fn backward_step(&mut self, loss: &Tensor) {
        self.zero_grad();
        tracing::debug_span!("backward", optimizer = self.name).in_scope(|| loss.backward());
        tracing::debug_span!("optimizer step", optimizer = self.name).in_scope(|| self.update());
    }

    /// Clears every variable's gradient.
    pub fn zero_grad(&mut self) {
        for s in &mut self.slots {
            s.var.zero_grad();
        }
    }

    /// One update from the current gradients; a variable without a gradient is left alone
    /// (its moments too), as both reference implementations do.
    pub fn update(&mut self) {
        self.step += 1;
        let lr = self.schedule.rate(self.step);
        let (c, step) = (&self.config, self.step);
        tch::no_grad(|| {
            for s in &mut self.slots {
                let g = s.var.grad();
                if !g.defined() {
                    continue;
                }
                match c.kind {
                    OptimizerKind::Adam => adam_update(s, &g, c, lr, step),
                    OptimizerKind::Sgd | OptimizerKind::Lars => sgd_update(s, &g, c, lr),
                }
            }
        });
    }

    /// The state as named tensors (contiguous, on the CPU-independent names of the module
    /// documentation), ready for a safetensors file.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![(format!("{}.step", self.name), Tensor::from(self.step))];
        for s in &self.slots {
            out.push((format!("{}.m.{}", self.name, s.name), s.m.contiguous()));
            if let Some(v) = &s.v {
                out.push((format!("{}.v.{}", self.name, s.name), v.contiguous()));
            }
        }
        out
    }

    /// Restores the state from `stored` (as [`Optimizer::state`] names it), checking every key and
    /// shape before changing anything.
    pub fn load_state(&mut self, stored: &HashMap<String, Tensor>) -> Result<(), StateError> {
        let get = |key: &str| {
            stored
                .get(key)
                .ok_or_else(|| StateError(format!("missing '{key}'")))
        };
        let step_key = format!("{}.step", self.name);
        let step = get(&step_key)?;
        if step.numel() != 1 || step.kind() != Kind::Int64 {
            return Err(StateError(format!("'{step_key}' is not an int64 scalar")));
        }
        let step = step.int64_value(&[]);
        if step < 0 {
            return Err(StateError(format!("'{step_key}' is negative ({step})")));
        }
        let moment = |which: &str, s: &Slot| {
            let key = format!("{}.{which}.{}", self.name, s.name);
            let t = get(&key)?;
            if t.size() != s.var.size() || t.kind() != Kind::Float {
                return Err(StateError(format!(
                    "'{key}' is {:?} {:?}, the model needs float32 {:?}",
                    t.kind(),
                    t.size(),
                    s.var.size()
                )));
            }
            Ok(t)
        };
        let mut moments = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let m = moment("m", s)?;
            let v = s.v.as_ref().map(|_| moment("v", s)).transpose()?;
            moments.push((m, v));
        }
        tch::no_grad(|| {
            for (s, (m, v)) in self.slots.iter_mut().zip(moments) {
                s.m.copy_(m);
                if let (Some(dst), Some(src)) = (s.v.as_mut(), v) {
                    dst.copy_(src);
                }
            }
        });
        self.step = step;
        Ok(())
    }
}

/// One Adam update of `s` (see the module documentation).
fn adam_update(s: &mut Slot, g: &Tensor, c: &OptimizerConfig, lr: f64, step: i64) {
    let t = step as f64;
    let (bc1, bc2) = (1.0 - c.beta1.powf(t), 1.0 - c.beta2.powf(t));
    if c.weight_decay > 0.0 && !s.excluded {
        let _ = s.var.g_mul_scalar_(1.0 - lr * c.weight_decay);
    }
    let v = s.v.as_mut().expect("Adam keeps a second moment");
    let _ = s.m.lerp_(g, 1.0 - c.beta1);
    let _ = v.g_mul_scalar_(c.beta2).addcmul_(g, &(g * (1.0 - c.beta2)));
    let (mut denom, alpha) = match c.rule {
        AdamRule::Keras => (v.sqrt(), lr * bc2.sqrt() / bc1),
        AdamRule::Pytorch => (v.sqrt() / bc2.sqrt(), lr / bc1),
    };
    let _ = denom.g_add_scalar_(c.epsilon);
    let _ = s.var.g_sub_(&(&s.m / &denom * alpha));
}

/// One SGD or LARS update of `s` (see the module documentation), without reading anything
/// back from the device.
fn sgd_update(s: &mut Slot, g: &Tensor, c: &OptimizerConfig, lr: f64) {
    let d = if c.weight_decay > 0.0 && !s.excluded {
        g + &s.var * c.weight_decay
    } else {
        g.shallow_clone()
    };
    // The trust ratio stays a device scalar: no synchronisation per variable.
    let d = if c.kind == OptimizerKind::Lars && !s.excluded {
        let (w_norm, d_norm) = (s.var.norm(), d.norm());
        let positive = w_norm.gt(0.0).logical_and(&d_norm.gt(0.0));
        let ratio =
            (&w_norm / &d_norm * c.trust_coefficient).where_self(&positive, &w_norm.ones_like());
        &d * ratio
    } else {
        d
    };
    let _ = s.m.g_mul_scalar_(c.momentum).g_add_(&d);
    let _ = s.var.g_sub_(&(&s.m * lr));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, nn};

    /// Adam in f64 on plain numbers, straight from the formulas in the module documentation.
    fn reference(rule: AdamRule, c: &OptimizerConfig, p0: f64, grads: &[f64]) -> (f64, f64, f64) {
        let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
        for (i, &g) in grads.iter().enumerate() {
            let t = (i + 1) as f64;
            p -= c.learning_rate * c.weight_decay * p;
            m = c.beta1 * m + (1.0 - c.beta1) * g;
            v = c.beta2 * v + (1.0 - c.beta2) * g * g;
            let (bc1, bc2) = (1.0 - c.beta1.powf(t), 1.0 - c.beta2.powf(t));
            p -= match rule {
                AdamRule::Keras => c.learning_rate * bc2.sqrt() / bc1 * m / (v.sqrt() + c.epsilon),
                AdamRule::Pytorch => {
                    c.learning_rate / bc1 * m / (v.sqrt() / bc2.sqrt() + c.epsilon)
                }
            };
        }
        (p, m, v)
    }

    #[test]
    fn both_rules_match_an_f64_reference_over_many_steps() {
        for rule in [AdamRule::Keras, AdamRule::Pytorch] {
            // A large epsilon makes the two rules differ visibly.
            let c = OptimizerConfig {
                learning_rate: 0.05,
                epsilon: 0.01,
                weight_decay: 0.1,
                rule,
                ..OptimizerConfig::default()
            };
            let vs = nn::VarStore::new(Device::Cpu);
            let p0 = [0.5f64, -1.0, 2.0];
            let w = vs
                .root()
                .var_copy("w", &Tensor::from_slice(&p0).to_kind(Kind::Float));
            let mut adam = Optimizer::new("optimizer", &vs, &c);
            // loss = sum(a * w^2 + b * w): gradient 2 a w + b, so it changes every step.
            let (a, b) = ([0.3f64, 1.5, -0.2], [1.0f64, -0.5, 0.25]);
            let mut grads = vec![Vec::new(); 3];
            for _ in 0..25 {
                let now = Vec::<f64>::try_from(w.to_kind(Kind::Double)).unwrap();
                for i in 0..3 {
                    grads[i].push(2.0 * a[i] * now[i] + b[i]);
                }
                let at = Tensor::from_slice(&a).to_kind(Kind::Float);
                let bt = Tensor::from_slice(&b).to_kind(Kind::Float);
                let loss = (&at * &w * &w + &bt * &w).sum(Kind::Float);
                adam.backward_step(&loss);
            }
            let got = Vec::<f64>::try_from(w.to_kind(Kind::Double)).unwrap();
            let state: HashMap<_, _> = adam.state().into_iter().collect();
            let m = Vec::<f64>::try_from(state["optimizer.m.w"].to_kind(Kind::Double)).unwrap();
            for i in 0..3 {
                let (p, rm, _) = reference(rule, &c, p0[i], &grads[i]);
                assert!(
                    (got[i] - p).abs() < 1e-5,
                    "{rule:?} w[{i}]: {} vs {p}",
                    got[i]
                );
                assert!(
                    (m[i] - rm).abs() < 1e-5,
                    "{rule:?} m[{i}]: {} vs {rm}",
                    m[i]
                );
            }
            assert_eq!(state["optimizer.step"].int64_value(&[]), 25);
        }
        // The rules really differ with this epsilon (the test would not notice a swap otherwise).
        let c = OptimizerConfig {
            epsilon: 0.01,
            ..OptimizerConfig::default()
        };
        let k = reference(AdamRule::Keras, &c, 1.0, &[0.1, 0.2]).0;
        let p = reference(AdamRule::Pytorch, &c, 1.0, &[0.1, 0.2]).0;
        assert!((k - p).abs() > 1e-5, "{k} {p}");
    }

    /// SGD or LARS in f64 on one variable (a vector), straight from the module documentation.
    fn sgd_reference(
        c: &OptimizerConfig,
        p0: &[f64],
        one_dimensional: bool,
        grads: &[Vec<f64>],
        rates: &[f64],
    ) -> Vec<f64> {
        let excluded = c.excludes_bias_and_norm() && one_dimensional;
        let mut p = p0.to_vec();
        let mut m = vec![0.0; p.len()];
        for (g, lr) in grads.iter().zip(rates) {
            let wd = if excluded { 0.0 } else { c.weight_decay };
            let mut d: Vec<f64> = g.iter().zip(&p).map(|(g, p)| g + wd * p).collect();
            if c.kind == OptimizerKind::Lars && !excluded {
                let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
                let (wn, dn) = (norm(&p), norm(&d));
                let q = if wn > 0.0 && dn > 0.0 {
                    c.trust_coefficient * wn / dn
                } else {
                    1.0
                };
                d.iter_mut().for_each(|x| *x *= q);
            }
            for i in 0..p.len() {
                m[i] = c.momentum * m[i] + d[i];
                p[i] -= lr * m[i];
            }
        }
        p
    }

    #[test]
    fn sgd_and_lars_match_an_f64_reference_with_a_scheduled_rate() {
        let run = RunLength {
            steps_per_epoch: 4,
            epochs: 5,
            batch: 64,
        };
        for kind in [OptimizerKind::Sgd, OptimizerKind::Lars] {
            let c = OptimizerConfig {
                kind,
                learning_rate: 0.4,
                momentum: 0.8,
                weight_decay: 0.05,
                trust_coefficient: 0.02,
                schedule: LrSchedule::Cosine,
                warmup_epochs: 1.0,
                lr_scaling: LrScaling::Linear,
                ..OptimizerConfig::default()
            };
            let vs = nn::VarStore::new(Device::Cpu);
            let p0 = [0.5f64, -1.0, 2.0];
            // A vector weight (adapted, decayed) and a one-element "bias" (excluded for LARS).
            let w = vs
                .root()
                .var_copy("w", &Tensor::from_slice(&[0.5f32, -1.0, 2.0]).view([1, 3]));
            let b = vs.root().var_copy("b", &Tensor::from_slice(&[0.3f32]));
            let mut opt = Optimizer::new("optimizer", &vs, &c);
            opt.set_run(run);
            let (mut gw, mut gb, mut rates) = (Vec::new(), Vec::new(), Vec::new());
            let a = [0.3f64, 1.5, -0.2];
            for t in 1..=20 {
                let now = Vec::<f64>::try_from(w.flatten(0, -1).to_kind(Kind::Double)).unwrap();
                gw.push(
                    (0..3)
                        .map(|i| 2.0 * a[i] * now[i] + 1.0)
                        .collect::<Vec<_>>(),
                );
                gb.push(vec![1.0]);
                rates.push(Schedule::new(&c, run).rate(t));
                let at = Tensor::from_slice(&a).to_kind(Kind::Float);
                let loss = (&at * &w * &w + &w).sum(Kind::Float) + b.sum(Kind::Float);
                opt.backward_step(&loss);
            }
            let got = Vec::<f64>::try_from(w.flatten(0, -1).to_kind(Kind::Double)).unwrap();
            let want = sgd_reference(&c, &p0, false, &gw, &rates);
            for i in 0..3 {
                assert!(
                    (got[i] - want[i]).abs() < 1e-5,
                    "{kind:?} w[{i}]: {} vs {}",
                    got[i],
                    want[i]
                );
            }
            let got_b = b.double_value(&[0]);
            let want_b = sgd_reference(&c, &[0.3], true, &gb, &rates)[0];
            assert!(
                (got_b - want_b).abs() < 1e-5,
                "{kind:?} b: {got_b} vs {want_b}"
            );
            // SGD and LARS keep one buffer per variable.
            let state: HashMap<_, _> = opt.state().into_iter().collect();
            assert!(state.contains_key("optimizer.m.w") && !state.contains_key("optimizer.v.w"));
        }
        // LARS really adapts (else the test would pass for SGD's rule twice) and excludes biases.
        let base = OptimizerConfig {
            momentum: 0.0,
            weight_decay: 0.5,
            ..OptimizerConfig::default()
        };
        let sgd = OptimizerConfig {
            kind: OptimizerKind::Sgd,
            ..base.clone()
        };
        let lars = OptimizerConfig {
            kind: OptimizerKind::Lars,
            ..base
        };
        let g = [vec![1.0, 1.0, 1.0]];
        assert_ne!(
            sgd_reference(&sgd, &[0.5, -1.0, 2.0], false, &g, &[0.1]),
            sgd_reference(&lars, &[0.5, -1.0, 2.0], false, &g, &[0.1])
        );
        // An excluded bias: no decay, no trust ratio: p - lr g.
        assert_eq!(
            sgd_reference(&lars, &[0.3], true, &[vec![1.0]], &[0.1]),
            vec![0.3 - 0.1]
        );
        assert!(lars.excludes_bias_and_norm() && !sgd.excludes_bias_and_norm());
    }

    #[test]
    fn the_schedule_warms_up_linearly_then_decays_by_a_cosine_to_zero() {
        let c = OptimizerConfig {
            learning_rate: 0.3,
            schedule: LrSchedule::Cosine,
            warmup_epochs: 2.0,
            lr_scaling: LrScaling::Linear,
            ..OptimizerConfig::default()
        };
        let run = RunLength {
            steps_per_epoch: 10,
            epochs: 12,
            batch: 512,
        };
        let s = Schedule::new(&c, run);
        // Peak 0.3 x 512 / 256 = 0.6 at the end of the 20 warm-up steps.
        assert!((s.rate(1) - 0.03).abs() < 1e-12);
        assert!((s.rate(10) - 0.3).abs() < 1e-12);
        assert!((s.rate(20) - 0.6).abs() < 1e-12);
        // Halfway through the 100 decay steps: half the peak; at the last step: 0.
        assert!((s.rate(70) - 0.3).abs() < 1e-12);
        assert!(
            (s.rate(45) - 0.6 * 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos())).abs() < 1e-12
        );
        assert!(s.rate(120).abs() < 1e-12);
        assert!(s.rate(130).abs() < 1e-12, "past the end it stays at 0");
        // sqrt scaling: 0.075 x sqrt(4096) = 4.8, SimCLR's rule; constant keeps the peak.
        let sqrt = OptimizerConfig {
            learning_rate: 0.075,
            lr_scaling: LrScaling::Sqrt,
            ..OptimizerConfig::default()
        };
        let s = Schedule::new(&sqrt, RunLength { batch: 4096, ..run });
        assert!((s.rate(1) - 4.8).abs() < 1e-12 && (s.rate(119) - 4.8).abs() < 1e-12);
        // Defaults: the example's constant rate, untouched by the batch size.
        let s = Schedule::new(&OptimizerConfig::default(), run);
        assert_eq!((s.rate(1), s.rate(120)), (1e-3, 1e-3));
    }

    #[test]
    fn a_resumed_schedule_continues_from_the_saved_step() {
        let c = OptimizerConfig {
            kind: OptimizerKind::Sgd,
            learning_rate: 0.1,
            schedule: LrSchedule::Cosine,
            warmup_epochs: 1.0,
            ..OptimizerConfig::default()
        };
        let run = RunLength {
            steps_per_epoch: 3,
            epochs: 3,
            batch: 8,
        };
        let train = |restore_after: Option<usize>| {
            let vs = nn::VarStore::new(Device::Cpu);
            let w = vs
                .root()
                .var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0]));
            let mut opt = Optimizer::new("optimizer", &vs, &c);
            opt.set_run(run);
            for i in 0..9 {
                if restore_after == Some(i) {
                    let saved: HashMap<_, _> = opt
                        .state()
                        .into_iter()
                        .map(|(k, t)| (k, t.copy()))
                        .collect();
                    opt = Optimizer::new("optimizer", &vs, &c);
                    opt.set_run(run);
                    opt.load_state(&saved).unwrap();
                }
                opt.backward_step(&(&w * &w * (i as f64 + 1.0)).sum(Kind::Float));
            }
            Vec::<f32>::try_from(&w).unwrap()
        };
        assert_eq!(train(None), train(Some(4)));
        // An SGD state lacks Adam's second moments: refused by key.
        let vs = nn::VarStore::new(Device::Cpu);
        let _w = vs.root().zeros("w", &[2]);
        let sgd = Optimizer::new("optimizer", &vs, &c);
        let state: HashMap<_, _> = sgd.state().into_iter().collect();
        let mut adam = Optimizer::new("optimizer", &vs, &OptimizerConfig::default());
        let e = adam.load_state(&state).unwrap_err().to_string();
        assert!(e.contains("missing 'optimizer.v.w'"), "{e}");
    }

    #[test]
    fn saved_state_restores_the_same_trajectory() {
        // Replace the optimizer after `restore_after` steps, with the saved state or without.
        let run = |restore_after: Option<usize>, load: bool| {
            let vs = nn::VarStore::new(Device::Cpu);
            let w = (vs.root() / "layer").var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0]));
            let c = OptimizerConfig::default();
            let mut adam = Optimizer::new("probe_optimizer", &vs, &c);
            for i in 0..6 {
                if restore_after == Some(i) {
                    let saved: HashMap<_, _> = adam
                        .state()
                        .into_iter()
                        .map(|(k, t)| (k, t.copy()))
                        .collect();
                    let mut fresh = Optimizer::new("probe_optimizer", &vs, &c);
                    if load {
                        fresh.load_state(&saved).unwrap();
                    }
                    adam = fresh;
                }
                let loss = (&w * &w * (i as f64 + 1.0)).sum(Kind::Float);
                adam.backward_step(&loss);
            }
            Vec::<f32>::try_from(&w).unwrap()
        };
        assert_eq!(run(None, true), run(Some(3), true));
        // Fresh moments change the trajectory, so the equality above says something.
        assert_ne!(run(None, true), run(Some(3), false));
    }

    #[test]
    fn a_state_of_another_model_is_refused_by_key() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _w = vs.root().zeros("w", &[2, 3]);
        let mut adam = Optimizer::new("optimizer", &vs, &OptimizerConfig::default());
        let mut state: HashMap<_, _> = adam.state().into_iter().collect();
        state.insert(
            "optimizer.v.w".into(),
            Tensor::zeros([3, 2], (Kind::Float, Device::Cpu)),
        );
        let e = adam.load_state(&state).unwrap_err().to_string();
        assert!(e.contains("optimizer.v.w") && e.contains("[3, 2]"), "{e}");
        state.remove("optimizer.m.w");
        let e = adam.load_state(&state).unwrap_err().to_string();
        assert!(e.contains("missing 'optimizer.m.w'"), "{e}");
        state.insert("optimizer.step".into(), Tensor::from(1.5f32));
        let e = adam.load_state(&state).unwrap_err().to_string();
        assert!(e.contains("int64"), "{e}");
    }
}
