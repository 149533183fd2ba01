//! Images in memory or on disk: [`ImageStore`] (uint8 bytes owned, memory-mapped, in packed
//! `.npy` shards, or encoded files decoded when asked for), [`Split`] (a store with labels) and
//! [`Dataset`] (train, unlabeled and test splits).

use std::borrow::Cow;
use std::sync::Arc;

use memmap2::Mmap;
use rayon::prelude::*;
use tch::{Kind, Tensor};

use crate::encoded::Encoded;
use crate::error::Result;
use crate::packed::Shards;

/// How one image's bytes are laid out in an [`ImageStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Channel planes, each row-major: `[C][H][W]`.
    Chw,
    /// Channel planes, each column-major: `[C][W][H]` (STL-10's binary files).
    Cwh,
    /// Interleaved rows: `[H][W][C]` (packed shards, numpy's image order).
    Hwc,
}

enum Pixels {
    Owned(Vec<u8>),
    Mapped { map: Mmap, offset: usize },
    Shards(Shards),
    Encoded(Encoded),
}

/// Images gathered in parallel above this many (a rayon task each below is not worth it).
const PARALLEL_GATHER: usize = 64;

/// A run of square 3-channel uint8 images: owned, memory-mapped, in memory-mapped `.npy`
/// shards, or encoded files (JPEG, PNG; in folders or tar shards) decoded when gathered.
pub struct ImageStore {
    pixels: Pixels,
    len: usize,
    size: usize,
    layout: Layout,
    origin: Option<String>,
}

pub(crate) const CHANNELS: usize = 3;

impl ImageStore {
    /// `bytes` holds `len` images of `3 * size * size` bytes each, `[C][H][W]`.
    pub fn from_chw(bytes: Vec<u8>, size: usize) -> Self {
        let len = bytes.len() / (CHANNELS * size * size);
        debug_assert_eq!(bytes.len(), len * CHANNELS * size * size);
        ImageStore {
            pixels: Pixels::Owned(bytes),
            len,
            size,
            layout: Layout::Chw,
            origin: None,
        }
    }

    /// This store, its images named `ORIGIN#INDEX` where they have no file of their own
    /// (binary sources: the file or folder they were read from).
    pub(crate) fn with_origin(mut self, origin: impl std::fmt::Display) -> Self {
        self.origin = Some(origin.to_string());
        self
    }

    /// A memory map whose bytes from `offset` on are whole images in `layout`.
    pub(crate) fn mapped(map: Mmap, offset: usize, size: usize, layout: Layout) -> Self {
        let len = (map.len() - offset) / (CHANNELS * size * size);
        ImageStore {
            pixels: Pixels::Mapped { map, offset },
            len,
            size,
            layout,
            origin: None,
        }
    }

    /// Packed shards, `[n, H, W, 3]` each.
    pub(crate) fn sharded(shards: Shards, size: usize) -> Self {
        ImageStore {
            len: shards.len(),
            pixels: Pixels::Shards(shards),
            size,
            layout: Layout::Hwc,
            origin: None,
        }
    }

