//! Writers for small data sets in the official formats, for tests, benches and demos.
//!
//! Every pixel encodes where it is: [`pixel_value`] of (image, channel, row, column), so a reader
//! that transposes, swaps channels or mixes images up reads different values.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use md5::{Digest, Md5};

use stl10_data::stl10::STL10_SIZE;

/// The value fixtures store at `(image, channel, row, col)`; row and column weigh differently.
pub fn pixel_value(image: usize, channel: usize, row: usize, col: usize) -> u8 {
    ((image * 11 + channel * 85 + row * 3 + col * 7) % 256) as u8
}

/// Bytes of `n` STL-10 images (starting at image number `first`) in the official layout:
/// channel planes R, G, B, each column-major.
pub fn stl10_image_bytes(first: usize, n: usize) -> Vec<u8> {
    let s = STL10_SIZE;
    let mut out = Vec::with_capacity(n * 3 * s * s);
    for i in first..first + n {
        for c in 0..3 {
            for col in 0..s {
                for row in 0..s {
                    out.push(pixel_value(i, c, row, col));
                }
            }
        }
    }
    out
}

/// Label of fixture image `i` (0-based class), cycling through 10 classes.
pub fn label_of(i: usize) -> u8 {
    (i % 10) as u8
}

/// Writes an STL-10 `stl10_binary/` folder under `root` with `train`, `test` and `unlabeled`
/// images, `class_names.txt` and ten folds of `fold_indices.txt` (fold k: indices i with
/// `i % 10 == k`). Train images are numbered from 0, test from 1000, unlabeled from 2000.
pub fn write_stl10(
    root: &Path,
    train: usize,
    test: usize,
    unlabeled: usize,
) -> std::io::Result<()> {
    let dir = root.join("stl10_binary");
    std::fs::create_dir_all(&dir)?;
    let labels = |first: usize, n: usize| {
        (first..first + n)
            .map(|i| label_of(i) + 1)
            .collect::<Vec<u8>>()
    };
    std::fs::write(dir.join("train_X.bin"), stl10_image_bytes(0, train))?;
    std::fs::write(dir.join("train_y.bin"), labels(0, train))?;
    std::fs::write(dir.join("test_X.bin"), stl10_image_bytes(1000, test))?;
    std::fs::write(dir.join("test_y.bin"), labels(1000, test))?;
    std::fs::write(
        dir.join("unlabeled_X.bin"),
        stl10_image_bytes(2000, unlabeled),
    )?;
    let names = [
        "airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck",
    ];
    std::fs::write(dir.join("class_names.txt"), names.join("\n") + "\n")?;
    let mut folds = String::new();
    for k in 0..10 {
        let idx: Vec<String> = (k..train).step_by(10).map(|i| i.to_string()).collect();
        folds.push_str(&idx.join(" "));
        folds.push('\n');
    }
    std::fs::write(dir.join("fold_indices.txt"), folds)
}

/// Writes an IDX file of unsigned bytes with `dims`, gzip-compressed when `gz`.
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8], gz: bool) -> std::io::Result<()> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        bytes.extend_from_slice(&(d as u32).to_be_bytes());
    }
    bytes.extend_from_slice(data);
    if gz {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes)?;
        bytes = enc.finish()?;
    }
    std::fs::write(path, bytes)
}

/// Writes MNIST-style `train-*`/`t10k-*` IDX files (gzip) with `rows` x `cols` images whose
/// pixel `(r, c)` of image `i` is [`pixel_value`]`(i, 0, r, c)` and labels [`label_of`].
pub fn write_idx_set(
    root: &Path,
    train: usize,
    test: usize,
    rows: usize,
    cols: usize,
) -> std::io::Result<()> {
    std::fs::create_dir_all(root)?;
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let mut px = Vec::with_capacity(n * rows * cols);
        for i in 0..n {
            for r in 0..rows {
                for c in 0..cols {
                    px.push(pixel_value(i, 0, r, c));
                }
            }
        }
        let labels: Vec<u8> = (0..n).map(label_of).collect();
        write_idx(
            &root.join(format!("{prefix}-images-idx3-ubyte.gz")),
            &[n, rows, cols],
            &px,
            true,
        )?;
        write_idx(
            &root.join(format!("{prefix}-labels-idx1-ubyte.gz")),
            &[n],
            &labels,
            true,
        )?;
    }
    Ok(())
}

