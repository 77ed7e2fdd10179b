//! What the release packages ship. Cargo.toml's `[package.metadata.release]` lists the model
//! manifests; the .deb's assets name exactly those (cross/build.sh's tarballs copy the same list,
//! and cross/check.sh checks both built packages); each carries a licence on the list, or a
//! stated exception; and every model a shipped profile or the packaged config names is among
//! them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use edgemass::config::Config;

use crate::common::root;

/// `[package.metadata.release]`: the shipped manifests by name, the licences a shipped model may
/// carry, and the exceptions with their reasons.
struct Release {
    models: BTreeSet<String>,
    licenses: Vec<String>,
    exceptions: BTreeMap<String, String>,
}

fn cargo_toml() -> toml::Table {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    text.parse().unwrap()
}

fn release() -> Release {
    let cargo = cargo_toml();
    let table = &cargo["package"]["metadata"]["release"];
    let strings = |key: &str| -> Vec<String> {
        table[key]
            .as_array()
            .unwrap_or_else(|| panic!("release.{key} is not a list"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    Release {
        models: strings("models").into_iter().collect(),
        licenses: strings("model-licenses"),
        exceptions: table
            .get("model-exceptions")
            .and_then(toml::Value::as_table)
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The `provenance.license` of `models/NAME.model.toml`.
fn license(name: &str) -> String {
    let path = root().join(format!("models/{name}.model.toml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let manifest: toml::Table = text.parse().unwrap();
    manifest
        .get("provenance")
        .and_then(|p| p.get("license"))
        .and_then(toml::Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Why model `name` with licence `license` may not ship, or `None` when it may.
fn refusal(release: &Release, name: &str, license: &str) -> Option<String> {
    if release.licenses.iter().any(|allowed| allowed == license) {
        return None;
    }
    match release.exceptions.get(name) {
        Some(reason) if !reason.trim().is_empty() => None,
        _ => Some(format!(
            "{name}: licence `{license}` is not one of {:?} and the model is not an exception",
            release.licenses
        )),
    }
}

/// The manifest file name (`NAME.model.toml`) a path names, as `NAME`.
fn model_name(path: &Path) -> String {
    let file = path.file_name().unwrap().to_string_lossy();
    file.strip_suffix(".model.toml")
        .unwrap_or_else(|| panic!("{} is not a model manifest", path.display()))
        .to_owned()
}

#[test]
fn the_deb_ships_exactly_the_release_models() {
    let cargo = cargo_toml();
    let assets = cargo["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap();
    let mut shipped = BTreeSet::new();
    for asset in assets {
        let source = asset[0].as_str().unwrap();
        if source.starts_with("models/") && source.ends_with(".model.toml") {
            assert!(
                !source.contains('*'),
                "{source}: a glob would ship every manifest, the test model's too"
            );
            shipped.insert(model_name(Path::new(source)));
        }
    }
    assert_eq!(shipped, release().models);
}

#[test]
fn every_shipped_model_carries_a_licence_on_the_list() {
    let release = release();
    assert!(release.models.len() >= 4, "{:?}", release.models);
    let refused: Vec<String> = release
        .models
        .iter()
        .filter_map(|name| refusal(&release, name, &license(name)))
        .collect();
    assert!(refused.is_empty(), "{}", refused.join("\n"));
    for name in release.exceptions.keys() {
        assert!(
            release.models.contains(name),
            "model-exceptions names {name}, which the release does not ship"
        );
    }
}

#[test]
fn the_agpl_test_model_would_be_refused() {
    let release = release();
    let license = license("yolov8n-320");
    assert_eq!(license, "AGPL-3.0");
    assert!(refusal(&release, "yolov8n-320", &license).is_some());
    assert!(!release.models.contains("yolov8n-320"));
}

#[test]
fn every_model_a_shipped_config_names_ships() {
    let release = release();
    let mut configs: Vec<(String, Config)> = Vec::new();
    for entry in std::fs::read_dir(root().join("firmware-config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let config = Config::parse(&text, path.parent().unwrap(), &[]).unwrap();
            configs.push((path.display().to_string(), config));
        }
    }
    let packaged = std::fs::read_to_string(root().join("cross/deb/edgemass.toml")).unwrap();
    configs.push((
        "cross/deb/edgemass.toml".to_owned(),
        Config::parse(&packaged, Path::new("/etc/edgemass"), &[]).unwrap(),
    ));
    assert!(configs.len() >= 6);
    for (origin, config) in &configs {
        let models = config
            .cameras
            .iter()
            .map(|c| &c.model)
            .chain(config.text.as_ref().map(|t| &t.model));
        for model in models {
            let name = model_name(model);
            assert!(
                release.models.contains(&name),
                "{origin} names {name}, which the release does not ship"
            );
        }
    }
}
