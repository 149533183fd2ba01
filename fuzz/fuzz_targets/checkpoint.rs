//! Checkpoints as `finetune --encoder`, `evaluate` and `--resume` read them. The first byte
//! picks the file: even, a safetensors file loaded into a small classifier's variables; odd, a
//! phase state (`state/baseline.json`) read and restored into that classifier's train step.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use test_support::fuzzing::Classifier;

struct Target {
    dir: tempfile::TempDir,
    model: std::sync::Mutex<Classifier>,
}

// libFuzzer runs one input at a time; the model is made once.
struct Shared(Target);
// SAFETY: only the fuzzing thread touches the model, behind a mutex.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

fn target() -> &'static Target {
    static T: OnceLock<Shared> = OnceLock::new();
    &T.get_or_init(|| {
        let cfg = train::config::Config::load(
            None,
            &[
                "data.kind=folder".into(),
                "data.image_size=32".into(),
                "model.width=4".into(),
            ],
        )
        .unwrap();
        let cpu = cfg.compute(tch::Device::Cpu);
        let model = Classifier::new(&cfg.supervised_baseline(), 3, cpu).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // A valid tensors file for the state JSON to name.
        model
            .write_state_tensors(&dir.path().join("baseline.e0001.s000000.safetensors"))
            .unwrap();
        Shared(Target {
            dir,
            model: std::sync::Mutex::new(model),
        })
    })
    .0
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let t = target();
    let mut model = t.model.lock().unwrap();
    if which % 2 == 0 {
        let path = t.dir.path().join("fuzz.safetensors");
        std::fs::write(&path, rest).unwrap();
        let _ = model.load_checkpoint(&path);
    } else {
        std::fs::write(t.dir.path().join("baseline.json"), rest).unwrap();
        let _ = model.resume_from(t.dir.path(), "baseline");
    }
});
