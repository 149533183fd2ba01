//! A configuration file and `--set` overrides: the input's lines up to the first `\0` are the
//! file, each later line one `--set`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use train::config::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (file, sets) = text.split_once('\0').unwrap_or((&text, ""));
    let sets: Vec<String> = sets.lines().map(String::from).collect();
    if let Ok(cfg) = Config::parse(Some((file, Path::new("fuzz.toml"))), &sets) {
        // What a run folder records must read back as the same configuration.
        let again = Config::parse(Some((&cfg.to_toml(), Path::new("again.toml"))), &[]);
        assert_eq!(again.ok().as_ref(), Some(&cfg));
    }
});