    /// Encoded images, decoded to `size` x `size` planar RGB when gathered.
    pub(crate) fn encoded(images: Encoded, size: usize) -> Self {
        ImageStore {
            len: images.len(),
            pixels: Pixels::Encoded(images),
            size,
            layout: Layout::Chw,
            origin: None,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Side of the square images.
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Whether gathering decodes (files streamed from disk) rather than copies bytes.
    pub fn decodes(&self) -> bool {
        matches!(self.pixels, Pixels::Encoded(_))
    }

    fn image_bytes(&self) -> usize {
        CHANNELS * self.size * self.size
    }

    /// The bytes of image `i`, in this store's layout: borrowed where they are in memory or
    /// mapped, decoded where the store holds encoded files (an error names the file).
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn raw(&self, i: usize) -> Result<Cow<'_, [u8]>> {
        let n = self.image_bytes();
        Ok(match &self.pixels {
            Pixels::Owned(v) => Cow::Borrowed(&v[i * n..(i + 1) * n]),
            Pixels::Mapped { map, offset } => {
                Cow::Borrowed(&map[offset + i * n..offset + (i + 1) * n])
            }
            Pixels::Shards(s) => Cow::Borrowed(s.image(i, n)),
            Pixels::Encoded(e) => Cow::Owned(e.decode(i, self.size)?),
        })
    }

    /// Copies the images at `indices` into one uint8 tensor `[N, 3, H, W]` on the CPU,
    /// gathering (or decoding) large batches on all of rayon's threads.
    ///
    /// # Panics
    /// If an index is out of range (the batchers only hand out valid indices).
    pub fn gather(&self, indices: &[usize]) -> Result<Tensor> {
        let n = self.image_bytes();
        let mut buf = vec![0u8; indices.len() * n];
        let copy = |(out, &i): (&mut [u8], &usize)| -> Result<()> {
            to_chw(&self.raw(i)?, out, self.layout, self.size);
            Ok(())
        };
        if indices.len() >= PARALLEL_GATHER || self.decodes() {
            buf.par_chunks_mut(n.max(1))
                .zip(indices.par_iter())
                .try_for_each(copy)?;
        } else {
            buf.chunks_mut(n.max(1)).zip(indices).try_for_each(copy)?;
        }
        let (s, k) = (self.size as i64, indices.len() as i64);
        Ok(Tensor::from_slice(&buf).view([k, CHANNELS as i64, s, s]))
    }

    /// Image `i` as interleaved RGB rows (`[H][W][C]`), for encoders such as PNG and for
    /// packed shards.
    pub fn rgb(&self, i: usize) -> Result<Vec<u8>> {
        let raw = self.raw(i)?;
        let s = self.size;
        let plane = s * s;
        if self.layout == Layout::Hwc {
            return Ok(raw.into_owned());
        }
        let mut out = Vec::with_capacity(self.image_bytes());
        for row in 0..s {
            for col in 0..s {
                let within = match self.layout {
                    Layout::Cwh => col * s + row,
                    _ => row * s + col,
                };
                for c in 0..CHANNELS {
                    out.push(raw[c * plane + within]);
                }
            }
        }
        Ok(out)
    }

    /// Where image `i` came from: its file, `shard.tar:member`, `ORIGIN#INDEX` for binary
    /// sources, or `#INDEX` where the store was made in memory.
    pub fn source(&self, i: usize) -> String {
        match &self.pixels {
            Pixels::Encoded(e) => e.source(i),
            Pixels::Shards(s) => s.source(i),
            _ => format!("{}#{i}", self.origin.as_deref().unwrap_or("")),
        }
    }
}

/// One image's bytes in `layout` written to `out` as `[C][H][W]` (in plain loops: gathering
/// runs beside the step, whose threads libtorch's own copy kernels would compete with).
fn to_chw(raw: &[u8], out: &mut [u8], layout: Layout, size: usize) {
    let plane = size * size;
    match layout {
        Layout::Chw => out.copy_from_slice(raw),
        Layout::Cwh => {
            for c in 0..CHANNELS {
                let (from, to) = (&raw[c * plane..][..plane], &mut out[c * plane..][..plane]);
                for col in 0..size {
                    for row in 0..size {
                        to[row * size + col] = from[col * size + row];
                    }
                }
            }
        }
        Layout::Hwc => {
            for (i, px) in raw.chunks_exact(CHANNELS).enumerate() {
                for (c, &v) in px.iter().enumerate() {
                    out[c * plane + i] = v;
                }
            }
        }
    }
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("len", &self.len)
            .field("size", &self.size)
            .field("layout", &self.layout)
            .field("decodes", &self.decodes())
            .finish()
    }
}

/// One split of a data set: a view (all images, or a subset) of a store, with or without labels.
#[derive(Debug, Clone)]
pub struct Split {
    store: Arc<ImageStore>,
    indices: Option<Arc<Vec<usize>>>,
    labels: Option<Arc<Vec<i64>>>,
}

impl Split {
    /// Every image of `store`; `labels`, when given, holds one label per image.
    pub fn new(store: Arc<ImageStore>, labels: Option<Vec<i64>>) -> Self {
        debug_assert!(labels.as_ref().is_none_or(|l| l.len() == store.len()));
        Split {
            store,
            indices: None,
            labels: labels.map(Arc::new),
        }
    }

    /// An empty split of `size`x`size` images.
    pub fn empty(size: usize) -> Self {
        Split::new(
            Arc::new(ImageStore::from_chw(Vec::new(), size)),
            Some(Vec::new()),
        )
    }

    /// The images at `indices` of `store`, with `labels` (one per index) or none.
    pub fn subset(store: Arc<ImageStore>, indices: Vec<usize>, labels: Option<Vec<i64>>) -> Self {
        debug_assert!(indices.iter().all(|&i| i < store.len()));
        debug_assert!(labels.as_ref().is_none_or(|l| l.len() == indices.len()));
        Split {
            store,
            indices: Some(Arc::new(indices)),
            labels: labels.map(Arc::new),
        }
    }

