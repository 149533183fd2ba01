//! The train steps, in the Keras example's words: [`ContrastiveModel`] (the example's
//! `ContrastiveModel.train_step` with its two optimizers) and [`SupervisedModel`] (baseline and
//! fine-tuning), both behind the [`TrainStep`] the epoch loop drives.
//!
//! A step never waits for the device: it takes one uint8 batch (uploaded once if it is not on
//! the device already), and returns its metrics as a device tensor that the epoch loop adds up
//! and reads every few steps. The networks run under the configured precision's autocast and
//! in its memory format; losses, softmax, metrics, weights and optimizer state stay float32.

use accel::to_f32;
use augment::Augmenter;
use losses::{ContrastiveLossKind, contrastive_accuracy_tensor};
use models::{Classifier, Encoder, LinearProbe, ProjectionHead};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use tch::nn::{self, Module, ModuleT};

use tch::{Device, Kind, Tensor};

use crate::config::{ModelSettings, PretrainSettings, SupervisedSettings};
use crate::error::{Result, TrainError};
use crate::experiment::run::KNN_METRIC;
use crate::features::knn::Knn;
use crate::prepared::loader::{Batch, Feed, Loader};
use crate::runtime::{Compute, Replica, Shard};
use optim::{Optimizer, RunLength};
use seeds::Stream;

mod init_guard;
pub use init_guard::{init_lock, init_seed};

/// Keras-style summaries of every model of a run's shapes for `classes` classes: encoder,
/// projection head, linear probe and classifier.
pub fn summaries(shapes: &ModelSettings, classes: i64) -> Result<String> {
    // Shapes only; the lock keeps other threads' models from drawing meanwhile.
    let _init = init_seed(0, Stream::Contrastive);
    let (vs, probe_vs, clf_vs) = (
        nn::VarStore::new(Device::Cpu),
        nn::VarStore::new(Device::Cpu),
        nn::VarStore::new(Device::Cpu),
    );
    let encoder = Encoder::new(&(vs.root() / "encoder"), &shapes.encoder)?;
    let w = shapes.encoder.output_dim();
    let head = ProjectionHead::new(&(vs.root() / "projection_head"), w, &shapes.head)?;
    let probe = LinearProbe::new(&(probe_vs.root() / "linear_probe"), w, classes);
    let classifier = Classifier::new(&clf_vs.root(), &shapes.encoder, classes)?;
    Ok(format!(
        "{}\n{}\n{}\n{}",
        encoder.summary(),
        head.summary(),
        probe.summary(),
        classifier.summary()
    ))
}

/// `[summed cross-entropy, correct predictions]` of `logits` against `labels`, on the device.
fn ce_sum_and_correct(logits: &Tensor, labels: &Tensor) -> Tensor {
    let loss = logits.cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Sum, -100, 0.0);
    let correct = logits
        .argmax(1, false)
        .eq_tensor(labels)
        .to_kind(Kind::Float)
        .sum(Kind::Float);
    Tensor::stack(&[loss, correct], 0)
}

/// One step of `optimizer` on `loss`: backward, then, in a data-parallel run, every rank's
/// gradients of `vs` summed, then the update.
fn backward_step(
    optimizer: &mut Optimizer,
    vs: &nn::VarStore,
    loss: &Tensor,
    replica: Option<&Replica>,
) -> Result<()> {
    let Some(replica) = replica else {
        optimizer.backward_step(loss);
        return Ok(());
    };
    optimizer.zero_grad();
    replica.check()?;
    // Fallible: synchronised BatchNorm's backward sums over the ranks.
    tracing::debug_span!("backward").in_scope(|| loss.f_backward())?;
    tracing::debug_span!("gradient sum")
        .in_scope(|| replica.sum_gradients(&vs.trainable_variables()))?;
    tracing::debug_span!("optimizer step").in_scope(|| optimizer.update());
    Ok(())
}

/// Where a step's images sit in the whole batch of a data-parallel step: their rows there, and
/// its size. `None` on one process.
type Placed = Option<(Vec<usize>, usize)>;

/// `images` augmented by `augmenter`; in a data-parallel run, as rows `placed` of the whole
/// batch (each image as it would be augmented there).
fn augment_placed(augmenter: &mut Augmenter, images: &Tensor, placed: &Placed) -> Result<Tensor> {
    Ok(match placed {
        None => augmenter.augment(images)?,
        Some((rows, total)) => augmenter.augment_rows(images, *total, rows)?,
    })
}

