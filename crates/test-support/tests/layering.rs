//! The workspace's layering, read from every crate's `Cargo.toml`: a crate's dependencies point
//! only to lower layers, and the dev-only `test-support` is never a normal dependency (so
//! nothing of it reaches the shipped binary).

use std::collections::BTreeMap;
use std::path::Path;

/// Each crate of ours and its layer, lowest first.
const LAYERS: &[&[&str]] = &[
    &["torch-link", "seeds", "tensorboard"],
    &["accel", "dist"],
    &["stl10-data", "augment", "models", "losses", "optim"],
    &["train"],
    &["report"],
    &["evaluate"],
    &["cli"],
];

fn layer(name: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&name))
}

/// Our crates among the keys of `table` (a `[dependencies]`-like table).
fn ours(table: Option<&toml::Value>) -> Vec<String> {
    let Some(t) = table.and_then(|v| v.as_table()) else {
        return Vec::new();
    };
    t.keys()
        .filter(|k| layer(k).is_some() || k.as_str() == "test-support")
        .cloned()
        .collect()
}

fn manifests() -> BTreeMap<String, toml::Table> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(crates).unwrap() {
        let path = entry.unwrap().path().join("Cargo.toml");
        if path.is_file() {
            let table: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
            let name = table["package"]["name"].as_str().unwrap().to_string();
            out.insert(name, table);
        }
    }
    out
}

#[test]
fn dependencies_point_down_and_test_support_stays_a_dev_dependency() {
    let manifests = manifests();
    let mut problems = Vec::new();
    for (name, table) in &manifests {
        if name == "test-support" {
            continue;
        }
        let Some(own) = layer(name) else {
            problems.push(format!("{name} is in no layer of this test"));
            continue;
        };
        for kind in ["dependencies", "build-dependencies"] {
            for dep in ours(table.get(kind)) {
                match layer(&dep) {
                    Some(l) if l < own => {}
                    _ => problems.push(format!("{name} [{kind}] {dep}: not a lower layer")),
                }
            }
        }
        for dep in ours(table.get("dev-dependencies")) {
            if dep != "test-support" && dep != *name && layer(&dep).is_none_or(|l| l > own) {
                problems.push(format!("{name} [dev-dependencies] {dep}: a higher layer"));
            }
        }
    }
    // test-support itself sits on the data layer (and, for the fuzz targets, train).
    let support = &manifests["test-support"];
    for dep in ours(support.get("dependencies")) {
        if !matches!(dep.as_str(), "stl10-data" | "train" | "torch-link") {
            problems.push(format!("test-support [dependencies] {dep}"));
        }
    }
    let layered: usize = LAYERS.iter().map(|l| l.len()).sum();
    assert_eq!(
        manifests.len(),
        layered + 1,
        "every crate and test-support read"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_layer_check_catches_an_upward_dependency() {
    let table: toml::Table = "[package]\nname = \"train\"\n[dependencies]\nreport = \"*\"\n"
        .parse()
        .unwrap();
    let deps = ours(table.get("dependencies"));
    assert_eq!(deps, ["report"]);
    assert!(layer("report") > layer("train"));
}
