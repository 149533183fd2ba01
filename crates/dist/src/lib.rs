//! PyTorch's own distributed engine, c10d (the library under `DistributedDataParallel`), for
//! simclr-rs, in one small leaf crate (it depends on `tch` alone):
//!
//! - [`Launch`]: where this process stands in a launch, read from the variables `torchrun` sets
//!   (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`); none of them set means
//!   a single process, and nothing changes;
//! - [`ProcessGroup`]: the ranks met at `MASTER_ADDR:MASTER_PORT` through c10d's `TCPStore`,
//!   with c10d's gloo backend for CPU tensors or its NCCL backend for CUDA tensors
//!   ([`Backend`]), and the collectives data-parallel training needs: sum, broadcast, gather,
//!   barrier. Every collective is bounded by the group's timeout: with gloo, a rank that died or
//!   never came makes the others fail with an error instead of hanging (tested); with NCCL,
//!   c10d's own watchdog may end the process instead (not tested here: no GPU).
//!
//! tch does not expose c10d, so a C++ shim compiled by this crate's build script reaches it,
//! against the same libtorch headers tch builds with. The gloo code that runs is the copy inside
//! `libtorch_cpu`; only its headers come from Debian's `libgloo-dev`.
//!
//! ```no_run
//! use dist::{Backend, Launch, ProcessGroup};
//! use tch::{Device, Kind, Tensor};
//! // Under `torchrun --nproc-per-node 2 --no-python ./program`:
//! let launch = Launch::from_env()?.expect("launched by torchrun");
//! let group = ProcessGroup::join(&launch, Backend::Gloo, std::time::Duration::from_secs(60))?;
//! let mut t = Tensor::ones([3], (Kind::Float, Device::Cpu));
//! group.all_reduce_sum(&mut t)?; // 2.0 everywhere with two ranks
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::{CString, c_char, c_void};
use std::ptr::NonNull;
use std::time::Duration;

use tch::{Device, Tensor};

unsafe extern "C" {
    fn dist_backends() -> i32;
    #[allow(clippy::too_many_arguments)]
    fn dist_init(
        host: *const c_char,
        port: i32,
        prefix: *const c_char,
        rank: i32,
        world: i32,
        serve: i32,
        timeout_ms: i64,
        backend: i32,
        out: *mut *mut c_void,
        err: *mut c_char,
        len: usize,
    ) -> i32;
    fn dist_free(group: *mut c_void);
    fn dist_all_reduce_sum(
        group: *mut c_void,
        t: *mut torch_sys::C_tensor,
        err: *mut c_char,
        len: usize,
    ) -> i32;
    fn dist_broadcast(
        group: *mut c_void,
        t: *mut torch_sys::C_tensor,
        root: i32,
        err: *mut c_char,
        len: usize,
    ) -> i32;
    fn dist_all_gather(
        group: *mut c_void,
        out: *mut torch_sys::C_tensor,
        input: *mut torch_sys::C_tensor,
        err: *mut c_char,
        len: usize,
    ) -> i32;
    fn dist_barrier(group: *mut c_void, err: *mut c_char, len: usize) -> i32;
    fn dist_sum_with_grad(
        group: *mut c_void,
        input: *mut torch_sys::C_tensor,
        out: *mut *mut torch_sys::C_tensor,
        err: *mut c_char,
        len: usize,
    ) -> i32;
}

/// What went wrong, naming the variable, or the rank and the operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DistError {
    /// A launch variable that is missing or does not parse.
    #[error("{name}: {problem}")]
    Launch { name: &'static str, problem: String },
    /// The backend is not in this build.
    #[error("the {0} backend is not in this build: {1}")]
    Unavailable(Backend, &'static str),
    /// Meeting the other ranks failed (or timed out).
    #[error("rank {rank} of {world}: joining the {backend} group at {address}: {message}")]
    Join {
        rank: usize,
        world: usize,
        backend: Backend,
        address: String,
        message: String,
    },
    /// A collective failed: a peer is gone, or it timed out.
    #[error("rank {rank} of {world}: {op}: {message}")]
    Collective {
        rank: usize,
        world: usize,
        op: &'static str,
        message: String,
    },
}

pub type Result<T, E = DistError> = std::result::Result<T, E>;

/// c10d's backend: gloo moves CPU tensors, NCCL CUDA tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Gloo,
    Nccl,
}

impl Backend {
    /// The backend for tensors on `device`.
    pub fn for_device(device: Device) -> Backend {
        if device.is_cuda() {
            Backend::Nccl
        } else {
            Backend::Gloo
        }
    }

