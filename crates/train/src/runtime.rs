//! Process-wide libtorch set-up: threads, seed and the device.

use tch::Device;

use crate::config::{ConfigError, DeviceChoice, RuntimeConfig};

/// The device `choice` names; `cuda` when CUDA is missing is an error, not a silent CPU run.
pub fn resolve_device(choice: DeviceChoice) -> Result<Device, ConfigError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => Err(ConfigError::Invalid {
            key: "runtime.device".into(),
            message: "cuda requested but libtorch sees no CUDA device".into(),
        }),
    }
}

/// Sets libtorch's thread count and seed, then resolves the device. Call before any tensor op.
pub fn init(cfg: &RuntimeConfig) -> Result<Device, ConfigError> {
    if let Some(n) = cfg.threads {
        tch::set_num_threads(n as i32);
    }
    tch::manual_seed(cfg.seed as i64);
    resolve_device(cfg.device)
}

/// A short description of `device` for reports.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", tch::get_num_threads()),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}"),
    }
}

/// What libtorch sees: CUDA, cuDNN, threads and the device `device` resolves to.
pub fn report(device: Device) -> String {
    format!(
        "cuda available: {}\ncuda devices: {}\ncudnn available: {}\nthreads: {}\ndevice: {}\n",
        tch::Cuda::is_available(),
        tch::Cuda::device_count(),
        tch::Cuda::cudnn_is_available(),
        tch::get_num_threads(),
        describe(device),
    )
}
