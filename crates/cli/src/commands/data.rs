//! `simclr-cli data inspect|export`: what the readers decode, as text or PNG files.

use std::path::Path;

use anyhow::{Context, Result, bail};
use train::Config;

pub fn inspect(cfg: &Config) -> Result<()> {
    let ds = stl10_data::load(&cfg.data, cfg.runtime.seed)?;
    print!("{}", stl10_data::inspect(&ds, cfg.data.batch_size));
    Ok(())
}

pub fn export(cfg: &Config, split: &str, count: usize, out: &Path) -> Result<()> {
    let ds = stl10_data::load(&cfg.data, cfg.runtime.seed)?;
    let Some(images) = ds.split(split) else {
        bail!("--split {split}: expected train, unlabeled or test");
    };
    let written = stl10_data::export_png(images, &ds.class_names, count, out)
        .with_context(|| format!("exporting {split} images"))?;
    println!("wrote {} images to {}", written.len(), out.display());
    Ok(())
}
