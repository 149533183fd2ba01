//! Contrastive losses for SimCLR on libtorch tensors, usable on their own (this crate depends on
//! `tch` and nothing else of simclr-rs).
//!
//! - [`contrastive_loss`]: the loss of the Keras example "Semi-supervised image classification
//!   using contrastive pretraining with SimCLR": cosine similarities between the two views only
//!   (`N` candidates per anchor), cross-entropy over rows and over columns, averaged.
//! - [`nt_xent`]: the SimCLR paper's NT-Xent (Chen et al. 2020, eq. 1): both views in the
//!   denominator, `2N - 2` negatives per anchor, self-similarity masked.
//! - [`contrastive_accuracy`]: the example's metric, the share of rows and of columns whose
//!   argmax is the diagonal.
//!
//! **Mean, not sum.** Both losses return the *mean* over the batch. The example's
//! `contrastive_loss` returns one value per image and its `train_step` hands that vector to
//! `tape.gradient`, which differentiates its *sum*: the example's gradients are `N` times ours
//! (`N = 525` per step on STL-10; the probe's Keras loss object already averages). Under Adam
//! the scale of the gradient cancels out of `m / sqrt(v)`, except against epsilon: the example's
//! `1e-7` is effectively `N` times smaller relative to its gradients than to ours. With
//! gradients far above `1e-7 * N`, as here, the updates are the same; to match the example's
//! ratio exactly, divide the optimizer's epsilon by `N`. The reported loss values are means in
//! both (Keras's metric tracker averages the vector).
//!
//! ```
//! use tch::{Device, Kind, Tensor};
//! // Two views of 4 samples, 8-dimensional projections.
//! let z1 = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
//! let z2 = &z1 + 0.01 * Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
//! let (loss, logits) = losses::contrastive_loss(&z1, &z2, 0.1)?;
//! assert_eq!(logits.size(), [4, 4]);
//! assert!(loss.double_value(&[]) < (4f64).ln()); // better than chance
//! let acc = losses::contrastive_accuracy(&logits)?;
//! assert_eq!(acc.combined(), 1.0); // near-identical views find each other
//! # Ok::<(), losses::LossError>(())
//! ```

use tch::{Kind, Reduction, Tensor};

/// `keras.ops.normalize`'s floor on the norm (Keras's `backend.epsilon()`).
pub const NORM_EPSILON: f64 = 1e-7;

/// Invalid arguments to a loss: never a NaN or a shape panic instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossError {
    #[error("temperature must be a finite number > 0, got {0}")]
    Temperature(f64),
    #[error("projections must be 2-D [N, D] with N >= 1, got z1 {z1:?} and z2 {z2:?}")]
    Rank { z1: Vec<i64>, z2: Vec<i64> },
    #[error("the two views' projections differ in shape: z1 {z1:?} vs z2 {z2:?}")]
    ShapeMismatch { z1: Vec<i64>, z2: Vec<i64> },
    #[error("logits must be a square [N, N] matrix with N >= 1, got {0:?}")]
    Logits(Vec<i64>),
}

/// Which contrastive loss to use; with the `serde` feature spelled `keras` and `nt_xent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum ContrastiveLossKind {
    /// [`contrastive_loss`], the Keras example's (the default).
    #[default]
    Keras,
    /// [`nt_xent`], the SimCLR paper's.
    NtXent,
}

impl ContrastiveLossKind {
    /// Computes this loss; see [`contrastive_loss`] and [`nt_xent`].
    pub fn compute(
        self,
        z1: &Tensor,
        z2: &Tensor,
        temperature: f64,
    ) -> Result<(Tensor, Tensor), LossError> {
        match self {
            ContrastiveLossKind::Keras => contrastive_loss(z1, z2, temperature),
            ContrastiveLossKind::NtXent => nt_xent(z1, z2, temperature),
        }
    }
}

/// Rows scaled to unit L2 norm, the norm floored at [`NORM_EPSILON`] (`keras.ops.normalize`).
pub fn l2_normalize(x: &Tensor) -> Tensor {
    let norm = x
        .norm_scalaropt_dim(2, [1i64].as_slice(), true)
        .clamp_min(NORM_EPSILON);
    x / norm
}

fn check(z1: &Tensor, z2: &Tensor, temperature: f64) -> Result<(), LossError> {
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(LossError::Temperature(temperature));
    }
    let (s1, s2) = (z1.size(), z2.size());
    if s1.len() != 2 || s2.len() != 2 || s1[0] < 1 || s2[0] < 1 {
        return Err(LossError::Rank { z1: s1, z2: s2 });
    }
    if s1 != s2 {
        return Err(LossError::ShapeMismatch { z1: s1, z2: s2 });
    }
    Ok(())
}

/// Cosine similarities of the two views' rows divided by `temperature`: `[N, N]`.
fn cross_view_logits(z1: &Tensor, z2: &Tensor, temperature: f64) -> Tensor {
    l2_normalize(z1).matmul(&l2_normalize(z2).tr()) / temperature
}

