//! Process-wide libtorch set-up (threads, seed, the device) and [`Compute`], the resolved
//! answer to "how do the steps run": device, precision, memory format and encoder slicing; and,
//! in a data-parallel run, this process's [`Replica`].

use std::time::Duration;

use accel::{MemoryFormat, Precision};
use dist::{Backend, Launch, ProcessGroup};
use tch::Device;

use crate::config::{
    BackendChoice, ConfigError, DeviceChoice, ModelConfig, PrecisionChoice, RuntimeConfig,
};
use crate::error::{Result, TrainError};

mod replica;
pub use replica::{Replica, Shard};

/// The device `choice` names, `cuda:local_rank` for CUDA (each rank of a launch takes its
/// machine's GPU of its local rank); `cuda` when CUDA or that GPU is missing is an error, not a
/// silent CPU run.
pub(crate) fn resolve_device(
    choice: DeviceChoice,
    local_rank: usize,
) -> std::result::Result<Device, ConfigError> {
    let gpus = if tch::Cuda::is_available() {
        tch::Cuda::device_count().max(0) as usize
    } else {
        0
    };
    let missing = |message: String| ConfigError::Invalid {
        key: "runtime.device".into(),
        message,
    };
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto if gpus == 0 => Ok(Device::Cpu),
        DeviceChoice::Auto | DeviceChoice::Cuda if local_rank < gpus => {
            Ok(Device::Cuda(local_rank))
        }
        DeviceChoice::Cuda if gpus == 0 => Err(missing(
            "cuda requested but libtorch sees no CUDA device".into(),
        )),
        _ => Err(missing(format!(
            "LOCAL_RANK {local_rank} takes cuda:{local_rank}, but libtorch sees {gpus} CUDA \
             device(s): start at most {gpus} processes per machine"
        ))),
    }
}

/// Sets libtorch's thread count and seed, turns cuDNN's autotuner on, then resolves the
/// device (under a launch, `cuda:LOCAL_RANK` for CUDA). Call before any tensor op.
pub fn init(
    cfg: &RuntimeConfig,
    launch: Option<&Launch>,
) -> std::result::Result<Device, ConfigError> {
    if let Some(n) = cfg.threads {
        tch::set_num_threads(n as i32);
    }
    tch::manual_seed(cfg.seed as i64);
    let device = resolve_device(cfg.device, launch.map_or(0, |l| l.local_rank))?;
    if device.is_cuda() {
        // The step's shapes are fixed, so cuDNN's per-shape algorithm search pays off at once.
        tch::Cuda::cudnn_set_benchmark(true);
    }
    Ok(device)
}

/// The backend `choice` names for tensors on `device`; an error when they do not go together.
pub(crate) fn resolve_backend(
    choice: BackendChoice,
    device: Device,
) -> std::result::Result<Backend, ConfigError> {
    let wrong = |message: &str| ConfigError::Invalid {
        key: "runtime.backend".into(),
        message: message.into(),
    };
    match (choice, device.is_cuda()) {
        (BackendChoice::Auto, _) => Ok(Backend::for_device(device)),
        (BackendChoice::Gloo, false) => Ok(Backend::Gloo),
        (BackendChoice::Nccl, true) => Ok(Backend::Nccl),
        (BackendChoice::Gloo, true) => Err(wrong(
            "gloo moves CPU tensors here, and the run is on CUDA: use nccl (or auto)",
        )),
        (BackendChoice::Nccl, false) => Err(wrong(
            "nccl moves CUDA tensors, and the run is on the CPU: use gloo (or auto)",
        )),
    }
}

/// Joins the other ranks of `launch` with `cfg`'s backend for tensors on `device`, waiting at
/// most `runtime.dist_timeout_seconds` for them (then, and in every collective after).
pub fn join(cfg: &RuntimeConfig, launch: &Launch, device: Device) -> Result<Replica> {
    let backend = resolve_backend(cfg.backend, device)?;
    let timeout = Duration::from_secs(cfg.dist_timeout_seconds);
    let group = ProcessGroup::join(launch, backend, timeout)
        .map_err(|e| TrainError::Distributed(e.to_string()))?;
    tracing::info!(
        rank = launch.rank,
        world = launch.world_size,
        "joined the {backend} group at {}:{}",
        launch.master_addr,
        launch.master_port
    );
    Ok(Replica::new(group))
}

/// The precision `choice` resolves to on `device`: `auto` is bf16 autocast where it is expected
/// to be faster ([`accel::bf16_preferred`]), else fp32.
pub(crate) fn resolve_precision(choice: PrecisionChoice, device: Device) -> Precision {
    match choice {
        PrecisionChoice::Fp32 => Precision::Fp32,
        PrecisionChoice::Bf16 => Precision::Bf16,
        PrecisionChoice::Auto if accel::bf16_preferred(device) => Precision::Bf16,
        PrecisionChoice::Auto => Precision::Fp32,
    }
}

/// Input pixels per encoder forward on the CPU when `runtime.encoder_chunk` is not set: 176
/// views of 96x96 (the STL-10 step's 1,050 views then run as six slices of 175), the fastest
/// slicing measured on the 2-core development machine (see docs/performance.md). Smaller images
/// get proportionally more views per slice (32x32: 1,584, so Fashion-MNIST's 1,024 views run as
/// one batch).
pub(crate) const CPU_ENCODER_PIXELS: usize = 176 * 96 * 96;

