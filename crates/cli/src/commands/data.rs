//! `simclr-cli data inspect|export`: what the readers decode, as text or PNG files.

use std::path::Path;

use anyhow::{Context, Result, bail};
use train::config::DataSettings;

/// `data download stl10`: the official archive (or `mirror`: URL and MD5) into `to` (default
/// the default `data.root`).
pub fn download(to: Option<&Path>, mirror: Option<(String, String)>, show_bar: bool) -> Result<()> {
    use stl10_data::download::{self, Archive, Outcome};
    let dir = to.map_or_else(stl10_data::default_stl10_root, Path::to_path_buf);
    let mut archive = Archive::stl10();
    if let Some((url, md5)) = mirror {
        archive.url = url;
        archive.md5 = md5;
    }
    let mut bar = crate::progress::Transfer::new(show_bar);
    match download::download(&archive, &dir, &mut bar)? {
        Outcome::Present(folder) => println!("already there: {}", folder.display()),
        Outcome::Fetched { folder, resumed_at } => {
            bar.finish();
            if resumed_at > 0 {
                println!("resumed after {resumed_at} bytes");
            }
            println!("unpacked {}", folder.display());
        }
    }
    if to.is_some() {
        println!("use it with --set data.root={}", dir.display());
    }
    Ok(())
}

/// `data inspect`: the account of the data set, and with `sheet` (file, images per class) its
/// contact sheet.
pub fn inspect(data: &DataSettings, sheet: Option<(&Path, usize)>) -> Result<()> {
    let ds = stl10_data::load(&data.data, data.seed)?;
    print!("{}", stl10_data::inspect(&ds, data.data.batch_size));
    if let Some((path, per_class)) = sheet {
        report::overview::contact_sheet(&ds, per_class, path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

pub fn export(data: &DataSettings, split: &str, count: usize, out: &Path) -> Result<()> {
    let ds = stl10_data::load(&data.data, data.seed)?;
    let Some(images) = ds.split(split) else {
        bail!("--split {split}: expected train, unlabeled or test");
    };
    let written = stl10_data::export_png(images, &ds.class_names, count, out)
        .with_context(|| format!("exporting {split} images"))?;
    println!("wrote {} images to {}", written.len(), out.display());
    Ok(())
}