    pub fn len(&self) -> usize {
        self.indices.as_ref().map_or(self.store.len(), |i| i.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn image_size(&self) -> usize {
        self.store.size()
    }

    /// Labels `0..classes`, one per image; `None` for an unlabeled split.
    pub fn labels(&self) -> Option<&[i64]> {
        self.labels.as_deref().map(Vec::as_slice)
    }

    /// Index into the store of this split's image `i`.
    pub fn store_index(&self, i: usize) -> usize {
        self.indices.as_ref().map_or(i, |idx| idx[i])
    }

    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    pub(crate) fn store_arc(&self) -> Arc<ImageStore> {
        Arc::clone(&self.store)
    }

    /// The images at split positions `positions` (in that order, repeats allowed) as a split
    /// of their own, with their labels when this split has them.
    pub fn select(&self, positions: &[usize]) -> Split {
        let indices = positions.iter().map(|&p| self.store_index(p)).collect();
        let labels = self
            .labels()
            .map(|l| positions.iter().map(|&p| l[p]).collect());
        Split::subset(self.store_arc(), indices, labels)
    }

    /// uint8 `[N, 3, H, W]` images at split positions `positions`; an error only where the
    /// store decodes files and one cannot be read (it names the file).
    pub fn images(&self, positions: &[usize]) -> Result<Tensor> {
        let idx: Vec<usize> = positions.iter().map(|&p| self.store_index(p)).collect();
        self.store.gather(&idx)
    }

    /// int64 `[N]` labels at split positions `positions` (empty tensor if unlabeled).
    pub fn label_tensor(&self, positions: &[usize]) -> Tensor {
        match self.labels() {
            Some(l) => {
                let v: Vec<i64> = positions.iter().map(|&p| l[p]).collect();
                Tensor::from_slice(&v)
            }
            None => Tensor::zeros([0], (Kind::Int64, tch::Device::Cpu)),
        }
    }

    /// Mean and standard deviation of each channel (R, G, B) over every pixel of the split, on
    /// the 0..1 scale the augmenter's rescaling gives (what a `Normalize` transform takes);
    /// `None` for an empty split. Summed in float64, 1,024 images at a time.
    pub fn channel_stats(&self) -> Result<Option<[(f64, f64); 3]>> {
        if self.is_empty() {
            return Ok(None);
        }
        let (mut sum, mut sq) = ([0f64; 3], [0f64; 3]);
        let positions: Vec<usize> = (0..self.len()).collect();
        for chunk in positions.chunks(1024) {
            let x = self.images(chunk)?.to_kind(Kind::Double) / 255.0;
            let s = Vec::<f64>::try_from(x.sum_dim_intlist(&[0i64, 2, 3][..], false, Kind::Double))
                .expect("three channel sums");
            let q = Vec::<f64>::try_from((&x * &x).sum_dim_intlist(
                &[0i64, 2, 3][..],
                false,
                Kind::Double,
            ))
            .expect("three channel sums");
            for c in 0..3 {
                sum[c] += s[c];
                sq[c] += q[c];
            }
        }
        let n = (self.len() * self.image_size() * self.image_size()) as f64;
        Ok(Some([0, 1, 2].map(|c| {
            let mean = sum[c] / n;
            (mean, (sq[c] / n - mean * mean).max(0.0).sqrt())
        })))
    }

    /// How many images carry each label `0..classes`.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &l in self.labels().unwrap_or(&[]) {
            counts[l as usize] += 1;
        }
        counts
    }
}

/// A data set as every reader hands it over: three splits and the class names.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub train: Split,
    pub unlabeled: Split,
    pub test: Split,
    pub class_names: Vec<String>,
    pub image_size: usize,
    /// Images that could not be decoded and were skipped (`skip_unreadable`).
    pub skipped: usize,
}

impl Dataset {
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The names [`Dataset::split`] knows.
    pub const SPLITS: [&'static str; 3] = ["train", "unlabeled", "test"];

    /// The split called `name` (one of [`Dataset::SPLITS`]).
    pub fn split(&self, name: &str) -> Option<&Split> {
        match name {
            "train" => Some(&self.train),
            "unlabeled" => Some(&self.unlabeled),
            "test" => Some(&self.test),
            _ => None,
        }
    }
}
