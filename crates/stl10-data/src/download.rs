//! Fetching STL-10 (feature `download`): the official archive over HTTP with resumption by
//! range requests, its published MD5 checked before anything is unpacked, and a streaming
//! tar.gz extraction into `stl10_binary/`, each step atomic.
//!
//! In `DIR` (default [`crate::default_stl10_root`]): the archive grows as `stl10_binary.tar.gz.partial`
//! (kept when the connection drops, so the next call resumes where it stopped; deleted when its
//! digest is wrong), is unpacked into `.stl10_binary.partial/` and renamed to `stl10_binary/`
//! only when complete, then deleted. A `DIR/stl10_binary/` that exists is taken as done.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use std::time::Duration;

use md5::{Digest, Md5};

use crate::error::{DataError, Result};

/// A published archive: where it is, its digest, and the folder it unpacks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub url: String,
    /// Lower-case hex MD5 of the whole archive.
    pub md5: String,
    /// The file name the archive is saved under while it downloads.
    pub file_name: &'static str,
    /// The top folder of the archive's entries (what is extracted).
    pub folder: &'static str,
}

impl Archive {
    /// The official STL-10 binary archive (2.6 GB) and the MD5 torchvision and TFDS check.
    pub fn stl10() -> Archive {
        Archive {
            url: "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz".into(),
            md5: "91f7769df0f17e558f3565bffb0c7dfb".into(),
            file_name: "stl10_binary.tar.gz",
            folder: "stl10_binary",
        }
    }
}

/// What [`download`] reports as bytes arrive.
pub trait Progress {
    /// The transfer starts with `done` bytes already on disk, of `total` when known.
    fn start(&mut self, _done: u64, _total: Option<u64>) {}
    /// `done` bytes are on disk.
    fn advance(&mut self, _done: u64) {}
    /// A phase after the transfer began (`"checking"`, `"unpacking"`).
    fn phase(&mut self, _name: &str) {}
}

/// A [`Progress`] that shows nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// What [`download`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `dir/<folder>` was already there.
    Present(PathBuf),
    /// Downloaded (`resumed_at` bytes were already on disk), checked and unpacked.
    Fetched { folder: PathBuf, resumed_at: u64 },
}

/// Makes `dir/<archive.folder>` from the archive at `archive.url`; see the module docs.
pub fn download(archive: &Archive, dir: &Path, progress: &mut dyn Progress) -> Result<Outcome> {
    let folder = dir.join(archive.folder);
    if folder.is_dir() {
        return Ok(Outcome::Present(folder));
    }
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let partial = dir.join(format!("{}.partial", archive.file_name));
    let resumed_at = fetch(&archive.url, &partial, progress)?;
    progress.phase("checking");
    let digest = md5_of(&partial)?;
    if digest != archive.md5.to_lowercase() {
        let _ = std::fs::remove_file(&partial);
        return Err(DataError::Download {
            url: archive.url.clone(),
            problem: format!(
                "the archive's MD5 is {digest}, not the published {}; the download was deleted, \
                 run the command again",
                archive.md5
            ),
        });
    }
    progress.phase("unpacking");
    unpack(&partial, archive.folder, dir)?;
    std::fs::remove_file(&partial).map_err(|e| DataError::io(&partial, e))?;
    Ok(Outcome::Fetched { folder, resumed_at })
}

/// Downloads `url` into `partial`, continuing after the bytes already there when the server
/// honours a range request. Returns how many bytes were there at the start.
fn fetch(url: &str, partial: &Path, progress: &mut dyn Progress) -> Result<u64> {
    let have = std::fs::metadata(partial).map_or(0, |m| m.len());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_body(None)
        .build()
        .into();
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let bad = |problem: String| DataError::Download {
        url: url.to_string(),
        problem,
    };
    let response = request.call().map_err(|e| bad(e.to_string()))?;
    let status = response.status().as_u16();
    let length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let (start, total) = match status {
        206 => {
            // `bytes START-END/TOTAL`: the server must continue where the file stops.
            let range = response
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range);
            match range {
                Some((from, total)) if from == have => (have, total.or(length.map(|l| have + l))),
                _ => {
                    let _ = std::fs::remove_file(partial);
                    return Err(bad(format!(
                        "the server did not resume at byte {have}; the partial download was \
                         deleted, run the command again to start over"
                    )));
                }
            }
        }
        200 => (0, length),
        // The partial file already holds everything the server has.
        416 if have > 0 => return Ok(have),
        _ => {
            let reason = response.status().canonical_reason().unwrap_or("");
            return Err(bad(format!("the server answered HTTP {status} {reason}")));
        }
    };
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(start > 0)
        .truncate(start == 0)
        .open(partial)
        .map_err(|e| DataError::io(partial, e))?;
    progress.start(start, total);
    let mut body = response.into_body().into_reader();
    let done = copy(&mut body, &mut file, start, partial, progress).map_err(|e| {
        bad(format!(
            "the transfer stopped ({e}); {} bytes are kept in {}, run the command again to \
             resume",
            std::fs::metadata(partial).map_or(0, |m| m.len()),
            partial.display()
        ))
    })?;
    file.sync_all().map_err(|e| DataError::io(partial, e))?;
    if let Some(total) = total.filter(|&t| t != done) {
        return Err(bad(format!(
            "the transfer ended after {done} of {total} bytes; they are kept in {}, run the \
             command again to resume",
            partial.display()
        )));
    }
    Ok(start)
}

/// `(start, total)` of a `Content-Range: bytes START-END/TOTAL` value (`TOTAL` may be `*`).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    Some((start, total.trim().parse().ok()))
}

/// Copies `from` to `to` in 1 MiB pieces, reporting the running total (from `done`).
fn copy(
    from: &mut impl Read,
    to: &mut File,
    mut done: u64,
    path: &Path,
    progress: &mut dyn Progress,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(done),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n]).map_err(|e| {
            std::io::Error::new(e.kind(), format!("writing {}: {e}", path.display()))
        })?;
        done += n as u64;
        progress.advance(done);
    }
}

/// Lower-case hex MD5 of the file at `path`, streamed.
fn md5_of(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Md5::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| DataError::io(path, e))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Streams the tar.gz at `archive` into `dir/.<folder>.partial/`, keeping only entries under
/// `folder/` (each path checked to stay inside), then renames its `folder` into `dir`.
fn unpack(archive: &Path, folder: &str, dir: &Path) -> Result<()> {
    let staging = dir.join(format!(".{folder}.partial"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    let file = File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    let bad = |e: std::io::Error| DataError::format(archive, format!("cannot unpack: {e}"));
    let mut found = false;
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        if path.components().next().map(|c| c.as_os_str()) != Some(folder.as_ref()) {
            continue;
        }
        found |= entry.unpack_in(&staging).map_err(bad)?;
    }
    if !found {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(DataError::format(
            archive,
            format!("holds no {folder}/ folder"),
        ));
    }
    let target = dir.join(folder);
    std::fs::rename(staging.join(folder), &target).map_err(|e| DataError::io(&target, e))?;
    std::fs::remove_dir_all(&staging).map_err(|e| DataError::io(&staging, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range("bytes x-9/10"), None);
    }
}
