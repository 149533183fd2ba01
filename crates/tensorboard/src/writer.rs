//! [`EventWriter`]: one event file of scalars, images and text, appended to as a run goes; and
//! [`read_events`], which reads one back.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::Error;
use crate::proto::{
    DT_STRING, Event, Image, Kind, PluginData, Summary, SummaryMetadata, TensorProto, TensorShape,
    Value, What,
};
use crate::record::{read_record, write_record};

/// The version line that opens every event file.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Writes one new event file in a log folder (TensorBoard's "run"). Each value is a tag at a
/// step; a tag and step already in the folder's files is not written again.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
    seen: HashSet<(String, i64)>,
}

impl EventWriter {
    /// Opens a new event file in `dir` (made when missing), first pruning the event files
    /// already there to the values `keep(tag, step)` accepts: a resumed run drops what it
    /// logged after its checkpoint, then logs it again. A file is rewritten (atomically) only
    /// when something goes; a record cut short at its end (a writer that died mid-record) or
    /// damaged goes too, with the rest of its file, and a file left without values is
    /// removed.
    pub fn open(dir: &Path, keep: impl Fn(&str, i64) -> bool) -> Result<Self, Error> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut seen = HashSet::new();
        let existing = event_files(dir)?;
        for file in &existing {
            prune(file, &keep, &mut seen)?;
        }
        let path = dir.join(new_file_name(&existing));
        let file = File::create_new(&path).map_err(|e| Error::io(&path, e))?;
        let mut writer = EventWriter {
            out: BufWriter::new(file),
            path,
            seen,
        };
        let version = Event {
            wall_time: now(),
            step: 0,
            what: Some(What::FileVersion(FILE_VERSION.into())),
        };
        writer.write(&version)?;
        writer.flush()?;
        Ok(writer)
    }

    /// The event file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A scalar (stored as float32, as TensorBoard stores them).
    pub fn scalar(&mut self, tag: &str, step: i64, value: f64) -> Result<(), Error> {
        self.value(tag, step, None, Kind::SimpleValue(value as f32))
    }

    /// A PNG image, whose size and colours are read from its header.
    pub fn image(&mut self, tag: &str, step: i64, png: &[u8]) -> Result<(), Error> {
        let (width, height, colorspace) = png_header(png)
            .ok_or_else(|| Error::invalid(&self.path, format!("{tag}: not a PNG image")))?;
        let image = Image {
            height: height as i32,
            width: width as i32,
            colorspace,
            encoded_image_string: png.to_vec(),
        };
        self.value(tag, step, None, Kind::Image(image))
    }

    /// Markdown for the text dashboard.
    pub fn text(&mut self, tag: &str, step: i64, markdown: &str) -> Result<(), Error> {
        let metadata = SummaryMetadata {
            plugin_data: Some(PluginData {
                plugin_name: "text".into(),
                content: Vec::new(),
            }),
        };
        let tensor = TensorProto {
            dtype: DT_STRING,
            tensor_shape: Some(TensorShape { dim: Vec::new() }),
            string_val: vec![markdown.as_bytes().to_vec()],
        };
        self.value(tag, step, Some(metadata), Kind::Tensor(tensor))
    }

    /// Pushes what was written to the file, for a TensorBoard reading it now.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }

    fn value(
        &mut self,
        tag: &str,
        step: i64,
        metadata: Option<SummaryMetadata>,
        kind: Kind,
    ) -> Result<(), Error> {
        if !self.seen.insert((tag.to_string(), step)) {
            return Ok(());
        }
        let value = Value {
            tag: tag.into(),
            metadata,
            kind: Some(kind),
        };
        self.write(&Event {
            wall_time: now(),
            step,
            what: Some(What::Summary(Summary { value: vec![value] })),
        })
    }

    fn write(&mut self, event: &Event) -> Result<(), Error> {
        write_record(&mut self.out, &event.encode_to_vec()).map_err(|e| Error::io(&self.path, e))
    }
}

