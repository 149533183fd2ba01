//! Event files written, read back, and pruned as a resumed run needs.

use std::path::Path;

use tensorboard::proto::{Kind, What};
use tensorboard::{EventWriter, FILE_VERSION, event_files, read_events};

/// Every (tag, step, value) of the folder's files, in order; images and text as their sizes.
fn values(dir: &Path) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    for file in event_files(dir).unwrap() {
        let events = read_events(&file).unwrap();
        assert_eq!(events[0].what, Some(What::FileVersion(FILE_VERSION.into())));
        for e in events {
            let Some(What::Summary(s)) = e.what else {
                continue;
            };
            for v in s.value {
                let shown = match v.kind.unwrap() {
                    Kind::SimpleValue(x) => format!("{x}"),
                    Kind::Image(i) => format!("{}x{}/{}", i.width, i.height, i.colorspace),
                    Kind::Tensor(t) => String::from_utf8(t.string_val[0].clone()).unwrap(),
                };
                out.push((v.tag, e.step, shown));
            }
        }
    }
    out
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::RgbaImage::new(w, h)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

fn row(tag: &str, step: i64, v: &str) -> (String, i64, String) {
    (tag.into(), step, v.into())
}

#[test]
fn values_round_trip_and_a_resumed_writer_drops_what_came_after_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run");
    let mut w = EventWriter::open(&log, |_, _| true).unwrap();
    w.text("config", 0, "    lr = 0.001").unwrap();
    w.image("augmentations", 0, &png(5, 4)).unwrap();
    for step in 1..=4 {
        w.scalar("step/loss", step, 1.0 / step as f64).unwrap();
    }
    w.scalar("epoch/acc", 1, 0.5).unwrap();
    w.scalar("epoch/acc", 1, 0.9).unwrap(); // the same tag and step: not written again
    assert!(w.image("bad", 0, b"not a png").is_err());
    w.flush().unwrap();
    let first = vec![
        row("config", 0, "    lr = 0.001"),
        row("augmentations", 0, "5x4/4"),
        row("step/loss", 1, "1"),
        row("step/loss", 2, "0.5"),
        row("step/loss", 3, "0.33333334"),
        row("step/loss", 4, "0.25"),
        row("epoch/acc", 1, "0.5"),
    ];
    assert_eq!(values(&log), first);
    drop(w);

    // Resumed after step 2: later steps and epochs go; the config and the grid stay, and are
    // not written twice.
    let mut w = EventWriter::open(&log, |tag, step| {
        !tag.starts_with("step/") && !tag.starts_with("epoch/")
            || step <= 2 && tag.starts_with("step/")
    })
    .unwrap();
    w.text("config", 0, "    lr = 0.001").unwrap();
    for step in 3..=4 {
        w.scalar("step/loss", step, 2.0).unwrap();
    }
    w.scalar("epoch/acc", 1, 0.75).unwrap();
    w.flush().unwrap();
    assert_eq!(
        event_files(&log).unwrap().len(),
        2,
        "a new file for the new session"
    );
    let mut want = first[..4].to_vec();
    want.extend([
        row("step/loss", 3, "2"),
        row("step/loss", 4, "2"),
        row("epoch/acc", 1, "0.75"),
    ]);
    assert_eq!(values(&log), want);
}

#[test]
fn a_record_cut_short_is_dropped_on_resume_and_a_damaged_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = EventWriter::open(dir.path(), |_, _| true).unwrap();
    w.scalar("a", 1, 1.0).unwrap();
    w.scalar("a", 2, 2.0).unwrap();
    w.flush().unwrap();
    let file = w.path().to_path_buf();
    drop(w);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 5]).unwrap();
    assert_eq!(values(dir.path()), vec![row("a", 1, "1")]);
    let w = EventWriter::open(dir.path(), |_, _| true).unwrap();
    drop(w);
    let rewritten = std::fs::read(&file).unwrap();
    assert!(
        rewritten.len() < bytes.len() - 5,
        "the cut record is gone from the file"
    );
    assert_eq!(values(dir.path()), vec![row("a", 1, "1")]);

    let mut damaged = rewritten.clone();
    let last = damaged.len() - 6;
    damaged[last] ^= 0x40;
    std::fs::write(&file, &damaged).unwrap();
    let err = read_events(&file).unwrap_err().to_string();
    assert!(
        err.contains(&file.display().to_string()) && err.contains("checksum"),
        "{err}"
    );
    // A writer opened there keeps what comes before the damage: here, nothing (the file goes).
    drop(EventWriter::open(dir.path(), |_, _| true).unwrap());
    assert!(!file.exists());
}

#[test]
fn files_sort_in_the_order_they_were_written_and_emptied_ones_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for i in 0..12 {
        let mut w = EventWriter::open(dir.path(), |_, _| true).unwrap();
        w.scalar("a", i, i as f64).unwrap();
        w.flush().unwrap();
        names.push(w.path().to_path_buf());
    }
    assert_eq!(
        event_files(dir.path()).unwrap(),
        names,
        "name order is writing order"
    );
    let steps: Vec<i64> = values(dir.path()).iter().map(|v| v.1).collect();
    assert_eq!(steps, (0..12).collect::<Vec<_>>());
    // Dropping every value of the first six files removes them.
    drop(EventWriter::open(dir.path(), |_, step| step >= 6).unwrap());
    let left = event_files(dir.path()).unwrap();
    assert_eq!(left.len(), 7, "six files and the new one");
    assert_eq!(left[..6], names[6..]);
}

#[test]
fn a_kept_event_keeps_fields_this_crate_does_not_know() {
    use prost::Message;
    use tensorboard::proto::{Event, Summary, Value};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.out.tfevents.0000000001.other.1.0");
    let event = |tag: &str, step| Event {
        wall_time: 1.0,
        step,
        what: Some(What::Summary(Summary {
            value: vec![Value {
                tag: tag.into(),
                metadata: None,
                kind: Some(Kind::SimpleValue(1.0)),
            }],
        })),
    };
    // Field 99 (a varint) is unknown to `Event` here, as a histogram or a graph would be.
    let mut known = event("a", 1).encode_to_vec();
    known.extend([0x98, 0x06, 0x07]);
    let mut file = Vec::new();
    for data in [known, event("b", 2).encode_to_vec()] {
        let len = (data.len() as u64).to_le_bytes();
        file.extend(len);
        file.extend(masked(&len));
        file.extend(&data);
        file.extend(masked(&data));
    }
    std::fs::write(&path, &file).unwrap();
    drop(EventWriter::open(dir.path(), |_, _| true).unwrap());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        file,
        "nothing dropped: untouched"
    );
    drop(EventWriter::open(dir.path(), |tag, _| tag == "a").unwrap());
    let left = std::fs::read(&path).unwrap();
    assert!(
        left.windows(3).any(|w| w == [0x98, 0x06, 0x07]),
        "the kept event's unknown field stays"
    );
    let events = read_events(&path).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].step, 1);
}

/// TensorFlow's masked CRC-32C, as bytes (computed here bit by bit, independently of the crate).
fn masked(data: &[u8]) -> [u8; 4] {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    (!crc)
        .rotate_right(15)
        .wrapping_add(0xa282_ead8)
        .to_le_bytes()
}
