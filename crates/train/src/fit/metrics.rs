//! Keras-style per-run histories: one record of means per epoch.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One epoch of one run; in JSON a flat object `{"epoch": 1, "c_loss": ..., ...,
/// "train_seconds": ..., "images_per_second": ...}` with the metrics in Keras's order (a
/// non-finite value is `null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "FlatRecord", try_from = "FlatRecord")]
pub struct EpochRecord {
    /// 1-based, as Keras prints it.
    pub epoch: usize,
    /// Training means then validation values, in Keras's order (`c_loss`, ..., `val_p_acc`).
    pub metrics: Vec<(String, f64)>,
    /// Wall time of the epoch's training steps (evaluation excluded).
    pub train_seconds: f64,
    /// Images through the encoder per second of training (both views count).
    pub images_per_second: f64,
}

/// [`EpochRecord`] as its JSON object: the metrics between the fixed keys.
#[derive(Serialize, Deserialize)]
struct FlatRecord {
    epoch: usize,
    #[serde(flatten)]
    metrics: serde_json::Map<String, serde_json::Value>,
    train_seconds: f64,
    images_per_second: f64,
}

impl From<EpochRecord> for FlatRecord {
    fn from(e: EpochRecord) -> Self {
        FlatRecord {
            epoch: e.epoch,
            metrics: e.metrics.into_iter().map(|(k, v)| (k, v.into())).collect(),
            train_seconds: e.train_seconds,
            images_per_second: e.images_per_second,
        }
    }
}

impl TryFrom<FlatRecord> for EpochRecord {
    type Error = String;

    fn try_from(f: FlatRecord) -> Result<Self, String> {
        let metrics = f
            .metrics
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::Null => Ok((k, f64::NAN)),
                v => v
                    .as_f64()
                    .map(|x| (k.clone(), x))
                    .ok_or_else(|| format!("epoch {}: '{k}' is not a number", f.epoch)),
            })
            .collect::<Result<_, _>>()?;
        Ok(EpochRecord {
            epoch: f.epoch,
            metrics,
            train_seconds: f.train_seconds,
            images_per_second: f.images_per_second,
        })
    }
}

impl EpochRecord {
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }

    /// Keras's epoch line: `c_loss: 4.1234 - c_acc: 0.1200 - ...`.
    pub fn line(&self) -> String {
        let parts: Vec<String> = self
            .metrics
            .iter()
            .map(|(k, v)| format!("{k}: {v:.4}"))
            .collect();
        format!("{:.0}s - {}", self.train_seconds, parts.join(" - "))
    }
}

/// Every epoch of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    pub run: String,
    pub epochs: Vec<EpochRecord>,
}

impl History {
    pub fn new(run: impl Into<String>) -> Self {
        History {
            run: run.into(),
            epochs: Vec::new(),
        }
    }

    /// The values of `metric`, epoch by epoch.
    pub fn series(&self, metric: &str) -> Vec<f64> {
        self.epochs.iter().filter_map(|e| e.get(metric)).collect()
    }

    /// The largest value of `metric` over the epochs.
    pub fn best(&self, metric: &str) -> Option<f64> {
        self.series(metric).into_iter().reduce(f64::max)
    }

    /// Every metric any epoch has, in the order they first appear.
    pub fn metric_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for (k, _) in self.epochs.iter().flat_map(|e| &e.metrics) {
            if !names.contains(&k.as_str()) {
                names.push(k);
            }
        }
        names
    }

    /// `epoch,<metrics...>,train_seconds,images_per_second`, one row per epoch. The columns are
    /// every metric any epoch has, in the order they first appear; an epoch without one (a run
    /// resumed with the kNN monitor switched on, say) leaves its cell empty.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        if self.epochs.is_empty() {
            return out;
        }
        let names = self.metric_names();
        let _ = writeln!(
            out,
            "epoch,{},train_seconds,images_per_second",
            names.join(",")
        );
        for e in &self.epochs {
            let vals: Vec<String> = names
                .iter()
                .map(|n| e.get(n).map(|v| format!("{v}")).unwrap_or_default())
                .collect();
            let _ = writeln!(
                out,
                "{},{},{},{}",
                e.epoch,
                vals.join(","),
                e.train_seconds,
                e.images_per_second
            );
        }
        out
    }

    /// `{"run": ..., "epochs": [{"epoch": 1, "c_loss": ..., ...}]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain values serialize")
    }

    /// Reads [`History::to_json`]'s output back.
    pub fn from_json(text: &str) -> Result<History, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_finds_the_best_and_writes_rows() {
        let mut h = History::new("baseline");
        for (i, acc) in [0.2, 0.6, 0.4].iter().enumerate() {
            h.epochs.push(EpochRecord {
                epoch: i + 1,
                metrics: vec![
                    ("loss".into(), 1.0 / (i + 1) as f64),
                    ("val_acc".into(), *acc),
                ],
                train_seconds: 1.5,
                images_per_second: 100.0,
            });
        }
        assert_eq!(h.best("val_acc"), Some(0.6));
        assert_eq!(h.best("nope"), None);
        let csv = h.to_csv();
        assert_eq!(
            csv.lines().next().unwrap(),
            "epoch,loss,val_acc,train_seconds,images_per_second"
        );
        assert_eq!(csv.lines().nth(2).unwrap(), "2,0.5,0.6,1.5,100");
        // A metric that appears later gets its column, empty where an epoch lacks it.
        let mut later = h.clone();
        later.epochs[2].metrics.push(("val_knn_acc".into(), 0.5));
        let csv = later.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "epoch,loss,val_acc,val_knn_acc,train_seconds,images_per_second"
        );
        assert_eq!(lines[1], "1,1,0.2,,1.5,100");
        assert_eq!(lines[3], "3,0.3333333333333333,0.4,0.5,1.5,100");
        let json: serde_json::Value = serde_json::from_str(&h.to_json()).unwrap();
        assert_eq!(json["epochs"][1]["val_acc"], 0.6);
        assert_eq!(json["run"], "baseline");
        assert_eq!(History::from_json(&h.to_json()).unwrap(), h);
        h.epochs[0].metrics[0].1 = f64::NAN;
        let back = History::from_json(&h.to_json()).unwrap();
        assert!(back.epochs[0].metrics[0].1.is_nan());
        assert_eq!(back.epochs[0].metrics[0].0, "loss");
        let e = History::from_json(r#"{"run":"x","epochs":[{"epoch":1,"loss":"high","train_seconds":1,"images_per_second":2}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'loss' is not a number"), "{e}");
    }
}
