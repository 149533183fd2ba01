//! Weighted k-nearest-neighbour classification on frozen features, the InstDisc protocol that
//! lightly and solo-learn monitor: features are L2-normalised, each query's `k` most similar
//! memory-bank entries (cosine similarity) vote for their class with weight
//! `exp(similarity / temperature)`, and the class with the largest total wins.
//!
//! Queries go through in chunks, so only a `[chunk, bank]` similarity matrix exists at a time
//! (STL-10: 5,000 bank entries by 8,000 queries in chunks of 1,024).

use tch::{Kind, Tensor};

use crate::error::{Result, TrainError};

/// Queries per similarity matrix.
pub(crate) const QUERY_CHUNK: i64 = 1024;

/// The settings of one kNN evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knn {
    /// Neighbours that vote (fewer when the bank is smaller).
    pub k: usize,
    /// Softmax temperature of the votes.
    pub temperature: f64,
}

impl Default for Knn {
    /// k = 200, temperature 0.1 (InstDisc's values).
    fn default() -> Self {
        Knn {
            k: 200,
            temperature: 0.1,
        }
    }
}

/// Rows of `x` scaled to unit L2 norm (rows of zeros stay zero).
pub(crate) fn normalize(x: &Tensor) -> Tensor {
    let norm = x
        .to_kind(Kind::Float)
        .norm_scalaropt_dim(2, [1], true)
        .clamp_min(1e-12);
    x.to_kind(Kind::Float) / norm
}

impl Knn {
    /// Predicted classes `[Q]` (int64) of `queries` `[Q, D]` against the memory bank `bank`
    /// `[N, D]` with int64 `bank_labels` `[N]` in `0..classes`; all on one device. Features need
    /// not be normalised.
    pub fn predict(
        &self,
        bank: &Tensor,
        bank_labels: &Tensor,
        queries: &Tensor,
        classes: i64,
    ) -> Result<Tensor> {
        let n = bank.size()[0];
        if n == 0 {
            return Err(TrainError::file(
                "knn",
                "the memory bank is empty (no labeled images)",
            ));
        }
        if bank.size().get(1) != queries.size().get(1) {
            return Err(TrainError::file(
                "knn",
                format!(
                    "bank features {:?} and query features {:?} differ in width",
                    bank.size(),
                    queries.size()
                ),
            ));
        }
        let k = (self.k as i64).min(n);
        let bank_t = normalize(bank).transpose(0, 1).contiguous();
        let labels = bank_labels.to_kind(Kind::Int64);
        let mut preds = Vec::new();
        for chunk in normalize(queries).split(QUERY_CHUNK, 0) {
            let sim = chunk.matmul(&bank_t);
            let (top, idx) = sim.topk(k, 1, true, true);
            let weights = (top / self.temperature).exp();
            let votes_for = labels.index_select(0, &idx.flatten(0, -1)).view_as(&idx);
            let scores = Tensor::zeros([chunk.size()[0], classes], (Kind::Float, sim.device()))
                .scatter_add(1, &votes_for, &weights);
            preds.push(scores.argmax(1, false));
        }
        Ok(Tensor::cat(&preds, 0))
    }

