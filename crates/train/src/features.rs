//! Frozen features: a trained encoder (and optionally its projection head) over un-augmented
//! images, in inference mode and without gradients, batch by batch on the device. What the kNN
//! monitor, the linear evaluation, `embed` and the feature-space picture work on.

use models::{Encoder, ProjectionHead};
use stl10_data::{Dataset, Split};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::config::ModelSettings;
use crate::error::{Result, TrainError};
use crate::run_dir::checkpoint;
use crate::runtime::{Compute, Replica};

pub mod knn;
pub use knn::Knn;

/// Images per forward pass: the pretraining step's encoder slice on a CPU, 1,024 on CUDA.
pub fn batch_size(compute: &Compute) -> usize {
    compute.encoder_chunk.unwrap_or(1024).max(1)
}

/// Float32 features `[N, D]` on the device of `encode` applied to uint8 `images` `[N,3,S,S]`
/// (rescaled to [0, 1], in the compute's memory format, under its precision), in batches.
pub fn of_images(compute: &Compute, images: &Tensor, encode: impl Fn(&Tensor) -> Tensor) -> Tensor {
    let batch = batch_size(compute) as i64;
    tch::no_grad(|| {
        let parts: Vec<Tensor> = images
            .split(batch, 0)
            .iter()
            .map(|b| {
                let x = compute.format.apply(&augment::rescale(b, compute.device));
                accel::to_f32(&compute.autocast(|| encode(&x)))
            })
            .collect();
        rows(&parts, compute.device)
    })
}

/// `parts` stacked row-wise; `[0, 0]` when there are none.
fn rows(parts: &[Tensor], device: Device) -> Tensor {
    if parts.is_empty() {
        Tensor::zeros([0, 0], (Kind::Float, device))
    } else {
        Tensor::cat(parts, 0)
    }
}

/// [`of_images`] over every image of `split`, gathered from host memory batch by batch.
/// An error only where a streamed image cannot be read.
pub fn of_split(
    compute: &Compute,
    split: &Split,
    encode: impl Fn(&Tensor) -> Tensor,
) -> Result<Tensor> {
    let batch = batch_size(compute);
    let all: Vec<usize> = (0..split.len()).collect();
    let parts: Vec<Tensor> = all
        .chunks(batch)
        .map(|chunk| Ok(of_images(compute, &split.images(chunk)?, &encode)))
        .collect::<Result<_>>()?;
    Ok(rows(&parts, compute.device))
}

/// [`of_split`] shared by the ranks of a data-parallel run: each encodes its part of the
/// split, and every rank gets every image's features (on one process, [`of_split`]).
pub fn of_split_shared(
    compute: &Compute,
    split: &Split,
    encode: impl Fn(&Tensor) -> Tensor,
    replica: Option<&Replica>,
) -> Result<Tensor> {
    let Some(replica) = replica else {
        return of_split(compute, split, encode);
    };
    let batch = batch_size(compute);
    let own: Vec<usize> = replica.part(split.len()).collect();
    let parts: Vec<Tensor> = own
        .chunks(batch)
        .map(|chunk| Ok(of_images(compute, &split.images(chunk)?, &encode)))
        .collect::<Result<_>>()?;
    // The width comes from a forward of no images when this rank's part is empty.
    let mine = if parts.is_empty() {
        of_images(compute, &split.images(&[])?, &encode)
    } else {
        Tensor::cat(&parts, 0)
    };
    let counts: Vec<usize> = (0..replica.world())
        .map(|r| replica.part_of(r, split.len()).len())
        .collect();
    replica.gather_with_own(&mine, &counts)
}

/// Weighted kNN accuracy of `encode`'s features on `ds`'s test split against its labeled
/// training images: the `val_knn_acc` monitor and `simclr-cli knn`; data-parallel, each rank
/// encodes its part of the images and every rank computes the same accuracy. An error when a
/// split is empty or unlabeled.
pub fn knn_accuracy(
    compute: &Compute,
    ds: &Dataset,
    knn: &Knn,
    encode: impl Fn(&Tensor) -> Tensor,
    replica: Option<&Replica>,
) -> Result<f64> {
    let device = compute.device;
    let (Some(bank_labels), Some(query_labels)) =
        (labels(&ds.train, device), labels(&ds.test, device))
    else {
        return Err(TrainError::file(
            "knn",
            "the train and test splits need labels",
        ));
    };
    if ds.train.is_empty() || ds.test.is_empty() {
        return Err(TrainError::file(
            "knn",
            "needs labeled train images (the memory bank) and test images (the queries)",
        ));
    }
    knn.accuracy(
        &of_split_shared(compute, &ds.train, &encode, replica)?,
        &bank_labels,
        &of_split_shared(compute, &ds.test, &encode, replica)?,
        &query_labels,
        ds.num_classes() as i64,
    )
}

/// The labels of `split` as an int64 tensor on `device` (`None` for the unlabeled split).
pub fn labels(split: &Split, device: Device) -> Option<Tensor> {
    split.labels()?;
    let all: Vec<usize> = (0..split.len()).collect();
    Some(split.label_tensor(&all).to_device(device))
}

/// A trained encoder loaded from a checkpoint file, optionally with its projection head.
pub struct FrozenEncoder {
    _vs: nn::VarStore,
    pub encoder: Encoder,
    pub head: Option<ProjectionHead>,
    pub compute: Compute,
}

impl FrozenEncoder {
    /// The encoder of `shapes`, with `encoder.*` from `path` (an `encoder.safetensors`, or any
    /// checkpoint holding an encoder: baseline, finetuned) and, when `head` names a file, the
    /// `projection_head.*` from it.
    pub fn load(
        shapes: &ModelSettings,
        compute: Compute,
        path: &std::path::Path,
        head: Option<&std::path::Path>,
    ) -> Result<Self> {
        let init = crate::steps::init_lock();
        let mut vs = nn::VarStore::new(compute.device);
        let encoder = Encoder::new(&(vs.root() / "encoder"), &shapes.encoder)?;
        let w = shapes.encoder.output_dim();
        let head = head
            .map(|h| -> Result<ProjectionHead> {
                let p = ProjectionHead::new(&(vs.root() / "projection_head"), w, &shapes.head)?;
                checkpoint::load(&vs, "projection_head", h)?;
                Ok(p)
            })
            .transpose()?;
        drop(init);
        checkpoint::load(&vs, "encoder", path)?;
        encoder.set_memory_format(compute.format);
        vs.freeze();
        Ok(FrozenEncoder {
            _vs: vs,
            encoder,
            head,
            compute,
        })
    }

    /// Features of one rescaled batch: the encoder's output, or the projection head's when
    /// the head was loaded.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let f = self.encoder.forward_t(x, false);
        match &self.head {
            Some(h) => h.forward_t(&f, false),
            None => f,
        }
    }

    /// Features of every image of `split`.
    pub fn split(&self, split: &Split) -> Result<Tensor> {
        of_split(&self.compute, split, |x| self.forward(x))
    }
}
