//! Evaluation layer of simclr-rs: what uses a trained encoder or classifier.
//!
//! - [`embed`]: a split's features as `.npy` (and their picture);
//! - [`predict`]: class predictions for image files with a trained classifier;
//! - [`sweep`]: label efficiency, the baseline against fine-tuning, the linear probe and kNN on
//!   nested labeled subsets;
//! - [`folds`]: STL-10's ten-fold protocol;
//! - [`compare`]: run folders side by side (their validation accuracy curves in one picture,
//!   a table of each history's best figures).
//!
//! Internal: `linear_eval` (a linear classifier on frozen features) and `subsets` (a labeled
//! subset's schedule and frozen scores, shared by the sweep and the folds).

pub mod compare;
pub mod embed;
pub mod folds;
mod linear_eval;
pub mod predict;
mod subsets;
pub mod sweep;

use std::path::Path;

use train::error::{Result, TrainError};

/// Creates the folder of each of `files` where it is missing.
fn create_parents<'a>(files: impl IntoIterator<Item = &'a Path>) -> Result<()> {
    for file in files {
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        }
    }
    Ok(())
}