/// The event files in `dir` (names holding `tfevents`, as TensorBoard finds them), in name
/// order, which is the order they were written in.
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains("tfevents") && !name.starts_with('.') && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Every event of the file at `path`, up to a record cut short at its end; a record whose
/// checksum or contents are wrong is an error naming the file.
pub fn read_events(path: &Path) -> Result<Vec<Event>, Error> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut input = BufReader::new(file);
    let mut events = Vec::new();
    while let Some(data) = read_record(&mut input).map_err(|e| Error::io(path, e))? {
        let event = Event::decode(data.as_slice()).map_err(|e| {
            Error::io(
                path,
                io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
            )
        })?;
        events.push(event);
    }
    Ok(events)
}

/// The records of `path` with their events, up to the first one cut short (a writer that died
/// mid-record) or damaged: TensorBoard reads no further either.
fn readable_records(path: &Path) -> Result<Vec<(Vec<u8>, Event)>, Error> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut input = BufReader::new(file);
    let mut records = Vec::new();
    loop {
        match read_record(&mut input) {
            Ok(Some(data)) => match Event::decode(data.as_slice()) {
                Ok(event) => records.push((data, event)),
                Err(_) => break,
            },
            Ok(None) => break,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => break,
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(records)
}

/// Keeps the values of `path` that `keep` accepts and that `seen` has not had, adding them to
/// `seen`, up to a record cut short or damaged; rewrites the file when anything goes (an
/// event kept whole keeps its bytes, fields this crate does not know included), and removes it
/// when no value stays.
fn prune(
    path: &Path,
    keep: &impl Fn(&str, i64) -> bool,
    seen: &mut HashSet<(String, i64)>,
) -> Result<(), Error> {
    let size = fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    let mut bytes = Vec::new();
    let mut values = false;
    for (data, mut event) in readable_records(path)? {
        let step = event.step;
        let record = match &mut event.what {
            Some(What::Summary(summary)) => {
                let before = summary.value.len();
                summary
                    .value
                    .retain(|v| keep(&v.tag, step) && seen.insert((v.tag.clone(), step)));
                if summary.value.is_empty() {
                    continue;
                }
                values = true;
                if summary.value.len() == before {
                    data
                } else {
                    event.encode_to_vec()
                }
            }
            _ => data,
        };
        write_record(&mut bytes, &record).map_err(|e| Error::io(path, e))?;
    }
    if !values {
        return fs::remove_file(path).map_err(|e| Error::io(path, e));
    }
    if bytes.len() as u64 == size {
        return Ok(());
    }
    crate::write_atomically(path, &bytes)
}

/// `events.out.tfevents.<seconds>.<host>.<pid>.<n>`, TensorBoard's pattern; the seconds (ten
/// digits, later than any of `existing`'s) order the files of successive sessions.
fn new_file_name(existing: &[PathBuf]) -> String {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let newest = existing
        .iter()
        .filter_map(|p| {
            p.file_name()?
                .to_str()?
                .split('.')
                .nth(3)?
                .parse::<u64>()
                .ok()
        })
        .max();
    let seconds = newest.map_or(now, |n| now.max(n + 1));
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().replace(['/', '\\', '.'], "_"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    format!(
        "events.out.tfevents.{seconds:010}.{host}.{}.{n:04}",
        std::process::id()
    )
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A PNG's width, height and TensorBoard colourspace (1 grey, 2 grey and alpha, 3 RGB or
/// palette, 4 RGBA), from its IHDR chunk.
fn png_header(png: &[u8]) -> Option<(u32, u32, i32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if png.len() < 26 || &png[..8] != SIGNATURE || &png[12..16] != b"IHDR" {
        return None;
    }
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes"));
    let colorspace = match png[25] {
        0 => 1,
        4 => 2,
        2 | 3 => 3,
        6 => 4,
        _ => return None,
    };
    Some((be(16), be(20), colorspace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_png_header_gives_size_and_colours() {
        let mut png = Vec::new();
        let img = image::RgbImage::new(7, 3);
        img.write_to(&mut io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(png_header(&png), Some((7, 3, 3)));
        assert_eq!(png_header(b"GIF89a............................"), None);
    }
}