/// A tar.gz holding `folder/` with an STL-10 fixture of 20 train, 6 test and 40 unlabeled
/// images (written under `scratch` first), laid out as the official archive is
/// (`stl10_binary/...`).
pub fn stl10_archive(scratch: &Path, folder: &str) -> std::io::Result<Vec<u8>> {
    write_stl10(scratch, 20, 6, 40)?;
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all(folder, scratch.join("stl10_binary"))?;
    tar.into_inner()?.finish()
}

/// Lower-case hex MD5 of `bytes`.
pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A one-thread HTTP server on 127.0.0.1 for download tests: serves `body` at `/a.tar.gz`
/// (anything else: 404, range requests: 206) for exactly `requests` connections, then stops.
/// The first response is cut after `cut` body bytes when set (a dropped connection). Records
/// each request's `Range` header.
pub struct HttpServer {
    /// The archive's address.
    pub url: String,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
    thread: JoinHandle<()>,
}

impl HttpServer {
    pub fn start(body: Vec<u8>, requests: usize, cut: Option<usize>) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/a.tar.gz", listener.local_addr().unwrap());
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let seen = ranges.clone();
        let thread = std::thread::spawn(move || {
            for (i, stream) in listener.incoming().take(requests).enumerate() {
                let mut stream = stream.unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let (path, range) = read_request(&mut stream);
                seen.lock().unwrap().push(range.clone());
                let cut = if i == 0 { cut } else { None };
                respond(&mut stream, &path, range.as_deref(), &body, cut);
            }
        });
        HttpServer {
            url,
            ranges,
            thread,
        }
    }

    /// Waits for the last request and returns every request's `Range` header.
    pub fn finish(self) -> Vec<Option<String>> {
        self.thread.join().unwrap();
        Arc::try_unwrap(self.ranges).unwrap().into_inner().unwrap()
    }
}

/// The request's path and its `Range` header.
fn read_request(stream: &mut std::net::TcpStream) -> (String, Option<String>) {
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_string());
        }
    }
    (path, range)
}

fn respond(
    stream: &mut std::net::TcpStream,
    path: &str,
    range: Option<&str>,
    body: &[u8],
    cut: Option<usize>,
) {
    if path != "/a.tar.gz" {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    let start: usize = range
        .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
        .unwrap_or(0);
    let head = if range.is_some() {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\n\r\n",
            body.len() - start,
            body.len() - 1,
            body.len()
        )
    } else {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
    };
    stream.write_all(head.as_bytes()).unwrap();
    let end = cut.map_or(body.len(), |c| (start + c).min(body.len()));
    let _ = stream.write_all(&body[start..end]);
    let _ = stream.flush();
    // Dropping the stream closes the connection, mid-body when cut.
}

/// The fine label CIFAR-100 fixtures give image `i` (CIFAR-10's is [`label_of`]).
pub fn cifar100_label_of(i: usize) -> u8 {
    ((i * 7) % 100) as u8
}

/// Writes a CIFAR fixture of `layout` under `root`: `per_file` images in each training file
/// and `test` test images, numbered across the files (training from 0, test from 1000), pixels
/// from [`pixel_value`] as R, G, B planes, row-major. With `archive`, only the `.tar.gz` the
/// official download is (its folder inside), else the unpacked folder.
pub fn write_cifar(
    root: &Path,
    layout: &stl10_data::cifar::Layout,
    per_file: usize,
    test: usize,
    archive: bool,
) -> std::io::Result<()> {
    let record = |i: usize| {
        let mut r = Vec::with_capacity(layout.label_bytes + 3 * 32 * 32);
        match layout.label_bytes {
            1 => r.push(label_of(i)),
            _ => r.extend([(i % 20) as u8, cifar100_label_of(i)]),
        }
        for c in 0..3 {
            for y in 0..32 {
                r.extend((0..32).map(|x| pixel_value(i, c, y, x)));
            }
        }
        r
    };
    let mut files: Vec<(String, Vec<u8>)> = layout
        .train
        .iter()
        .enumerate()
        .map(|(f, name)| {
            let first = f * per_file;
            (
                name.to_string(),
                (first..first + per_file).flat_map(record).collect(),
            )
        })
        .collect();
    files.push((
        layout.test.into(),
        (1000..1000 + test).flat_map(record).collect(),
    ));
    let names: Vec<String> = (0..layout.classes).map(|c| format!("class_{c}")).collect();
    files.push((
        layout.names.into(),
        (names.join("\n") + "\n\n").into_bytes(),
    ));
    std::fs::create_dir_all(root)?;
    if !archive {
        let dir = root.join(layout.folder);
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes)?;
        }
        return Ok(());
    }
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(
            &mut header,
            format!("{}/{name}", layout.folder),
            bytes.as_slice(),
        )?;
    }
    std::fs::write(root.join(layout.archive), tar.into_inner()?.finish()?)
}

