//! BatchNorm as tch's, whose training-mode statistics can instead be those of the whole batch of
//! a data-parallel run (synchronised BatchNorm, the SimCLR paper's "global BN"): each process
//! sums its part of the statistics with the others' through a [`SumOverRanks`] that autograd
//! differentiates, so the forward and the backward are those of one BatchNorm over every
//! process's rows. Inference mode, and training without a sum set, are tch's own BatchNorm.

use std::sync::{Arc, Mutex};

use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use crate::init::{BATCH_NORM_EPS, BATCH_NORM_MOMENTUM};

/// Sums a tensor over the processes of a data-parallel run (the same shape everywhere); its
/// backward sums the incoming gradients over them in the same way.
pub type SumOverRanks = Arc<dyn Fn(&Tensor) -> Tensor + Send + Sync>;

/// The sum a model's BatchNorms take their statistics through, set once for all of them.
#[derive(Clone, Default)]
pub(crate) struct StatsSync(Arc<Mutex<Option<SumOverRanks>>>);

impl StatsSync {
    pub(crate) fn set(&self, sum: SumOverRanks) {
        *self.lock() = Some(sum);
    }

    fn get(&self) -> Option<SumOverRanks> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<SumOverRanks>> {
        // A poisoned lock still holds a whole `Option`.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for StatsSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on = self.lock().is_some();
        f.write_str(if on { "synchronised" } else { "per process" })
    }
}

/// tch's BatchNorm, synchronised in training mode once its model's [`StatsSync`] is set.
#[derive(Debug)]
pub(crate) struct BatchNorm {
    pub(crate) inner: nn::BatchNorm,
    sync: StatsSync,
}

impl BatchNorm {
    pub(crate) fn new(inner: nn::BatchNorm, sync: &StatsSync) -> Self {
        BatchNorm {
            inner,
            sync: sync.clone(),
        }
    }

    /// Training mode over every process's rows: mean and (biased) variance of each channel
    /// from sums over the processes, in float32; the running statistics move as PyTorch's
    /// (unbiased variance), the same on every process.
    fn synchronised(&self, xs: &Tensor, sum: &SumOverRanks) -> Tensor {
        let x = xs.to_kind(Kind::Float);
        let channels = x.size()[1];
        let dims: Vec<i64> = (0..x.dim() as i64).filter(|&d| d != 1).collect();
        let shape: Vec<i64> = (0..x.dim())
            .map(|d| if d == 1 { channels } else { 1 })
            .collect();
        let rows = (x.numel() as i64 / channels.max(1)) as f64;
        let count = Tensor::from_slice(&[rows as f32]).to_device(x.device());
        let sums = sum(&Tensor::cat(
            &[x.sum_dim_intlist(&dims[..], false, Kind::Float), count],
            0,
        ));
        let total = sums.narrow(0, channels, 1).detach();
        let mean = sums.narrow(0, 0, channels) / &total;
        let centered = &x - mean.view(&shape[..]);
        let squares = centered
            .square()
            .sum_dim_intlist(&dims[..], false, Kind::Float);
        let var = sum(&squares) / &total;
        let normalised = &centered * (&var + BATCH_NORM_EPS).rsqrt().view(&shape[..]);
        let scaled = match &self.inner.ws {
            Some(w) => normalised * w.view(&shape[..]),
            None => normalised,
        };
        let y = match &self.inner.bs {
            Some(b) => scaled + b.view(&shape[..]),
            None => scaled,
        };
        tch::no_grad(|| {
            let n = total.double_value(&[0]);
            let unbiased = var.detach() * (n / (n - 1.0).max(1.0));
            let m = BATCH_NORM_MOMENTUM;
            let mut rm = self.inner.running_mean.shallow_clone();
            let mut rv = self.inner.running_var.shallow_clone();
            let _ = rm.g_mul_scalar_(1.0 - m).g_add_(&(mean.detach() * m));
            let _ = rv.g_mul_scalar_(1.0 - m).g_add_(&(unbiased * m));
        });
        y.to_kind(xs.kind())
    }
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self.sync.get() {
            Some(sum) if train => self.synchronised(xs, &sum),
            _ => self.inner.forward_t(xs, train),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, nn::VarStore};

    /// On one process (the sum the identity), the synchronised path is libtorch's BatchNorm:
    /// outputs, input and weight gradients, running statistics.
    #[test]
    fn one_process_synchronised_is_libtorchs_batch_norm() {
        tch::manual_seed(3);
        let x = Tensor::randn([5, 4, 6, 6], (Kind::Float, Device::Cpu)) * 3.0 + 1.5;
        let x = crate::MemoryFormat::ChannelsLast.apply(&x);
        let run = |synced: bool| {
            let vs = VarStore::new(Device::Cpu);
            let sync = StatsSync::default();
            let bn = crate::init::batch_norm2d(vs.root() / "bn", 4, &sync);
            tch::no_grad(|| {
                bn.inner
                    .ws
                    .as_ref()
                    .unwrap()
                    .shallow_clone()
                    .copy_(&Tensor::from_slice(&[0.5f32, 1.0, 1.5, 2.0]));
            });
            if synced {
                sync.set(Arc::new(|t: &Tensor| t.shallow_clone()));
            }
            let input = x.detach().set_requires_grad(true);
            let weights = Tensor::randn([5, 4, 6, 6], (Kind::Float, Device::Cpu));
            let y = bn.forward_t(&input, true);
            (y.shallow_clone() * &weights).sum(Kind::Float).backward();
            (
                y.detach(),
                input.grad(),
                bn.inner.ws.as_ref().unwrap().grad(),
                bn.inner.running_mean.copy(),
                bn.inner.running_var.copy(),
            )
        };
        tch::manual_seed(4);
        let want = run(false);
        tch::manual_seed(4);
        let got = run(true);
        let close = |a: &Tensor, b: &Tensor, what: &str| {
            let diff = (a - b).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{what}: {diff:e}");
        };
        close(&got.0, &want.0, "output");
        close(&got.1, &want.1, "input gradient");
        close(&got.2, &want.2, "weight gradient");
        close(&got.3, &want.3, "running mean");
        close(&got.4, &want.4, "running variance");
    }
}
