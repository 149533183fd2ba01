//! Prediction on new image files with a classifier checkpoint (`finetuned` or `baseline`
//! `.safetensors`): each image prepared as the training reader prepares its images, the
//! classifier in inference mode, the top classes with their softmax probabilities.

use std::path::{Path, PathBuf};

use models::Classifier;
use stl10_data::DataKind;
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use models::EncoderConfig;
use stl10_data::DataConfig;
use train::run_dir::CLASSES_FILE;
use train::run_dir::checkpoint;
use train::runtime::Compute;
use train::{error::Result, error::TrainError};

/// Image files decoded and classified together.
pub const FILES_PER_BATCH: usize = 256;

/// A classifier loaded for prediction, with its class names.
pub struct Predictor {
    _vs: nn::VarStore,
    classifier: Classifier,
    pub class_names: Vec<String>,
    compute: Compute,
    kind: DataKind,
    size: usize,
}

/// One image's answer: the top classes, most probable first.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    pub path: PathBuf,
    pub top: Vec<ClassScore>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassScore {
    pub class: String,
    pub probability: f64,
}

/// The number of classes of the classifier in a checkpoint (rows of `classifier.*.weight`),
/// or an error saying what kind of checkpoint it is instead.
fn classes_in(path: &Path) -> Result<i64> {
    let stored = Tensor::read_safetensors(path)
        .map_err(|e| TrainError::file(path, format!("cannot read checkpoint: {e}")))?;
    let weight = stored
        .iter()
        .find(|(n, t)| n.starts_with("classifier.") && t.dim() == 2);
    match weight {
        Some((_, w)) => Ok(w.size()[0]),
        None => {
            let kinds: Vec<&str> = ["encoder", "projection_head", "linear_probe"]
                .into_iter()
                .filter(|p| stored.iter().any(|(n, _)| n.starts_with(&format!("{p}."))))
                .collect();
            Err(TrainError::file(
                path,
                format!(
                    "holds no classifier (classifier.*){}: --checkpoint needs a \
                     finetuned.safetensors or baseline.safetensors",
                    if kinds.is_empty() {
                        String::new()
                    } else {
                        format!(", only {}", kinds.join(", "))
                    }
                ),
            ))
        }
    }
}

/// Class names for a classifier of `classes` outputs: the run folder's `classes.txt` beside the
/// checkpoint, else `data.class_names`, else STL-10's `class_names.txt`, else `0`, `1`, ...
pub fn class_names(checkpoint: &Path, data: &DataConfig, classes: i64) -> Result<Vec<String>> {
    let file = checkpoint
        .parent()
        .unwrap_or(Path::new("."))
        .join(CLASSES_FILE);
    let names: Vec<String> = match std::fs::read_to_string(&file) {
        Ok(text) => text.lines().map(str::to_string).collect(),
        // A run folder from before classes.txt existed.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match &data.class_names {
            Some(n) => n.clone(),
            None => {
                let stl10 = stl10_data::stl10::binary_dir(&data.root).join("class_names.txt");
                match data.kind {
                    DataKind::Stl10 if stl10.is_file() => {
                        stl10_data::stl10::read_class_names(&stl10)?
                    }
                    _ => (0..classes).map(|c| c.to_string()).collect(),
                }
            }
        },
        Err(e) => return Err(TrainError::io(&file, e)),
    };
    if names.len() as i64 != classes {
        return Err(TrainError::file(
            &file,
            format!(
                "names {} classes, the checkpoint's classifier has {classes}",
                names.len()
            ),
        ));
    }
    Ok(names)
}

impl Predictor {
    /// Loads the encoder (of shape `encoder`) and classifier of `path`; images are prepared as
    /// `data`'s reader prepares them.
    pub fn load(
        encoder: &EncoderConfig,
        data: &DataConfig,
        compute: Compute,
        path: &Path,
    ) -> Result<Self> {
        let classes = classes_in(path)?;
        let vs = nn::VarStore::new(compute.device);
        let classifier = {
            let _init = train::steps::init_lock();
            Classifier::new(&vs.root(), encoder, classes)?
        };
        checkpoint::load(&vs, "encoder", path)?;
        checkpoint::load(&vs, "classifier", path)?;
        classifier.encoder.set_memory_format(compute.format);
        Ok(Predictor {
            _vs: vs,
            classifier,
            class_names: class_names(path, data, classes)?,
            compute,
            kind: stl10_data::packed::prepared_as(data),
            size: data.image_size,
        })
    }

    /// The `top` most probable classes of each image file, in the order given; a file that
    /// cannot be read or decoded gives its error in its place. Files are decoded and
    /// classified [`FILES_PER_BATCH`] at a time.
    pub fn predict(&self, files: &[PathBuf], top: usize) -> Vec<Result<Prediction>> {
        files
            .chunks(FILES_PER_BATCH)
            .flat_map(|chunk| self.predict_batch(chunk, top))
            .collect()
    }

