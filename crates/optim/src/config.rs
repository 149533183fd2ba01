//! An optimizer's settings, as a configuration file's table holds them.

/// Where Adam's epsilon sits: Keras's rule (the example's) or PyTorch's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum AdamRule {
    #[default]
    Keras,
    Pytorch,
}

/// Which update rule an optimizer applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum OptimizerKind {
    /// Adam (the example's), with decoupled weight decay.
    #[default]
    Adam,
    /// SGD with momentum (PyTorch's `torch.optim.SGD`), weight decay added to the gradient.
    Sgd,
    /// LARS: SGD with momentum whose update of each variable is scaled by the trust ratio
    /// `trust_coefficient * |w| / |g + wd w|` (You et al. 2017; SimCLR's optimizer).
    Lars,
}

/// How the learning rate moves over a run's steps (after any warm-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum LrSchedule {
    /// The same rate every step (the example's).
    #[default]
    Constant,
    /// Half a cosine from the rate down to 0 at the run's last step.
    Cosine,
}

/// How the learning rate follows the batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum LrScaling {
    /// `learning_rate` as written.
    #[default]
    None,
    /// `learning_rate * batch / 256` (Goyal et al.; SimCLR with LARS: 0.3 x B / 256).
    Linear,
    /// `learning_rate * sqrt(batch)` (SimCLR's small-batch rule: 0.075 x sqrt(B)).
    Sqrt,
}

/// An optimizer's settings; defaults are Keras's `Adam()` at a constant rate.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct OptimizerConfig {
    /// `adam`, `sgd` or `lars`.
    pub kind: OptimizerKind,
    /// The peak rate, before `lr_scaling`.
    pub learning_rate: f64,
    /// Adam's moment decays.
    pub beta1: f64,
    pub beta2: f64,
    /// Adam's epsilon.
    pub epsilon: f64,
    /// Adam: decoupled (AdamW; Keras's `weight_decay`), `var -= lr * wd * var` per step. SGD and
    /// LARS: L2, `wd * var` added to the gradient (PyTorch's `SGD`, SimCLR's LARS).
    pub weight_decay: f64,
    /// `keras` (the example's update) or `pytorch` (`torch.optim.Adam`/`AdamW`).
    pub rule: AdamRule,
    /// SGD and LARS: the momentum of the velocity `v = momentum * v + g`.
    pub momentum: f64,
    /// LARS: `eta` of the trust ratio.
    pub trust_coefficient: f64,
    /// Leave one-dimensional variables (biases, BatchNorm scales and offsets) out of weight
    /// decay and of LARS's adaptation; unset: yes for LARS, no otherwise (as the anchors do).
    pub exclude_bias_and_norm: Option<bool>,
    /// `constant` or `cosine` (to 0 at the run's last step).
    pub schedule: LrSchedule,
    /// Epochs of linear warm-up from 0 to the peak rate (fractions allowed), counted in steps.
    pub warmup_epochs: f64,
    /// `none`, `linear` (x batch / 256) or `sqrt` (x sqrt(batch)), with the run's images per
    /// step (pretraining: `data.batch_size`; the probe and supervised runs: labeled images).
    pub lr_scaling: LrScaling,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
            weight_decay: 0.0,
            rule: AdamRule::Keras,
            momentum: 0.9,
            trust_coefficient: 1e-3,
            exclude_bias_and_norm: None,
            schedule: LrSchedule::Constant,
            warmup_epochs: 0.0,
            lr_scaling: LrScaling::None,
        }
    }
}

impl OptimizerConfig {
    /// Whether one-dimensional variables skip weight decay and adaptation.
    pub fn excludes_bias_and_norm(&self) -> bool {
        self.exclude_bias_and_norm
            .unwrap_or(self.kind == OptimizerKind::Lars)
    }
}

impl OptimizerConfig {
    /// Checks every setting's range; an error names the field and the problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err((
                "learning_rate",
                format!("must be > 0, got {}", self.learning_rate),
            ));
        }
        for (field, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err((field, format!("must be in [0, 1), got {b}")));
            }
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(("epsilon", format!("must be > 0, got {}", self.epsilon)));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err((
                "weight_decay",
                format!("must be >= 0, got {}", self.weight_decay),
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err((
                "momentum",
                format!("must be in [0, 1), got {}", self.momentum),
            ));
        }
        if !(self.trust_coefficient.is_finite() && self.trust_coefficient > 0.0) {
            return Err((
                "trust_coefficient",
                format!("must be > 0, got {}", self.trust_coefficient),
            ));
        }
        if !(self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0) {
            return Err((
                "warmup_epochs",
                format!("must be >= 0, got {}", self.warmup_epochs),
            ));
        }
        Ok(())
    }
}
