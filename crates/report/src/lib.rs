//! Reporting layer of simclr-rs: what a run folder shows a person. The only crate that draws
//! (through `plotters`).
//!
//! - [`overview`]: before training, `summary.txt`, `classes.txt` and `augmentations.png`; the
//!   data set's contact sheet;
//! - [`markdown`]: after training, `val_acc.png`, `val_loss.png`, `report.md` and (through
//!   [`html`]) `report.html`;
//! - [`html`]: `report.html`, the report as one self-contained page (figures embedded);
//! - [`embedding`]: `embedding.png`, features by class on their first two principal components;
//! - [`tensorboard`]: TensorBoard event files and projector files, written while a run goes;
//! - [`plots`]: the drawing itself (line plots, the label-efficiency plot, scatter plots, image
//!   grids), each written atomically.

pub mod embedding;
pub mod html;
pub mod markdown;
pub mod overview;
pub mod plots;
pub mod tensorboard;

pub use markdown::{LIBTORCH_VERSION, write_report};
pub use overview::write_overview;
