//! Reporting layer of simclr-rs: what a run folder shows a person. The only crate that draws
//! (through `plotters`).
//!
//! - [`overview`]: before training, `summary.txt`, `classes.txt` and `augmentations.png`; the
//!   data set's contact sheet;
//! - [`markdown`]: after training, `val_acc.png`, `val_loss.png` and `report.md`;
//! - [`embedding`]: `embedding.png`, features by class on their first two principal components;
//! - [`plots`]: the drawing itself (line plots, the label-efficiency plot, scatter plots, image
//!   grids), each written atomically.

pub mod embedding;
pub mod markdown;
pub mod overview;
pub mod plots;

pub use markdown::{LIBTORCH_VERSION, write_report};
pub use overview::write_overview;
