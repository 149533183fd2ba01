//! Adam written in tensor operations, so that its state can be saved and a run resumed exactly
//! (tch 0.24's optimizers keep their moments inside libtorch, out of reach).
//!
//! With `g` the gradient and `t` the 1-based step, both rules keep
//! `m = b1 m + (1 - b1) g` and `v = b2 v + (1 - b2) g^2`, and differ in where epsilon sits:
//! - [`AdamRule::Keras`] (the example is a Keras program, so the default):
//!   `alpha = lr sqrt(1 - b2^t) / (1 - b1^t)`, `var -= alpha m / (sqrt(v) + eps)`;
//! - [`AdamRule::Pytorch`]: `var -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
//!
//! `weight_decay` is decoupled (AdamW), as Keras's `weight_decay` and PyTorch's `AdamW`:
//! `var -= lr wd var` before the update, not added to the gradient.
//!
//! The state is `<name>.step` (int64 scalar: updates applied), `<name>.m.<variable>` and
//! `<name>.v.<variable>` (float32, the variable's shape), with `<name>` the optimizer's name in
//! the Keras example (`optimizer`, `contrastive_optimizer`, `probe_optimizer`).

use std::collections::HashMap;

use tch::nn::VarStore;
use tch::{Kind, Tensor};

use crate::config::{AdamRule, OptimizerConfig};

/// Adam over the variables of one [`VarStore`], with its state.
pub struct Adam {
    name: &'static str,
    config: OptimizerConfig,
    /// `(variable name, variable, m, v)`, sorted by name.
    slots: Vec<Slot>,
    step: i64,
}

struct Slot {
    name: String,
    var: Tensor,
    m: Tensor,
    v: Tensor,
}

/// An optimizer state that does not fit the model: names the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("optimizer state: {0}")]
pub struct StateError(pub String);

impl Adam {
    /// Adam over every trainable variable of `vs`, with zero moments. The moments take each
    /// variable's memory format (channels-last kernels get channels-last moments).
    pub fn new(name: &'static str, vs: &VarStore, config: &OptimizerConfig) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars
            .into_iter()
            .map(|(name, var)| Slot {
                m: var.zeros_like(),
                v: var.zeros_like(),
                name,
                var,
            })
            .collect();
        Adam {
            name,
            config: config.clone(),
            slots,
            step: 0,
        }
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
        let c = &self.config;
        let t = self.step as f64;
        let (bc1, bc2) = (1.0 - c.beta1.powf(t), 1.0 - c.beta2.powf(t));
        tch::no_grad(|| {
            for s in &mut self.slots {
                let g = s.var.grad();
                if !g.defined() {
                    continue;
                }
                if c.weight_decay > 0.0 {
                    let _ = s.var.g_mul_scalar_(1.0 - c.learning_rate * c.weight_decay);
                }
                let _ = s.m.lerp_(&g, 1.0 - c.beta1);
                let _ =
                    s.v.g_mul_scalar_(c.beta2)
                        .addcmul_(&g, &(&g * (1.0 - c.beta2)));
                let (mut denom, alpha) = match c.rule {
                    AdamRule::Keras => (s.v.sqrt(), c.learning_rate * bc2.sqrt() / bc1),
                    AdamRule::Pytorch => (s.v.sqrt() / bc2.sqrt(), c.learning_rate / bc1),
                };
                let _ = denom.g_add_scalar_(c.epsilon);
                let _ = s.var.g_sub_(&(&s.m / &denom * alpha));
            }
        });
    }

    /// The state as named tensors (contiguous, on the CPU-independent names of the module
    /// documentation), ready for a safetensors file.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![(format!("{}.step", self.name), Tensor::from(self.step))];
        for s in &self.slots {
            out.push((format!("{}.m.{}", self.name, s.name), s.m.contiguous()));
            out.push((format!("{}.v.{}", self.name, s.name), s.v.contiguous()));
        }
        out
    }

    /// Restores the state from `stored` (as [`Adam::state`] names it), checking every key and
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
        let mut moments = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let pair = ["m", "v"].map(|which| {
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
            });
            let [m, v] = pair;
            moments.push((m?, v?));
        }
        tch::no_grad(|| {
            for (s, (m, v)) in self.slots.iter_mut().zip(moments) {
                s.m.copy_(m);
                s.v.copy_(v);
            }
        });
        self.step = step;
        Ok(())
    }
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
            let mut adam = Adam::new("optimizer", &vs, &c);
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

    #[test]
    fn saved_state_restores_the_same_trajectory() {
        // Replace the optimizer after `restore_after` steps, with the saved state or without.
        let run = |restore_after: Option<usize>, load: bool| {
            let vs = nn::VarStore::new(Device::Cpu);
            let w = (vs.root() / "layer").var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0]));
            let c = OptimizerConfig::default();
            let mut adam = Adam::new("probe_optimizer", &vs, &c);
            for i in 0..6 {
                if restore_after == Some(i) {
                    let saved: HashMap<_, _> = adam
                        .state()
                        .into_iter()
                        .map(|(k, t)| (k, t.copy()))
                        .collect();
                    let mut fresh = Adam::new("probe_optimizer", &vs, &c);
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
        let mut adam = Adam::new("optimizer", &vs, &OptimizerConfig::default());
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
