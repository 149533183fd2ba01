//! Encoded images (JPEG, PNG) left on disk and decoded when a batch asks for them: whole files
//! of an image folder, or members of WebDataset tar shards read at their offsets. Memory holds
//! only where each image is, never its pixels.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{DataError, Result};
use crate::folder::{MAX_PIXELS, decode_planar_bytes};

/// Bytes read of each image to check its header before a streamed run.
const HEADER_BYTES: u64 = 64 << 10;

/// The width and height an image's (possibly truncated) bytes declare.
fn dimensions(bytes: &[u8]) -> std::result::Result<(u32, u32), String> {
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .into_dimensions()
        .map_err(|e| e.to_string())
}

/// Largest encoded image read (a 64-megapixel PNG, uncompressed, is 192 MiB).
pub(crate) const MAX_ENCODED_BYTES: u64 = 1 << 30;

/// Where one encoded image lies: a whole file, or `len` bytes at `offset` of a tar shard.
#[derive(Debug, Clone)]
struct Item {
    file: u32,
    at: Option<(u64, u64)>,
    member: Option<Box<str>>,
}

/// Encoded images, in order, decoded one at a time on request.
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    files: Vec<PathBuf>,
    items: Vec<Item>,
}

impl Encoded {
    /// Image files, each holding one image.
    pub(crate) fn files(paths: Vec<PathBuf>) -> Self {
        let items = (0..paths.len())
            .map(|i| Item {
                file: i as u32,
                at: None,
                member: None,
            })
            .collect();
        Encoded {
            files: paths,
            items,
        }
    }

    /// An empty list to which tar members are added.
    pub(crate) fn new() -> Self {
        Encoded::default()
    }

    /// Adds the tar shard `path` (its members follow with [`Encoded::push_member`]) and
    /// returns its number.
    pub(crate) fn push_file(&mut self, path: PathBuf) -> u32 {
        self.files.push(path);
        (self.files.len() - 1) as u32
    }

    /// Adds the member `name` of shard `file`: `len` bytes at `offset`.
    pub(crate) fn push_member(&mut self, file: u32, name: &str, offset: u64, len: u64) {
        self.items.push(Item {
            file,
            at: Some((offset, len)),
            member: Some(name.into()),
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// The images at `keep`, in that order.
    pub(crate) fn select(self, keep: &[usize]) -> Self {
        Encoded {
            items: keep.iter().map(|&i| self.items[i].clone()).collect(),
            files: self.files,
        }
    }

    /// The file of image `i`, or `shard.tar:member` for a tar member (errors name it so).
    pub(crate) fn source(&self, i: usize) -> String {
        let item = &self.items[i];
        let file = self.files[item.file as usize].display();
        match &item.member {
            Some(m) => format!("{file}:{m}"),
            None => file.to_string(),
        }
    }

    /// Image `i`'s first `limit` bytes (all of them when shorter).
    fn head(&self, i: usize, limit: u64) -> Result<Vec<u8>> {
        let item = &self.items[i];
        let path = &self.files[item.file as usize];
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let (offset, len) = match item.at {
            Some(at) => at,
            None => (
                0,
                file.metadata().map_err(|e| DataError::io(path, e))?.len(),
            ),
        };
        let mut buf = vec![0u8; len.min(limit) as usize];
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| DataError::io(self.source(i), e))?;
        Ok(buf)
    }

    fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        let item = &self.items[i];
        let path = &self.files[item.file as usize];
        let too_large = |len: u64| {
            Err(DataError::Image {
                path: PathBuf::from(self.source(i)),
                problem: format!(
                    "{len} bytes is more than the {MAX_ENCODED_BYTES} an encoded image may have"
                ),
            })
        };
        match item.at {
            None => {
                let len = std::fs::metadata(path)
                    .map_err(|e| DataError::io(path, e))?
                    .len();
                if len > MAX_ENCODED_BYTES {
                    return too_large(len);
                }
                std::fs::read(path).map_err(|e| DataError::io(path, e))
            }
            Some((_, len)) if len > MAX_ENCODED_BYTES => too_large(len),
            Some((offset, len)) => {
                let file = File::open(path).map_err(|e| DataError::io(path, e))?;
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, offset)
                    .map_err(|e| DataError::io(self.source(i), e))?;
                Ok(buf)
            }
        }
    }

    /// Image `i` decoded to planar RGB `[3][size][size]` as the folder reader decodes it.
    pub(crate) fn decode(&self, i: usize, size: usize) -> Result<Vec<u8>> {
        let bytes = self.bytes(i)?;
        decode_planar_bytes(&bytes, Path::new(&self.source(i)), size)
    }

    /// Whether image `i`'s header reads as an image within the pixel limit: the check a
    /// streamed data set makes of every image before training, on its first 64 KiB (a full
    /// decode waits for the batch).
    fn check(&self, i: usize) -> Result<()> {
        // A header is in the first 64 KiB but for rare JPEGs with large metadata: those are
        // read whole before they count as unreadable.
        let head = self.head(i, HEADER_BYTES)?;
        if dimensions(&head).is_ok() {
            return self.within_limit(i, &head);
        }
        let bytes = self.bytes(i)?;
        self.within_limit(i, &bytes)
    }

    fn within_limit(&self, i: usize, bytes: &[u8]) -> Result<()> {
        let source = self.source(i);
        let bad = |problem: String| DataError::Image {
            path: PathBuf::from(&source),
            problem,
        };
        let (w, h) = dimensions(bytes).map_err(bad)?;
        if u64::from(w) * u64::from(h) > MAX_PIXELS {
            return Err(bad(format!(
                "{w} x {h} pixels is more than the limit of {MAX_PIXELS}"
            )));
        }
        Ok(())
    }

    /// Positions of the images whose headers read, checked on all cores; the first that does
    /// not (or whose file cannot be read) is an error unless `skip`.
    pub(crate) fn readable(&self, skip: bool) -> Result<Vec<usize>> {
        let checked: Vec<Result<()>> = (0..self.len())
            .into_par_iter()
            .map(|i| self.check(i))
            .collect();
        let mut kept = Vec::with_capacity(self.len());
        for (i, c) in checked.into_iter().enumerate() {
            match c {
                Ok(()) => kept.push(i),
                Err(DataError::Image { .. } | DataError::Io { .. }) if skip => {}
                Err(e) => return Err(e),
            }
        }
        Ok(kept)
    }
}
