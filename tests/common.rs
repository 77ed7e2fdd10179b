//! Paths to the repository's manifests, the model cache and photos, and manifest variants.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The model cache filled by `models/fetch.py`; fails with what to run when it is empty.
pub fn cache() -> PathBuf {
    let cache = std::env::var_os("EDGEMASS_MODEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models/cache"));
    assert!(
        cache.join("photos/bus.jpg").is_file(),
        "model cache {} is empty: run `python3 models/fetch.py` first",
        cache.display()
    );
    cache
}

/// A shipped manifest, `models/NAME.model.toml`.
pub fn manifest(name: &str) -> PathBuf {
    root().join("models").join(format!("{name}.model.toml"))
}

/// A sample photo from the cache.
pub fn photo(name: &str) -> PathBuf {
    cache().join("photos").join(name)
}

/// Writes a copy of manifest `name` into `dir` with `{cache}` resolved and `edit` applied.
pub fn manifest_variant(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(manifest(name)).unwrap();
    let text = text.replace("{cache}", &cache().display().to_string());
    let path = dir.join(format!("{name}.model.toml"));
    std::fs::write(&path, edit(text)).unwrap();
    path
}
