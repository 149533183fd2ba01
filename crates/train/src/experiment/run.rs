//! The experiment's three runs, in the seed's order, and everything that tells them apart:
//! names, labels, the metrics each is judged by, its random stream, checkpoint and batches
//! (its epochs and optimizer are in its settings, [`crate::config::SupervisedSettings`] and
//! [`crate::config::PretrainSettings`]).

use seeds::Stream;

use crate::prepared::loader::Feed;

/// One of the experiment's runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Run {
    /// Supervised, from a fresh encoder.
    Baseline,
    /// Contrastive pretraining with the linear probe trained alongside.
    Pretraining,
    /// Supervised, from the pretrained encoder.
    Finetuning,
}

/// The kNN monitor's metric in the pretraining history, and its label in plots and reports.
pub const KNN_METRIC: &str = "val_knn_acc";
pub const KNN_LABEL: &str = "self-supervised pretraining (kNN)";

impl Run {
    /// The seed's order.
    pub const ALL: [Run; 3] = [Run::Baseline, Run::Pretraining, Run::Finetuning];

    /// The name of its history (`<name>.json`, `<name>.csv`) and of its checkpoint in `state/`.
    pub fn name(self) -> &'static str {
        match self {
            Run::Baseline => "baseline",
            Run::Pretraining => "pretraining",
            Run::Finetuning => "finetuning",
        }
    }

    /// The run whose [`Run::name`] is `name`.
    pub fn from_name(name: &str) -> Option<Run> {
        Run::ALL.into_iter().find(|r| r.name() == name)
    }

    /// How plots and reports call it.
    pub fn label(self) -> &'static str {
        match self {
            Run::Baseline => "supervised baseline",
            Run::Pretraining => "self-supervised pretraining (linear probe)",
            Run::Finetuning => "supervised fine-tuning",
        }
    }

    /// Its configuration table (`[baseline]`, `[pretrain]`, `[finetune]`).
    pub fn table(self) -> &'static str {
        match self {
            Run::Baseline => "baseline",
            Run::Pretraining => "pretrain",
            Run::Finetuning => "finetune",
        }
    }

    /// The validation accuracy it is judged by (pretraining: the linear probe's).
    pub fn accuracy_metric(self) -> &'static str {
        match self {
            Run::Pretraining => "val_p_acc",
            Run::Baseline | Run::Finetuning => "val_acc",
        }
    }

    /// The validation loss beside [`Run::accuracy_metric`].
    pub fn loss_metric(self) -> &'static str {
        match self {
            Run::Pretraining => "val_p_loss",
            Run::Baseline | Run::Finetuning => "val_loss",
        }
    }

    /// The configuration key of its epochs (for messages).
    pub fn epochs_key(self) -> String {
        format!("{}.epochs", self.table())
    }

    /// The random stream of its initial weights and augmenter.
    pub(crate) fn stream(self) -> Stream {
        match self {
            Run::Baseline => Stream::Baseline,
            Run::Pretraining => Stream::Contrastive,
            Run::Finetuning => Stream::Finetune,
        }
    }

    /// The batches it trains on.
    pub(crate) fn feed(self) -> Feed {
        match self {
            Run::Pretraining => Feed::Zipped,
            Run::Baseline | Run::Finetuning => Feed::Labeled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_each_run_has_its_metrics_and_feed() {
        for run in Run::ALL {
            assert_eq!(Run::from_name(run.name()), Some(run));
        }
        assert_eq!(Run::from_name("probe"), None);
        assert_eq!(Run::Finetuning.epochs_key(), "finetune.epochs");
        assert_eq!(Run::Pretraining.loss_metric(), "val_p_loss");
        assert_eq!(Run::Finetuning.feed(), Feed::Labeled);
        assert_eq!(Run::Pretraining.feed(), Feed::Zipped);
    }
}