/// The Keras example's contrastive loss.
///
/// `logits = normalize(z1) normalize(z2)^T / temperature`; the loss is the mean over the batch
/// of `(CE(logits[i], i) + CE(logits^T[i], i)) / 2`. Returns `(loss, logits)`; the scalar loss
/// is differentiable with respect to both inputs.
///
/// # Shapes
/// `z1`, `z2`: `[N, D]`; loss: `[]`; logits: `[N, N]`, row `i` is view-1 sample `i` against every
/// view-2 sample.
///
/// ```text
/// # The Keras 3 code this reproduces (keras.io/examples/vision/semisupervised_simclr):
/// similarities = ops.matmul(normalize(p1), ops.transpose(normalize(p2))) / temperature
/// loss = (sparse_ce(arange(N), similarities, from_logits=True)
///         + sparse_ce(arange(N), ops.transpose(similarities), from_logits=True)) / 2
/// ```
pub fn contrastive_loss(
    z1: &Tensor,
    z2: &Tensor,
    temperature: f64,
) -> Result<(Tensor, Tensor), LossError> {
    check(z1, z2, temperature)?;
    let logits = cross_view_logits(z1, z2, temperature);
    let targets = Tensor::arange(z1.size()[0], (Kind::Int64, z1.device()));
    let rows = logits.cross_entropy_loss::<Tensor>(&targets, None, Reduction::Mean, -100, 0.0);
    let cols = logits
        .tr()
        .cross_entropy_loss::<Tensor>(&targets, None, Reduction::Mean, -100, 0.0);
    Ok(((rows + cols) / 2.0, logits))
}

/// The SimCLR paper's NT-Xent loss.
///
/// Stacks both views into `2N` rows; for each row the positive is the other view of the same
/// sample and the `2N - 2` other rows are negatives (self-similarity is masked out). Returns
/// `(loss, logits)` where `logits` are the `[N, N]` cross-view similarities, as for
/// [`contrastive_loss`], so that [`contrastive_accuracy`] reads the same.
///
/// # Shapes
/// `z1`, `z2`: `[N, D]`; loss: `[]`; logits: `[N, N]`.
pub fn nt_xent(z1: &Tensor, z2: &Tensor, temperature: f64) -> Result<(Tensor, Tensor), LossError> {
    check(z1, z2, temperature)?;
    let n = z1.size()[0];
    let z = Tensor::cat(&[l2_normalize(z1), l2_normalize(z2)], 0); // [2N, D]
    let sim = z.matmul(&z.tr()) / temperature; // [2N, 2N]
    let eye = Tensor::eye(2 * n, (Kind::Bool, z1.device()));
    let sim = sim.masked_fill(&eye, f64::NEG_INFINITY);
    // Row i < N pairs with i + N, row i >= N with i - N.
    let targets = (Tensor::arange(2 * n, (Kind::Int64, z1.device())) + n).remainder(2 * n);
    let loss = sim.cross_entropy_loss::<Tensor>(&targets, None, Reduction::Mean, -100, 0.0);
    let logits = sim.narrow(0, 0, n).narrow(1, n, n);
    Ok((loss, logits))
}

/// Share of correct argmaxes in [`contrastive_accuracy`]'s two directions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContrastiveAccuracy {
    /// Rows (view 1 -> view 2) whose argmax is the diagonal.
    pub rows: f64,
    /// Columns (view 2 -> view 1) whose argmax is the diagonal.
    pub columns: f64,
}

impl ContrastiveAccuracy {
    /// Both directions together, as the example's metric counts them (`2N` predictions).
    pub fn combined(&self) -> f64 {
        (self.rows + self.columns) / 2.0
    }
}

/// The example's contrastive accuracy: `SparseCategoricalAccuracy` updated with the logits and
/// with their transpose.
pub fn contrastive_accuracy(logits: &Tensor) -> Result<ContrastiveAccuracy, LossError> {
    let (rows, columns) = accuracy_shares(logits)?;
    Ok(ContrastiveAccuracy {
        rows: rows.double_value(&[]),
        columns: columns.double_value(&[]),
    })
}

/// [`ContrastiveAccuracy::combined`] as a float32 scalar tensor on the logits' device, so a
/// training step can keep its metrics on the device without waiting for it.
///
/// ```
/// use tch::{Device, Kind, Tensor};
/// let logits = Tensor::from_slice(&[5.0f32, 1.0, 2.0, 0.0, 4.0, 9.0, 1.0, 0.0, 3.0]).view([3, 3]);
/// // rows: 0 and 2 pick the diagonal; columns: 0 and 1 do.
/// let acc = losses::contrastive_accuracy_tensor(&logits)?;
/// assert!((acc.double_value(&[]) - 2.0 / 3.0).abs() < 1e-6);
/// # Ok::<(), losses::LossError>(())
/// ```
pub fn contrastive_accuracy_tensor(logits: &Tensor) -> Result<Tensor, LossError> {
    let (rows, columns) = accuracy_shares(logits)?;
    Ok(((rows + columns) / 2.0).to_kind(Kind::Float))
}

/// The shares of rows and of columns whose argmax is the diagonal, as scalar tensors.
fn accuracy_shares(logits: &Tensor) -> Result<(Tensor, Tensor), LossError> {
    let s = logits.size();
    if s.len() != 2 || s[0] != s[1] || s[0] < 1 {
        return Err(LossError::Logits(s));
    }
    let targets = Tensor::arange(s[0], (Kind::Int64, logits.device()));
    let share = |dim: i64| {
        logits
            .argmax(dim, false)
            .eq_tensor(&targets)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
    };
    Ok((share(1), share(0)))
}