/// Image `i` of a folder or WebDataset fixture: `side` x `side` RGB with [`pixel_value`]'s
/// pattern, encoded as PNG (lossless) or, when `jpeg`, as JPEG at quality 90.
pub fn encoded_image(i: usize, side: u32, jpeg: bool) -> Vec<u8> {
    let img = image::RgbImage::from_fn(side, side, |x, y| {
        image::Rgb([0, 1, 2].map(|c| pixel_value(i, c, y as usize, x as usize)))
    });
    let mut out = std::io::Cursor::new(Vec::new());
    if jpeg {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
        img.write_with_encoder(encoder).expect("JPEG in memory");
    } else {
        img.write_to(&mut out, image::ImageFormat::Png)
            .expect("PNG in memory");
    }
    out.into_inner()
}

/// Counts of a folder or WebDataset fixture: labeled train and test images (classes by
/// [`label_of`], `classes` of them) and unlabeled ones; images of `side` pixels, every
/// `jpeg_every`-th one a JPEG (0: all PNG).
#[derive(Debug, Clone, Copy)]
pub struct EncodedFixture {
    pub train: usize,
    pub unlabeled: usize,
    pub test: usize,
    pub classes: usize,
    pub side: u32,
    pub jpeg_every: usize,
}

impl EncodedFixture {
    /// Image numbers, labels and extensions of a split: train from 0, test from 1000,
    /// unlabeled from 2000 (as [`write_stl10`] numbers them).
    fn split(&self, name: &str) -> Vec<(usize, Option<usize>, bool)> {
        let (first, n, labeled) = match name {
            "train" => (0, self.train, true),
            "test" => (1000, self.test, true),
            _ => (2000, self.unlabeled, false),
        };
        (first..first + n)
            .map(|i| {
                let jpeg = self.jpeg_every > 0 && i % self.jpeg_every == 0;
                (i, labeled.then_some(i % self.classes), jpeg)
            })
            .collect()
    }

    fn ext(jpeg: bool) -> &'static str {
        if jpeg { "jpg" } else { "png" }
    }

    /// `root/train/class_K/NNNNN.png|jpg`, `root/unlabeled/NNNNN.*`, `root/test/class_K/*`.
    pub fn write_folder(&self, root: &Path) -> std::io::Result<()> {
        for name in ["train", "unlabeled", "test"] {
            for (i, label, jpeg) in self.split(name) {
                let dir = match label {
                    Some(l) => root.join(name).join(format!("class_{l}")),
                    None => root.join(name),
                };
                std::fs::create_dir_all(&dir)?;
                let file = dir.join(format!("{i:05}.{}", Self::ext(jpeg)));
                std::fs::write(file, encoded_image(i, self.side, jpeg))?;
            }
        }
        Ok(())
    }

    /// `root/{train,unlabeled,test}/shard-NNNN.tar`, `per_shard` samples each (`KEY.png|jpg`
    /// and, labeled, `KEY.cls`), and `root/classes.txt` naming `class_K`.
    pub fn write_webdataset(&self, root: &Path, per_shard: usize) -> std::io::Result<()> {
        for name in ["train", "unlabeled", "test"] {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir)?;
            for (s, samples) in self.split(name).chunks(per_shard.max(1)).enumerate() {
                let file = std::fs::File::create(dir.join(format!("shard-{s:04}.tar")))?;
                let mut tar = tar::Builder::new(file);
                for &(i, label, jpeg) in samples {
                    let key = format!("sample{i:05}");
                    let mut add = |member: String, bytes: &[u8]| {
                        let mut header = tar::Header::new_gnu();
                        header.set_size(bytes.len() as u64);
                        header.set_mode(0o644);
                        header.set_cksum();
                        tar.append_data(&mut header, member, bytes)
                    };
                    add(
                        format!("{key}.{}", Self::ext(jpeg)),
                        &encoded_image(i, self.side, jpeg),
                    )?;
                    if let Some(l) = label {
                        add(format!("{key}.cls"), format!("{l}\n").as_bytes())?;
                    }
                }
                tar.finish()?;
            }
        }
        let names: Vec<String> = (0..self.classes).map(|c| format!("class_{c}")).collect();
        std::fs::write(root.join("classes.txt"), names.join("\n") + "\n")
    }
}