    /// Whether this build has the backend (gloo: its headers were found; NCCL: libtorch has
    /// CUDA and the wheel's NCCL headers were found).
    pub fn available(self) -> bool {
        // SAFETY: reads two compile-time flags.
        let built = unsafe { dist_backends() };
        match self {
            Backend::Gloo => built & 1 != 0,
            Backend::Nccl => built & 2 != 0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        }
    }

    fn code(self) -> i32 {
        match self {
            Backend::Gloo => 0,
            Backend::Nccl => 1,
        }
    }

    fn missing(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo's headers were missing when it was built (install libgloo-dev)",
            Backend::Nccl => {
                "libtorch has no CUDA, or NCCL's headers were missing when it was built \
                 (scripts/setup.sh installs them)"
            }
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The variables a launcher sets for each process, as `torchrun` names them.
pub const LAUNCH_VARIABLES: [&str; 5] = [
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
];

/// Set by `torchrun` when its agent already serves the store at `MASTER_ADDR:MASTER_PORT`.
const AGENT_STORE: &str = "TORCHELASTIC_USE_AGENT_STORE";
/// Set by `torchrun`: how many times it has restarted the workers (`--max-restarts`).
const RESTART_COUNT: &str = "TORCHELASTIC_RESTART_COUNT";

/// Where this process stands in a launch of several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// This process's rank, `0..world_size`.
    pub rank: usize,
    pub world_size: usize,
    /// The rank on this machine: the CUDA device it takes.
    pub local_rank: usize,
    /// Where rank 0 (or torchrun's agent) serves the store.
    pub master_addr: String,
    pub master_port: u16,
    /// torchrun's agent serves the store, so every rank, rank 0 included, connects as a client;
    /// otherwise rank 0 serves it.
    pub agent_store: bool,
    /// torchrun's restarts of the workers so far: each attempt meets under its own store keys,
    /// so a restarted rank never reads what the failed attempt left there.
    pub attempt: u32,
}

impl Launch {
    /// The launch this process is part of, from its environment; `None` when neither `RANK` nor
    /// `WORLD_SIZE` is set (a plain single process).
    pub fn from_env() -> Result<Option<Launch>> {
        Launch::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Launch::from_env`] over any source of variables.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Launch>> {
        if var("RANK").is_none() && var("WORLD_SIZE").is_none() {
            return Ok(None);
        }
        let get = |name: &'static str| {
            var(name).ok_or_else(|| DistError::Launch {
                name,
                problem: format!(
                    "not set, but a launch sets all of {} (as torchrun does)",
                    LAUNCH_VARIABLES.join(", ")
                ),
            })
        };
        let number = |name: &'static str| -> Result<usize> {
            let text = get(name)?;
            text.trim().parse().map_err(|_| DistError::Launch {
                name,
                problem: format!("expected a whole number, got '{text}'"),
            })
        };
        let (rank, world_size, local_rank) = (
            number("RANK")?,
            number("WORLD_SIZE")?,
            number("LOCAL_RANK")?,
        );
        if world_size == 0 || world_size > i32::MAX as usize {
            return Err(DistError::Launch {
                name: "WORLD_SIZE",
                problem: format!("must be in 1..={}, got {world_size}", i32::MAX),
            });
        }
        if rank >= world_size {
            return Err(DistError::Launch {
                name: "RANK",
                problem: format!("must be below WORLD_SIZE ({world_size}), got {rank}"),
            });
        }
        let master_addr = get("MASTER_ADDR")?;
        if master_addr.trim().is_empty() {
            return Err(DistError::Launch {
                name: "MASTER_ADDR",
                problem: "is empty".into(),
            });
        }
        let port = get("MASTER_PORT")?;
        let master_port = match port.trim().parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(DistError::Launch {
                    name: "MASTER_PORT",
                    problem: format!("expected a port in 1..=65535, got '{port}'"),
                });
            }
        };
        let agent_store = var(AGENT_STORE).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let attempt = match var(RESTART_COUNT) {
            None => 0,
            Some(text) => text.trim().parse().map_err(|_| DistError::Launch {
                name: RESTART_COUNT,
                problem: format!("expected a whole number, got '{text}'"),
            })?,
        };
        Ok(Some(Launch {
            rank,
            world_size,
            local_rank,
            master_addr: master_addr.trim().to_string(),
            master_port,
            agent_store,
            attempt,
        }))
    }

    /// Whether this process serves the store the ranks meet at.
    pub fn serves_store(&self) -> bool {
        self.rank == 0 && !self.agent_store
    }
}

/// The longest timeout passed to c10d, in milliseconds (a day).
const MAX_TIMEOUT_MS: u128 = 24 * 60 * 60 * 1000;

/// Room for a C++ exception's message.
const ERR_LEN: usize = 2048;

fn message(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).trim().to_string()
}

/// The ranks of one launch, met through c10d, with one backend.
#[derive(Debug)]
pub struct ProcessGroup {
    group: NonNull<c_void>,
    rank: usize,
    world_size: usize,
    backend: Backend,
    timeout: Duration,
}

impl ProcessGroup {
    /// Meets the other ranks of `launch` at its store and builds the `backend`'s group. Every
    /// rank must call it; `timeout` bounds the meeting and every later collective.
    pub fn join(launch: &Launch, backend: Backend, timeout: Duration) -> Result<ProcessGroup> {
        if !backend.available() {
            return Err(DistError::Unavailable(backend, backend.missing()));
        }
        let address = format!("{}:{}", launch.master_addr, launch.master_port);
        let join_error = |message: String| DistError::Join {
            rank: launch.rank,
            world: launch.world_size,
            backend,
            address: address.clone(),
            message,
        };
        let host = CString::new(launch.master_addr.as_str())
            .map_err(|_| join_error("MASTER_ADDR holds a NUL byte".into()))?;
        let prefix = CString::new(format!("simclr-rs/attempt_{}", launch.attempt))
            .expect("no NUL in a formatted number");
        // At most a day: c10d adds the timeout to clock readings.
        let timeout_ms = timeout.as_millis().clamp(1, MAX_TIMEOUT_MS) as i64;
        let mut out: *mut c_void = std::ptr::null_mut();
        let mut err = [0u8; ERR_LEN];
        // SAFETY: `host` and `err` outlive the call; the shim writes `out` only on success.
        let rc = unsafe {
            dist_init(
                host.as_ptr(),
                i32::from(launch.master_port),
                prefix.as_ptr(),
                launch.rank as i32,
                launch.world_size as i32,
                i32::from(launch.serves_store()),
                timeout_ms,
                backend.code(),
                &mut out,
                err.as_mut_ptr().cast(),
                err.len(),
            )
        };
        match NonNull::new(out) {
            Some(group) if rc == 0 => Ok(ProcessGroup {
                group,
                rank: launch.rank,
                world_size: launch.world_size,
                backend,
                timeout,
            }),
            _ => Err(join_error(message(&err))),
        }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.world_size
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// How long a collective may wait for the other ranks.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn error(&self, op: &'static str, message: String) -> DistError {
        DistError::Collective {
            rank: self.rank,
            world: self.world_size,
            op,
            message,
        }
    }

    /// Runs one shim call with an error buffer.
    fn call(
        &self,
        op: &'static str,
        f: impl FnOnce(*mut c_void, *mut c_char, usize) -> i32,
    ) -> Result<()> {
        let mut err = [0u8; ERR_LEN];
        match f(self.group.as_ptr(), err.as_mut_ptr().cast(), err.len()) {
            0 => Ok(()),
            _ => Err(self.error(op, message(&err))),
        }
    }

    /// An error unless `t` is dense and contiguous (what the backends move in place).
    fn check_contiguous(&self, op: &'static str, t: &Tensor) -> Result<()> {
        if t.is_contiguous() {
            Ok(())
        } else {
            Err(self.error(op, "the tensor must be contiguous".into()))
        }
    }

    /// Sums `t` over the ranks, in place: afterwards every rank holds the same sum. Every rank
    /// passes a tensor of the same shape and kind.
    pub fn all_reduce_sum(&self, t: &mut Tensor) -> Result<()> {
        const OP: &str = "all-reduce (sum)";
        self.check_contiguous(OP, t)?;
        let ptr = t.as_mut_ptr();
        // SAFETY: `ptr` is a live tensor for the duration of the call.
        self.call(OP, |g, e, n| unsafe { dist_all_reduce_sum(g, ptr, e, n) })
    }

    /// Replaces `t` on every rank by rank `root`'s, in place.
    pub fn broadcast(&self, t: &mut Tensor, root: usize) -> Result<()> {
        const OP: &str = "broadcast";
        if root >= self.world_size {
            return Err(self.error(OP, format!("root {root} is not a rank")));
        }
        self.check_contiguous(OP, t)?;
        let ptr = t.as_mut_ptr();
        // SAFETY: `ptr` is a live tensor for the duration of the call.
        self.call(OP, |g, e, n| unsafe {
            dist_broadcast(g, ptr, root as i32, e, n)
        })
    }

    /// Every rank's `t` stacked along the first dimension in rank order: `world_size` times
    /// `t`'s rows. Every rank passes a tensor of the same shape and kind. The result carries no
    /// gradient.
    pub fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        const OP: &str = "all-gather";
        let mut input = t.detach().contiguous();
        let mut shape = input.size();
        if shape.is_empty() {
            input = input.reshape([1]);
            shape = vec![1];
        }
        shape[0] *= self.world_size as i64;
        let mut out = Tensor::empty(shape, (input.kind(), input.device()));
        let (o, i) = (out.as_mut_ptr(), input.as_mut_ptr());
        // SAFETY: both tensors are live for the duration of the call.
        self.call(OP, |g, e, n| unsafe { dist_all_gather(g, o, i, e, n) })?;
        Ok(out)
    }

    /// The sum over the ranks of `t` (same shape and kind everywhere) as a new tensor that
    /// autograd differentiates: a backward through it sums the incoming gradients over the
    /// ranks in the same way, so every rank must run that backward (as data-parallel training
    /// does). What synchronised BatchNorm's statistics are made of.
    pub fn sum_with_grad(&self, t: &Tensor) -> Result<Tensor> {
        let mut input = t.shallow_clone();
        let (i, mut out) = (input.as_mut_ptr(), std::ptr::null_mut());
        // SAFETY: `input` is live for the call; on success the shim hands over a new tensor.
        self.call("sum with gradient", |g, e, n| unsafe {
            dist_sum_with_grad(g, i, &mut out, e, n)
        })?;
        // SAFETY: `out` is the shim's new, owned tensor.
        Ok(unsafe { Tensor::from_ptr(out) })
    }

    /// Returns once every rank has called it.
    pub fn barrier(&self) -> Result<()> {
        // SAFETY: the group is live.
        self.call("barrier", |g, e, n| unsafe { dist_barrier(g, e, n) })
    }
}

// SAFETY: the handle points to c10d objects (store, backend) that c10d makes for use from
// several threads (PyTorch's DDP issues collectives from the autograd engine's threads); the
// shim never changes the handle after `dist_init`, and only `Drop` frees it.
unsafe impl Send for ProcessGroup {}
// SAFETY: as for `Send`: every method takes `&self` and only issues collectives.
unsafe impl Sync for ProcessGroup {}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: `group` came from `dist_init` and is freed once.
        unsafe { dist_free(self.group.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn launch(vars: &[(&str, &str)]) -> Result<Option<Launch>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Launch::from_vars(|k| map.get(k).cloned())
    }

    const TORCHRUN: [(&str, &str); 5] = [
        ("RANK", "1"),
        ("WORLD_SIZE", "4"),
        ("LOCAL_RANK", "1"),
        ("MASTER_ADDR", "10.0.0.7"),
        ("MASTER_PORT", "29500"),
    ];

    #[test]
    fn no_launch_variables_mean_a_single_process() {
        assert_eq!(launch(&[]).unwrap(), None);
        assert_eq!(launch(&[("MASTER_PORT", "29500")]).unwrap(), None);
    }

    #[test]
    fn torchruns_variables_are_read() {
        let l = launch(&TORCHRUN).unwrap().unwrap();
        assert_eq!((l.rank, l.world_size, l.local_rank), (1, 4, 1));
        assert_eq!((l.master_addr.as_str(), l.master_port), ("10.0.0.7", 29500));
        assert!(!l.agent_store && !l.serves_store());
        let mut zero = TORCHRUN.to_vec();
        zero[0] = ("RANK", "0");
        assert!(launch(&zero).unwrap().unwrap().serves_store());
        zero.push((AGENT_STORE, "True"));
        let agent = launch(&zero).unwrap().unwrap();
        assert!(
            agent.agent_store && !agent.serves_store(),
            "torchrun's agent serves it"
        );
    }

    #[test]
    fn a_bad_launch_names_the_variable() {
        let with = |name: &str, value: Option<&str>| {
            let vars: Vec<(&str, &str)> = TORCHRUN
                .iter()
                .filter(|(k, _)| *k != name)
                .copied()
                .chain(value.map(|v| (name, v)))
                .collect();
            launch(&vars).unwrap_err().to_string()
        };
        assert!(with("LOCAL_RANK", None).starts_with("LOCAL_RANK: not set"));
        assert_eq!(
            with("RANK", Some("one")),
            "RANK: expected a whole number, got 'one'"
        );
        assert_eq!(
            with("RANK", Some("4")),
            "RANK: must be below WORLD_SIZE (4), got 4"
        );
        assert!(with("WORLD_SIZE", Some("0")).starts_with("WORLD_SIZE: must be in 1..="));
        assert_eq!(
            with("MASTER_PORT", Some("70000")),
            "MASTER_PORT: expected a port in 1..=65535, got '70000'"
        );
        assert_eq!(with("MASTER_ADDR", Some(" ")), "MASTER_ADDR: is empty");
    }

    #[test]
    fn backends_follow_the_device() {
        assert_eq!(Backend::for_device(Device::Cpu), Backend::Gloo);
        assert_eq!(Backend::for_device(Device::Cuda(1)), Backend::Nccl);
    }
}