    /// Accuracy of [`Knn::predict`] against `query_labels` (one number, read from the device).
    pub fn accuracy(
        &self,
        bank: &Tensor,
        bank_labels: &Tensor,
        queries: &Tensor,
        query_labels: &Tensor,
        classes: i64,
    ) -> Result<f64> {
        if queries.size()[0] == 0 {
            return Ok(f64::NAN);
        }
        let pred = self.predict(bank, bank_labels, queries, classes)?;
        let right = pred.eq_tensor(&query_labels.to_kind(Kind::Int64));
        Ok(right
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The protocol written out plainly in f64: every similarity, a full sort, the votes.
    fn brute_force(bank: &[Vec<f64>], labels: &[i64], q: &[f64], k: usize, t: f64) -> i64 {
        let unit = |v: &[f64]| {
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            v.iter().map(|x| x / n).collect::<Vec<_>>()
        };
        let q = unit(q);
        let mut sims: Vec<(f64, i64)> = bank
            .iter()
            .zip(labels)
            .map(|(b, &l)| (unit(b).iter().zip(&q).map(|(a, b)| a * b).sum(), l))
            .collect();
        sims.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut votes = [0.0f64; 8];
        for (s, l) in sims.iter().take(k) {
            votes[*l as usize] += (s / t).exp();
        }
        (0..8)
            .max_by(|&a, &b| votes[a].total_cmp(&votes[b]))
            .unwrap() as i64
    }

    #[test]
    fn votes_are_weighted_by_similarity_as_worked_by_hand() {
        // Query along x. Bank: one class-0 entry exactly along x (cosine 1), two class-1
        // entries at 60 degrees (cosine 0.5 each). k = 3, temperature 0.1: class 0 gets
        // e^10 = 22026, class 1 gets 2 e^5 = 297, so class 0 wins. With temperature 1, class 0
        // gets e^1 = 2.718 and class 1 gets 2 e^0.5 = 3.297: class 1 wins. With k = 1 only the
        // nearest votes: class 0.
        let s3 = 3f64.sqrt() / 2.0;
        let bank = Tensor::from_slice(&[1.0f32, 0.0, 0.5, s3 as f32, 0.5, -s3 as f32]).view([3, 2]);
        let labels = Tensor::from_slice(&[0i64, 1, 1]);
        let query = Tensor::from_slice(&[3.0f32, 0.0]).view([1, 2]);
        let at = |k, temperature| {
            Knn { k, temperature }
                .predict(&bank, &labels, &query, 2)
                .unwrap()
                .int64_value(&[0])
        };
        assert_eq!(at(3, 0.1), 0);
        assert_eq!(at(3, 1.0), 1);
        assert_eq!(at(1, 1.0), 0);
        // k above the bank size: every entry votes.
        assert_eq!(at(50, 1.0), 1);
    }

    #[test]
    fn matches_a_brute_force_reference_across_chunks() {
        let g = |n: i64, d: i64, seed: i64| {
            tch::manual_seed(seed);
            Tensor::randn([n, d], (Kind::Float, tch::Device::Cpu))
        };
        // More queries than one chunk, so the chunked path is exercised.
        let (n, q, d, classes) = (300i64, QUERY_CHUNK + 77, 6i64, 5i64);
        let bank = g(n, d, 1);
        let queries = g(q, d, 2);
        let labels = (Tensor::arange(n, (Kind::Int64, tch::Device::Cpu)) * 7).remainder(classes);
        let rows = |t: &Tensor| -> Vec<Vec<f64>> {
            let flat = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
            flat.chunks(d as usize)
                .map(|c| c.iter().map(|&x| x as f64).collect())
                .collect()
        };
        let (bank_rows, query_rows) = (rows(&bank), rows(&queries));
        let label_vec = Vec::<i64>::try_from(&labels).unwrap();
        for (k, t) in [(20usize, 0.1f64), (7, 0.5), (1, 0.1)] {
            let knn = Knn { k, temperature: t };
            let got = Vec::<i64>::try_from(knn.predict(&bank, &labels, &queries, classes).unwrap())
                .unwrap();
            let want: Vec<i64> = query_rows
                .iter()
                .map(|qr| brute_force(&bank_rows, &label_vec, qr, k, t))
                .collect();
            let same = got.iter().zip(&want).filter(|(a, b)| a == b).count();
            // f32 against f64: a near-tie may flip; allow one in a thousand.
            assert!(
                same * 1000 >= want.len() * 999,
                "k={k} t={t}: {same} of {} agree",
                want.len()
            );
        }
        // With k = 1 each bank entry is its own nearest neighbour.
        let nearest = Knn {
            k: 1,
            temperature: 0.1,
        };
        let acc = nearest
            .accuracy(&bank, &labels, &bank, &labels, classes)
            .unwrap();
        assert_eq!(acc, 1.0);
    }

    #[test]
    fn an_empty_bank_or_a_width_mismatch_is_an_error() {
        let empty = Tensor::zeros([0, 4], (Kind::Float, tch::Device::Cpu));
        let labels = Tensor::zeros([0], (Kind::Int64, tch::Device::Cpu));
        let q = Tensor::ones([2, 4], (Kind::Float, tch::Device::Cpu));
        let e = Knn::default().predict(&empty, &labels, &q, 3).unwrap_err();
        assert!(e.to_string().contains("memory bank is empty"), "{e}");
        let bank = Tensor::ones([2, 3], (Kind::Float, tch::Device::Cpu));
        let l2 = Tensor::zeros([2], (Kind::Int64, tch::Device::Cpu));
        let e = Knn::default().predict(&bank, &l2, &q, 3).unwrap_err();
        assert!(e.to_string().contains("differ in width"), "{e}");
    }
}
