//! `simclr-cli data download|inspect|export|pack|verify`: fetching, looking at, and packing
//! data sets.

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
    print!("{}", stl10_data::inspect(&ds, data.data.batch_size)?);
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

/// A packed data set that is not whole: `data pack` stopped by Ctrl-C (`interrupted`), or
/// files that `data verify` found differing from the manifest.
#[derive(Debug)]
pub struct Unfinished {
    pub interrupted: bool,
    pub message: String,
}

impl std::fmt::Display for Unfinished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Unfinished {}

/// `data pack`: the configured data set into `out`, with a bar (images, rate, time left) on a
/// terminal; Ctrl-C stops after the current shard, and the same command resumes.
pub fn pack(
    data: &DataSettings,
    out: &Path,
    options: &stl10_data::pack::PackOptions,
    show_bar: bool,
) -> Result<()> {
    let mut bar = crate::progress::Packing::new(show_bar);
    let outcome = stl10_data::pack::pack(&data.data, out, options, &mut bar)?;
    bar.finish();
    for key in &outcome.set_aside {
        println!("{key} set aside: the pack keeps every image; it applies when training on it");
    }
    if outcome.already_packed {
        println!(
            "already packed: {} (`simclr-cli data verify {}` checks it)",
            out.display(),
            out.display()
        );
        return Ok(());
    }
    let Some(manifest) = outcome.manifest else {
        return Err(Unfinished {
            interrupted: true,
            message: format!(
                "interrupted: {} shards written, {} kept from before; run the same command \
                 to finish",
                outcome.shards_written, outcome.shards_kept
            ),
        }
        .into());
    };
    let skipped: Vec<_> = manifest.skipped().collect();
    for s in &skipped {
        println!("skipped {}: {}", s.source, s.problem);
    }
    let count = |s: &stl10_data::packed::SplitManifest| s.images;
    println!(
        "packed {} train, {} unlabeled, {} test images ({s}x{s}) into {}: {} shards written, \
         {} kept from an earlier run{}",
        count(&manifest.train),
        count(&manifest.unlabeled),
        count(&manifest.test),
        out.display(),
        outcome.shards_written,
        outcome.shards_kept,
        if skipped.is_empty() {
            String::new()
        } else {
            format!(", {} unreadable images skipped", skipped.len())
        },
        s = manifest.image_size,
    );
    println!(
        "train on it with --set data.kind=packed --set data.root={}",
        out.display()
    );
    Ok(())
}

/// `data verify`: every file against the manifest; an error listing each that differs.
pub fn verify(dir: &Path) -> Result<()> {
    let verified = stl10_data::packed::verify(dir)?;
    if verified.problems.is_empty() {
        println!(
            "{}: {} files, {} bytes, all as the manifest says",
            dir.display(),
            verified.files,
            verified.bytes
        );
        return Ok(());
    }
    for p in &verified.problems {
        println!("{p}");
    }
    Err(Unfinished {
        interrupted: false,
        message: match verified.problems.len() {
            1 => format!("{}: differs from its manifest (above)", dir.display()),
            n => format!(
                "{}: {n} differences from its manifest (above)",
                dir.display()
            ),
        },
    }
    .into())
}