    fn predict_batch(&self, files: &[PathBuf], top: usize) -> Vec<Result<Prediction>> {
        let mut out: Vec<Option<Result<Prediction>>> = Vec::with_capacity(files.len());
        let (mut pixels, mut good) = (Vec::new(), Vec::new());
        for (i, f) in files.iter().enumerate() {
            match stl10_data::load_image(f, self.kind, self.size) {
                Ok(p) => {
                    pixels.extend(p);
                    good.push(i);
                    out.push(None);
                }
                Err(e) => out.push(Some(Err(e.into()))),
            }
        }
        if !good.is_empty() {
            let s = self.size as i64;
            let images = Tensor::from_slice(&pixels).view([good.len() as i64, 3, s, s]);
            let k = top.clamp(1, self.class_names.len());
            let probs = train::features::of_images(&self.compute, &images, |x| {
                self.classifier.forward_t(x, false)
            })
            .softmax(1, Kind::Float);
            let (p, idx) = probs.topk(k as i64, 1, true, true);
            let p = Vec::<f32>::try_from(p.to_device(tch::Device::Cpu).flatten(0, -1));
            let idx = Vec::<i64>::try_from(idx.to_device(tch::Device::Cpu).flatten(0, -1));
            for (row, &i) in good.iter().enumerate() {
                let result = match (&p, &idx) {
                    (Ok(p), Ok(idx)) => Ok(Prediction {
                        path: files[i].clone(),
                        top: (0..k)
                            .map(|j| ClassScore {
                                class: self.class_names[idx[row * k + j] as usize].clone(),
                                probability: f64::from(p[row * k + j]),
                            })
                            .collect(),
                    }),
                    (Err(e), _) | (_, Err(e)) => Err(TrainError::file(&files[i], e.to_string())),
                };
                out[i] = Some(result);
            }
        }
        out.into_iter()
            .map(|r| r.expect("every file answered"))
            .collect()
    }
}

/// The image files named by `inputs`: files as given, folders searched (at any depth) for
/// JPEG and PNG files in sorted order. A missing path or a folder without images is an error.
pub fn image_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| TrainError::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["jpg", "jpeg", "png"].contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let before = files.len();
            walk(input, &mut files)?;
            if files.len() == before {
                return Err(TrainError::file(input, "holds no JPEG or PNG images"));
            }
        } else if input.exists() {
            files.push(input.clone());
        } else {
            return Err(TrainError::file(input, "no such file or folder"));
        }
    }
    Ok(files)
}

/// `path,rank,class,probability` rows, one per reported class.
pub fn to_csv(predictions: &[Prediction]) -> String {
    let mut out = String::from("path,rank,class,probability\n");
    for p in predictions {
        for (rank, c) in p.top.iter().enumerate() {
            out.push_str(&format!(
                "{},{},{},{:.6}\n",
                csv_field(&p.path.display().to_string()),
                rank + 1,
                csv_field(&c.class),
                c.probability
            ));
        }
    }
    out
}

/// `s` as a CSV field: quoted when it holds a comma, a quote or a line break.
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `[{"path": ..., "top": [{"class": ..., "probability": ...}]}]`.
pub fn to_json(predictions: &[Prediction]) -> String {
    serde_json::to_string_pretty(predictions).expect("plain values serialize")
}

/// An aligned table: the file, then `class (probability%)` for each reported class.
pub fn to_table(predictions: &[Prediction]) -> String {
    let width = predictions
        .iter()
        .map(|p| p.path.display().to_string().chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let k = predictions.iter().map(|p| p.top.len()).max().unwrap_or(0);
    let mut lines = Vec::with_capacity(predictions.len() + 1);
    let mut head = format!("{:<width$}", "image");
    for r in 1..=k {
        head.push_str(&format!("  {:<24}", format!("top {r}")));
    }
    lines.push(head);
    for p in predictions {
        let mut line = format!("{:<width$}", p.path.display().to_string());
        for c in &p.top {
            line.push_str(&format!(
                "  {:<24}",
                format!("{} ({:.1}%)", c.class, c.probability * 100.0)
            ));
        }
        lines.push(line);
    }
    lines
        .iter()
        .map(|l| l.trim_end().to_string() + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers() -> Vec<Prediction> {
        let score = |class: &str, probability| ClassScore {
            class: class.into(),
            probability,
        };
        vec![
            Prediction {
                path: "a/cat, small.png".into(),
                top: vec![score("cat", 0.75), score("dog \"big\"", 0.25)],
            },
            Prediction {
                path: "b.jpg".into(),
                top: vec![score("dog \"big\"", 0.5), score("cat", 0.125)],
            },
        ]
    }

    #[test]
    fn csv_quotes_fields_and_lists_every_rank() {
        assert_eq!(
            to_csv(&answers()),
            "path,rank,class,probability\n\
             \"a/cat, small.png\",1,cat,0.750000\n\
             \"a/cat, small.png\",2,\"dog \"\"big\"\"\",0.250000\n\
             b.jpg,1,\"dog \"\"big\"\"\",0.500000\n\
             b.jpg,2,cat,0.125000\n"
        );
    }

    #[test]
    fn json_and_table_carry_the_same_answers() {
        let json: serde_json::Value = serde_json::from_str(&to_json(&answers())).unwrap();
        assert_eq!(json[1]["path"], "b.jpg");
        assert_eq!(json[0]["top"][1]["probability"], 0.25);
        let table = to_table(&answers());
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].starts_with("image") && lines[0].contains("top 2"),
            "{table}"
        );
        assert!(
            lines[1].starts_with("a/cat, small.png  cat (75.0%)"),
            "{table}"
        );
        // Columns line up: the first class starts at the same place on every row.
        assert_eq!(lines[2].find("dog"), lines[1].find("cat ("), "{table}");
    }

    #[test]
    fn inputs_expand_folders_and_name_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("x/y");
        std::fs::create_dir_all(&sub).unwrap();
        for f in ["b.PNG", "a.jpg", "notes.txt"] {
            std::fs::write(dir.path().join("x").join(f), b"").unwrap();
        }
        std::fs::write(sub.join("c.jpeg"), b"").unwrap();
        let files = image_files(&[dir.path().join("x")]).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["x/a.jpg", "x/b.PNG", "x/y/c.jpeg"]);
        let e = image_files(&[dir.path().join("gone.png")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("gone.png") && e.contains("no such file"), "{e}");
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        let e = image_files(&[dir.path().join("empty")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds no JPEG or PNG"), "{e}");
    }
}