/// How the steps run, resolved once from the configuration and the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compute {
    pub device: Device,
    pub precision: Precision,
    pub format: MemoryFormat,
    /// At most this many views per encoder forward in pretraining (the batch split evenly);
    /// `None`: the whole batch.
    pub encoder_chunk: Option<usize>,
}

impl Compute {
    /// From the `[runtime]` and `[model]` tables, for images of `image_size` on `device`
    /// ([`Config::compute`](crate::config::Config::compute) reads them off a configuration).
    pub fn new(
        runtime: &RuntimeConfig,
        model: &ModelConfig,
        image_size: usize,
        device: Device,
    ) -> Self {
        let side = image_size.max(1);
        // An encoder with BatchNorm keeps the whole batch's statistics unless slices are asked
        // for (then each slice normalises by its own, as data-parallel SimCLR without
        // synchronised BatchNorm does).
        let batch_norm = model.encoder.has_batch_norm();
        let encoder_chunk = match (runtime.encoder_chunk, device) {
            (Some(n), _) => Some(n),
            (None, Device::Cpu) if !batch_norm => Some((CPU_ENCODER_PIXELS / (side * side)).max(1)),
            (None, _) => None,
        };
        Compute {
            device,
            precision: resolve_precision(runtime.precision, device),
            format: if model.channels_last {
                MemoryFormat::ChannelsLast
            } else {
                MemoryFormat::Contiguous
            },
            encoder_chunk,
        }
    }

    /// Runs `f` under this precision's autocast on this device.
    pub fn autocast<T>(&self, f: impl FnOnce() -> T) -> T {
        self.precision.autocast(self.device, f)
    }

    /// `cpu (2 threads), fp32, channels-last, encoder slices of <= 176 views`.
    pub fn describe(&self) -> String {
        let precision = match self.precision {
            Precision::Fp32 => "fp32".to_string(),
            Precision::Bf16 => "bf16 autocast".to_string(),
        };
        let chunk = match self.encoder_chunk {
            Some(n) => format!("encoder slices of <= {n} views"),
            None => "whole-batch encoder".to_string(),
        };
        format!(
            "{}, {precision}, {}, {chunk}",
            describe(self.device),
            self.format.name()
        )
    }
}

/// A short description of `device` for reports.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", tch::get_num_threads()),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}"),
    }
}

/// What libtorch sees: CUDA, cuDNN, threads, bf16 support, how `compute` runs, and whether
/// this process is a rank of a data-parallel run (`replica`) whose steps take `batch_size`
/// images.
pub fn report(compute: &Compute, replica: Option<&Replica>, batch_size: usize) -> String {
    let device = compute.device;
    let parallel = match replica {
        None => "none (one process; torchrun launches several)".to_string(),
        Some(r) => {
            let sizes: Vec<usize> = (0..r.world())
                .map(|k| r.part_of(k, batch_size).len())
                .collect();
            let (least, most) = (sizes.iter().min(), sizes.iter().max());
            let share = match (least, most) {
                (Some(a), Some(b)) if a == b => format!("{a}"),
                (Some(a), Some(b)) => format!("{a} to {b}"),
                _ => "0".into(),
            };
            format!(
                "{}, this is rank {}; each step's {batch_size} images shared, {share} a rank",
                r.describe(),
                r.rank()
            )
        }
    };
    format!(
        "cuda available: {}\ncuda devices: {}\ncudnn available: {}\nthreads: {}\n\
         bf16 native on {}: {} (preferred by auto: {})\ndevice: {}\ncompute: {}\n\
         data parallel: {parallel}\n",
        tch::Cuda::is_available(),
        tch::Cuda::device_count(),
        tch::Cuda::cudnn_is_available(),
        tch::get_num_threads(),
        describe(device),
        accel::bf16_native(device),
        accel::bf16_preferred(device),
        describe(device),
        compute.describe(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn cfg(sets: &[&str]) -> Config {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Config::load(None, &sets).unwrap()
    }

    #[test]
    fn encoder_slices_follow_the_image_area_on_the_cpu_and_the_setting_everywhere() {
        let c = cfg(&["runtime.precision=\"fp32\""]).compute(Device::Cpu);
        assert_eq!(c.encoder_chunk, Some(176), "96x96: 176 views");
        let c = cfg(&[
            "data.kind=folder",
            "data.image_size=32",
            "runtime.precision=\"fp32\"",
        ])
        .compute(Device::Cpu);
        assert_eq!(c.encoder_chunk, Some(1584), "32x32: nine times as many");
        let c = cfg(&["runtime.encoder_chunk=263"]).compute(Device::Cpu);
        assert_eq!(c.encoder_chunk, Some(263));
        let gpu = cfg(&["runtime.precision=\"fp32\""]);
        assert_eq!(gpu.compute(Device::Cuda(0)).encoder_chunk, None);
        assert_eq!(c.format, MemoryFormat::ChannelsLast, "the default layout");
    }

    #[test]
    fn explicit_precisions_are_kept_and_described() {
        assert_eq!(
            resolve_precision(PrecisionChoice::Bf16, Device::Cpu),
            Precision::Bf16
        );
        assert_eq!(
            resolve_precision(PrecisionChoice::Fp32, Device::Cpu),
            Precision::Fp32
        );
        let c =
            cfg(&["runtime.precision=\"bf16\"", "model.channels_last=false"]).compute(Device::Cpu);
        assert!(
            c.describe()
                .ends_with("bf16 autocast, nchw, encoder slices of <= 176 views"),
            "{}",
            c.describe()
        );
    }
}