/// Where a data-parallel step's images are, from its batch's shard: an error when a
/// data-parallel model is given a batch without one (or one process a shard).
fn placement<'a>(replica: Option<&Replica>, shard: Option<&'a Shard>) -> Result<Option<&'a Shard>> {
    match (replica, shard) {
        (Some(_), Some(s)) => Ok(Some(s)),
        (None, None) => Ok(None),
        (Some(r), None) => Err(TrainError::Distributed(format!(
            "rank {} of a data-parallel run was given a batch without its place in the whole batch",
            r.rank()
        ))),
        (None, Some(_)) => Err(TrainError::Distributed(
            "a shard of a data-parallel batch was given to a model on one process".into(),
        )),
    }
}

/// In a data-parallel step without synchronised BatchNorm, the running statistics of `vs` set
/// to rank 0's first, as DDP does before every forward (with it, they are equal already).
fn rank_0_buffers(replica: Option<&Replica>, synchronised: bool, vs: &nn::VarStore) -> Result<()> {
    match replica {
        Some(replica) if !synchronised => replica.broadcast_buffers(vs),
        _ => Ok(()),
    }
}

/// Mean cross-entropy and accuracy of `logits` against `labels` over the whole batch: as they
/// are on one process, or, in a data-parallel run, this rank's sums over the whole batch's
/// count (so the summed gradients are the whole batch's), with the metrics summed over the
/// ranks. `(loss to step on, [loss, accuracy] to report)`.
fn supervised_loss(
    logits: &Tensor,
    labels: &Tensor,
    replica: Option<&Replica>,
    placed: &Placed,
) -> Result<(Tensor, Tensor)> {
    let (Some(replica), Some((_, whole))) = (replica, placed) else {
        let loss = logits.cross_entropy_for_logits(labels);
        let acc = logits.detach().accuracy_for_logits(labels);
        return Ok((
            loss.shallow_clone(),
            Tensor::stack(&[loss.detach(), acc], 0),
        ));
    };
    let whole = (*whole).max(1) as f64;
    let sums = ce_sum_and_correct(logits, labels);
    let loss = sums.get(0) / whole;
    let metrics = replica.sum(&(sums.detach() / whole))?;
    Ok((loss, metrics))
}

/// What the epoch loop needs of a model: one training step and the test sums.
pub trait TrainStep {
    /// Names of the values [`TrainStep::train_step`] returns, in Keras's order.
    const METRICS: &'static [&'static str];
    /// Names of the validation loss and accuracy.
    const VALIDATION: [&'static str; 2];
    /// Images through the encoder per batch image (both views count in pretraining).
    const VIEWS: usize;

    /// One step on `batch`: the [`TrainStep::METRICS`] values as a float32 `[M]` tensor on the
    /// device, not yet computed when it returns on CUDA.
    fn train_step(&mut self, batch: &Batch) -> Result<Tensor>;

    /// `[summed loss, correct predictions]` over a test batch (un-augmented), on the device.
    fn test_sums(&self, batch: &Batch) -> Tensor;

    /// Validation values beyond [`TrainStep::VALIDATION`], after every epoch: pretraining's
    /// kNN monitor (`val_knn_acc`). None by default.
    fn monitors(&self, _loader: &Loader) -> Result<Vec<(&'static str, f64)>> {
        Ok(Vec::new())
    }

    fn device(&self) -> Device;

    /// Before validation: in a data-parallel run without synchronised BatchNorm, the running
    /// statistics made rank 0's on every rank (each rank's last step moved its own), so every
    /// rank validates the model rank 0 saves. Nothing by default.
    fn align_buffers(&self) -> Result<()> {
        Ok(())
    }

    /// Fits the optimizers' learning-rate schedules to a run of `epochs` epochs of `feed`'s
    /// batches from `loader`. Nothing by default (a model without optimizers).
    fn plan_schedules(&mut self, _loader: &Loader, _feed: Feed, _epochs: usize) {}

    /// Each optimizer's name and the rate of its last update (for logs). None by default.
    fn learning_rates(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    /// Everything a resumed run needs of the model: weights and optimizer states as named
    /// tensors, and the augmenters' stream positions by name.
    fn snapshot(&self) -> Snapshot;

    /// Restores [`TrainStep::snapshot`]'s output; an error names the missing or misfitting key.
    fn restore(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        streams: &Streams,
    ) -> Result<(), String>;
}

/// Augmenter stream positions by augmenter name.
pub type Streams = BTreeMap<String, u128>;

/// A model's resumable state: named tensors (weights, optimizer states) and stream positions.
pub struct Snapshot {
    pub tensors: Vec<(String, Tensor)>,
    pub streams: Streams,
}

/// Every variable of `vs`, as checkpoints store them.
fn weights(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    crate::run_dir::checkpoint::variables(vs, |_| true)
}

/// Copies every variable of `vs` from `stored`, checking names and shapes before any copy.
fn restore_weights(vs: &nn::VarStore, stored: &HashMap<String, Tensor>) -> Result<(), String> {
    let vars = vs.variables();
    let mut pairs = Vec::with_capacity(vars.len());
    for (name, var) in vars {
        let src = stored
            .get(&name)
            .ok_or_else(|| format!("missing '{name}'"))?;
        if src.size() != var.size() || src.kind() != var.kind() {
            return Err(format!(
                "'{name}' is {:?} {:?}, the model needs {:?} {:?}",
                src.kind(),
                src.size(),
                var.kind(),
                var.size()
            ));
        }
        pairs.push((var, src));
    }
    tch::no_grad(|| {
        for (mut var, src) in pairs {
            var.copy_(src);
        }
    });
    Ok(())
}

/// Moves each named augmenter to its saved stream position.
fn restore_streams(
    streams: &Streams,
    augmenters: &mut [(&str, &mut Augmenter)],
) -> Result<(), String> {
    for (name, a) in augmenters {
        let pos = streams
            .get(*name)
            .ok_or_else(|| format!("no stream position for the '{name}' augmenter"))?;
        a.seek(*pos);
    }
    Ok(())
}

/// The example's `ContrastiveModel`: encoder + projection head trained contrastively by the
/// `contrastive_optimizer`, and a linear probe trained on detached encoder features of the
/// labeled images by the `probe_optimizer`, in the same step.
pub struct ContrastiveModel {
    /// Encoder and projection head (`encoder.*`, `projection_head.*`).
    pub vs: nn::VarStore,
    /// The linear probe alone (`linear_probe.*`).
    pub probe_vs: nn::VarStore,
    pub encoder: Encoder,
    pub projection_head: ProjectionHead,
    pub linear_probe: LinearProbe,
    pub contrastive_optimizer: Optimizer,
    pub probe_optimizer: Optimizer,
    contrastive_augmenter: Augmenter,
    classification_augmenter: Augmenter,
    loss: ContrastiveLossKind,
    temperature: f64,
    /// The kNN monitor after every epoch (`eval.knn_monitor`).
    knn: Option<Knn>,
    compute: Compute,
    /// In a data-parallel run, this rank; its batches are its shards.
    replica: Option<Rc<Replica>>,
    /// Data-parallel, BatchNorm over every rank's rows (else rank 0's running statistics are
    /// broadcast before every step).
    sync_batch_norm: bool,
}

impl ContrastiveModel {
    pub fn new(s: &PretrainSettings, classes: i64, compute: Compute) -> Result<Self> {
        let _init = init_seed(s.seed, Stream::Contrastive);
        let device = compute.device;
        let vs = nn::VarStore::new(device);
        let probe_vs = nn::VarStore::new(device);
        let encoder = Encoder::new(&(vs.root() / "encoder"), &s.model.encoder)?;
        let w = s.model.encoder.output_dim();
        let projection_head =
            ProjectionHead::new(&(vs.root() / "projection_head"), w, &s.model.head)?;
        let linear_probe = LinearProbe::new(&(probe_vs.root() / "linear_probe"), w, classes);
        // Before the optimizers exist, so that Adam's moments take the kernels' layout.
        encoder.set_memory_format(compute.format);
        let augmenter = |preset: augment::Preset, stream| {
            Augmenter::new(preset, seeds::seed(s.seed, stream), device)
                .map(|a| a.with_format(compute.format))
        };
        Ok(ContrastiveModel {
            contrastive_optimizer: Optimizer::new("contrastive_optimizer", &vs, &s.optimizer),
            probe_optimizer: Optimizer::new("probe_optimizer", &probe_vs, &s.probe_optimizer),
            vs,
            probe_vs,
            encoder,
            projection_head,
            linear_probe,
            contrastive_augmenter: augmenter(s.views, Stream::Contrastive)?,
            classification_augmenter: augmenter(s.probe_augment.into(), Stream::ProbeAugment)?,
            loss: s.loss,
            temperature: s.temperature,
            knn: s.knn,
            compute,
            replica: None,
            sync_batch_norm: s.sync_batch_norm,
        })
    }

    /// This model as `replica`'s rank of a data-parallel run: every variable set to rank 0's,
    /// and each step taking this rank's shard of the whole batch, with the loss, the gradients
    /// and the metrics of the whole batch (exactly so without BatchNorm; with it, each shard is
    /// normalised by its own statistics, see [`Replica`]).
    pub fn data_parallel(mut self, replica: Rc<Replica>) -> Result<Self> {
        replica.broadcast_from_first(&self.vs)?;
        replica.broadcast_from_first(&self.probe_vs)?;
        if self.sync_batch_norm {
            self.encoder.sync_batch_norm(replica.sum_over_ranks());
            self.projection_head
                .sync_batch_norm(replica.sum_over_ranks());
        }
        self.replica = Some(replica);
        Ok(self)
    }

    /// The example's `train_step` on uint8 `images` `[U + L, 3, H, W]` (the last `L` labeled)
    /// and int64 `labels` `[L]`: `[c_loss, c_acc, p_loss, p_acc]` on the device. One process's
    /// whole batch; a data-parallel model takes its shards through [`TrainStep::train_step`].
    pub fn step(&mut self, images: &Tensor, labels: &Tensor) -> Result<Tensor> {
        self.step_at(images, labels, None)
    }

    /// [`ContrastiveModel::step`] on this rank's `shard` of the whole batch (data-parallel).
    fn step_at(
        &mut self,
        images: &Tensor,
        labels: &Tensor,
        shard: Option<&Shard>,
    ) -> Result<Tensor> {
        let shard = placement(self.replica.as_deref(), shard)?;
        rank_0_buffers(self.replica.as_deref(), self.sync_batch_norm, &self.vs)?;
        let images = accel::upload(images, self.compute.device);
        let labels = accel::upload(labels, self.compute.device);
        let (n, l) = (images.size()[0], labels.size()[0]);
        // Both labeled and unlabeled images are used, without labels.
        let (c_loss, c_acc) = self.contrastive_step_at(&images, shard)?;
        // Labels are only used by the linear probe.
        let labeled = images.narrow(0, n - l, l);
        let (p_loss, p_acc) =
            self.probe_step_at(&labeled, &labels, shard.map(|s| s.labeled_rows()))?;
        Ok(Tensor::stack(&[c_loss, c_acc, p_loss, p_acc], 0))
    }

    /// Two strong views of `images` (one augmentation of the doubled batch), encoder and
    /// projection head, the contrastive loss, and one `contrastive_optimizer` step (encoder +
    /// head only): `(c_loss, c_acc)` as scalar device tensors. One process's whole batch.
    pub fn contrastive_step(&mut self, images: &Tensor) -> Result<(Tensor, Tensor)> {
        placement(self.replica.as_deref(), None)?;
        self.contrastive_step_at(images, None)
    }

    /// [`ContrastiveModel::contrastive_step`]; data-parallel, on this rank's `shard` of the
    /// whole batch: the views are augmented as there, and every rank's projections are gathered
    /// for the loss.
    fn contrastive_step_at(
        &mut self,
        images: &Tensor,
        shard: Option<&Shard>,
    ) -> Result<(Tensor, Tensor)> {
        let n = images.size()[0];
        let doubled = images.repeat([2, 1, 1, 1]);
        // The second view's rows follow the whole first view.
        let doubled_rows = shard.map(|s| {
            let (rows, total) = s.zipped_rows();
            let both = rows.iter().copied().chain(rows.iter().map(|r| r + total));
            (both.collect(), 2 * total)
        });
        let views = augment_placed(&mut self.contrastive_augmenter, &doubled, &doubled_rows)?;
        let projections = tracing::debug_span!("forward", step = "contrastive")
            .in_scope(|| to_f32(&self.compute.autocast(|| self.project(&views))));
        let (mut z1, mut z2) = (projections.narrow(0, 0, n), projections.narrow(0, n, n));
        if let (Some(replica), Some(shard)) = (&self.replica, shard) {
            let counts = replica.zipped_counts(shard);
            z1 = replica.gather_with_own(&z1, &counts)?;
            z2 = replica.gather_with_own(&z2, &counts)?;
        }
        let (c_loss, logits) = self.loss.compute(&z1, &z2, self.temperature)?;
        backward_step(
            &mut self.contrastive_optimizer,
            &self.vs,
            &c_loss,
            self.replica.as_deref(),
        )?;
        let c_acc = contrastive_accuracy_tensor(&logits.detach())?;
        Ok((c_loss.detach(), c_acc))
    }

    /// Encoder (training mode) and projection head over `views`, in even slices of at most
    /// `compute.encoder_chunk` views whose projections are joined before the loss: the loss and
    /// its gradients are those of one pass over all views (only the summation order of the
    /// weight gradients differs), while each convolution works on a cache-sized batch. A head
    /// with BatchNorm runs once over the joined features, so its batch statistics are those of
    /// the whole batch.
    fn project(&self, views: &Tensor) -> Tensor {
        let head = |f: &Tensor| self.projection_head.forward_t(f, true);
        let joint = self.projection_head.has_batch_norm();
        let run = |v: &Tensor| {
            let features = self.encoder.forward_t(v, true);
            if joint { features } else { head(&features) }
        };
        let n = views.size()[0] as usize;
        let out = match self.compute.encoder_chunk {
            Some(chunk) if chunk < n => {
                let size = n.div_ceil(n.div_ceil(chunk)) as i64;
                let parts: Vec<Tensor> = views.split(size, 0).iter().map(run).collect();
                Tensor::cat(&parts, 0)
            }
            _ => run(views),
        };
        if joint { head(&out) } else { out }
    }

    /// Weak augmentation of the labeled images, the encoder in inference mode without gradient
    /// (features detached), the linear probe, and one `probe_optimizer` step (probe only):
    /// `(p_loss, p_acc)` as scalar device tensors. One process's whole batch.
    pub fn probe_step(&mut self, labeled: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)> {
        placement(self.replica.as_deref(), None)?;
        self.probe_step_at(labeled, labels, None)
    }

    /// [`ContrastiveModel::probe_step`] on the labeled images at `placed` of the whole batch.
    fn probe_step_at(
        &mut self,
        labeled: &Tensor,
        labels: &Tensor,
        placed: Placed,
    ) -> Result<(Tensor, Tensor)> {
        let replica = self.replica.as_deref();
        let x = augment_placed(&mut self.classification_augmenter, labeled, &placed)?;
        let _forward = tracing::debug_span!("forward", step = "probe").entered();
        let features =
            tch::no_grad(|| to_f32(&self.compute.autocast(|| self.encoder.forward_t(&x, false))));
        let class_logits = self.linear_probe.forward(&features.detach());
        drop(_forward);
        let (p_loss, metrics) = supervised_loss(&class_logits, labels, replica, &placed)?;
        backward_step(&mut self.probe_optimizer, &self.probe_vs, &p_loss, replica)?;
        Ok((metrics.get(0), metrics.get(1)))
    }
}

impl TrainStep for ContrastiveModel {
    const METRICS: &'static [&'static str] = &["c_loss", "c_acc", "p_loss", "p_acc"];
    const VALIDATION: [&'static str; 2] = ["val_p_loss", "val_p_acc"];
    const VIEWS: usize = 2;

    fn train_step(&mut self, batch: &Batch) -> Result<Tensor> {
        self.step_at(&batch.images, &batch.labels, batch.shard.as_ref())
    }

    /// The example's `test_step`: the probe on un-augmented test images.
    fn test_sums(&self, batch: &Batch) -> Tensor {
        tch::no_grad(|| {
            let x = self.classification_augmenter.inference(&batch.images);
            let features = to_f32(&self.compute.autocast(|| self.encoder.forward_t(&x, false)));
            let logits = self.linear_probe.forward(&features);
            ce_sum_and_correct(&logits, &accel::upload(&batch.labels, self.compute.device))
        })
    }

    /// `val_knn_acc`: weighted kNN of the test images' encoder features (inference mode,
    /// un-augmented) against those of the labeled training images.
    fn monitors(&self, loader: &Loader) -> Result<Vec<(&'static str, f64)>> {
        let Some(knn) = self.knn else {
            return Ok(Vec::new());
        };
        let encode = |x: &Tensor| self.encoder.forward_t(x, false);
        let acc =
            crate::features::knn_accuracy(&self.compute, loader.ds, &knn, encode, loader.replica)?;
        Ok(vec![(KNN_METRIC, acc)])
    }

    fn device(&self) -> Device {
        self.compute.device
    }

    fn align_buffers(&self) -> Result<()> {
        rank_0_buffers(self.replica.as_deref(), self.sync_batch_norm, &self.vs)
    }

    /// The contrastive optimizer's batch is every image of a step, the probe's the labeled ones.
    fn plan_schedules(&mut self, loader: &Loader, feed: Feed, epochs: usize) {
        let (steps_per_epoch, all, labeled) = loader.epoch_shape(feed);
        let run = |batch| RunLength {
            steps_per_epoch,
            epochs,
            batch,
        };
        self.contrastive_optimizer.set_run(run(all));
        self.probe_optimizer.set_run(run(labeled));
    }

    fn learning_rates(&self) -> Vec<(&'static str, f64)> {
        [&self.contrastive_optimizer, &self.probe_optimizer]
            .map(|o| (o.name(), o.learning_rate()))
            .into()
    }

    fn snapshot(&self) -> Snapshot {
        let mut tensors = weights(&self.vs);
        tensors.extend(weights(&self.probe_vs));
        tensors.extend(self.contrastive_optimizer.state());
        tensors.extend(self.probe_optimizer.state());
        let streams = [
            ("contrastive_augmenter", &self.contrastive_augmenter),
            ("classification_augmenter", &self.classification_augmenter),
        ]
        .map(|(k, a)| (k.to_string(), a.stream_position()))
        .into();
        Snapshot { tensors, streams }
    }

    fn restore(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        streams: &Streams,
    ) -> Result<(), String> {
        restore_weights(&self.vs, tensors)?;
        restore_weights(&self.probe_vs, tensors)?;
        self.contrastive_optimizer
            .load_state(tensors)
            .map_err(|e| e.0)?;
        self.probe_optimizer.load_state(tensors).map_err(|e| e.0)?;
        restore_streams(
            streams,
            &mut [
                ("contrastive_augmenter", &mut self.contrastive_augmenter),
                (
                    "classification_augmenter",
                    &mut self.classification_augmenter,
                ),
            ],
        )
    }
}

/// An encoder with Dense(classes) trained with sparse cross-entropy on weakly augmented labeled
/// images: the baseline (fresh encoder) and fine-tuning (pretrained encoder).
pub struct SupervisedModel {
    /// `encoder.*` and `classifier.*`.
    pub vs: nn::VarStore,
    pub classifier: Classifier,
    pub optimizer: Optimizer,
    augmenter: Augmenter,
    compute: Compute,
    /// The encoder's mode in training steps: `false` with frozen BatchNorm statistics.
    pub(crate) train_mode: bool,
    /// In a data-parallel run, this rank; its batches are its shards.
    replica: Option<Rc<Replica>>,
    /// As [`ContrastiveModel`]'s.
    sync_batch_norm: bool,
}

impl SupervisedModel {
    /// A fresh classifier for `s.run` (its optimizer and random stream; `Baseline` or
    /// `Finetuning`). Load pretrained weights with [`crate::run_dir::checkpoint::load`] before training
    /// (the optimizer only keeps references to the variables, which loading overwrites in
    /// place).
    pub fn new(s: &SupervisedSettings, classes: i64, compute: Compute) -> Result<Self> {
        let stream = s.run.stream();
        let _init = init_seed(s.seed, stream);
        let vs = nn::VarStore::new(compute.device);
        let classifier = Classifier::new(&vs.root(), &s.encoder, classes)?;
        classifier.encoder.set_memory_format(compute.format);
        Ok(SupervisedModel {
            optimizer: Optimizer::new("optimizer", &vs, &s.optimizer),
            augmenter: Augmenter::new(s.augment, seeds::seed(s.seed, stream), compute.device)?
                .with_format(compute.format),
            vs,
            classifier,
            compute,
            train_mode: !s.freeze_batch_norm,
            replica: None,
            sync_batch_norm: s.sync_batch_norm,
        })
    }

    /// This model as `replica`'s rank of a data-parallel run (see
    /// [`ContrastiveModel::data_parallel`]).
    pub fn data_parallel(mut self, replica: Rc<Replica>) -> Result<Self> {
        replica.broadcast_from_first(&self.vs)?;
        if self.sync_batch_norm {
            self.classifier
                .encoder
                .sync_batch_norm(replica.sum_over_ranks());
        }
        self.replica = Some(replica);
        Ok(self)
    }

    /// One step on uint8 `images` `[N,3,H,W]` and int64 `labels` `[N]`: `[loss, acc]` on the
    /// device. One process's whole batch; a data-parallel model takes its shards through
    /// [`TrainStep::train_step`].
    pub fn step(&mut self, images: &Tensor, labels: &Tensor) -> Result<Tensor> {
        self.step_at(images, labels, None)
    }

    /// [`SupervisedModel::step`] on this rank's `shard` (its labeled part) of the whole batch.
    fn step_at(
        &mut self,
        images: &Tensor,
        labels: &Tensor,
        shard: Option<&Shard>,
    ) -> Result<Tensor> {
        let replica = self.replica.as_deref();
        let placed = placement(replica, shard)?.map(|s| s.labeled_rows());
        rank_0_buffers(replica, self.sync_batch_norm, &self.vs)?;
        let labels = accel::upload(labels, self.compute.device);
        let images = accel::upload(images, self.compute.device);
        let x = augment_placed(&mut self.augmenter, &images, &placed)?;
        let logits = tracing::debug_span!("forward", step = "supervised").in_scope(|| {
            to_f32(
                &self
                    .compute
                    .autocast(|| self.classifier.forward_t(&x, self.train_mode)),
            )
        });
        let (loss, metrics) = supervised_loss(&logits, &labels, replica, &placed)?;
        backward_step(&mut self.optimizer, &self.vs, &loss, replica)?;
        Ok(metrics)
    }
}

impl TrainStep for SupervisedModel {
    const METRICS: &'static [&'static str] = &["loss", "acc"];
    const VALIDATION: [&'static str; 2] = ["val_loss", "val_acc"];
    const VIEWS: usize = 1;

    fn train_step(&mut self, batch: &Batch) -> Result<Tensor> {
        self.step_at(&batch.images, &batch.labels, batch.shard.as_ref())
    }

    fn test_sums(&self, batch: &Batch) -> Tensor {
        tch::no_grad(|| {
            let x = self.augmenter.inference(&batch.images);
            let logits = to_f32(
                &self
                    .compute
                    .autocast(|| self.classifier.forward_t(&x, false)),
            );
            ce_sum_and_correct(&logits, &accel::upload(&batch.labels, self.compute.device))
        })
    }

    fn device(&self) -> Device {
        self.compute.device
    }

    fn align_buffers(&self) -> Result<()> {
        rank_0_buffers(self.replica.as_deref(), self.sync_batch_norm, &self.vs)
    }

    fn plan_schedules(&mut self, loader: &Loader, feed: Feed, epochs: usize) {
        let (steps_per_epoch, batch, _) = loader.epoch_shape(feed);
        self.optimizer.set_run(RunLength {
            steps_per_epoch,
            epochs,
            batch,
        });
    }

    fn learning_rates(&self) -> Vec<(&'static str, f64)> {
        vec![(self.optimizer.name(), self.optimizer.learning_rate())]
    }

    fn snapshot(&self) -> Snapshot {
        let mut tensors = weights(&self.vs);
        tensors.extend(self.optimizer.state());
        let streams = [("augmenter".to_string(), self.augmenter.stream_position())].into();
        Snapshot { tensors, streams }
    }

    fn restore(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        streams: &Streams,
    ) -> Result<(), String> {
        restore_weights(&self.vs, tensors)?;
        self.optimizer.load_state(tensors).map_err(|e| e.0)?;
        restore_streams(streams, &mut [("augmenter", &mut self.augmenter)])
    }
}
