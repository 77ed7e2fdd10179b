//! Paths into the model cache filled by `models/fetch.py`, shared by the compress tests.

use std::path::PathBuf;

/// A file in the model cache (`$EDGEMASS_MODEL_CACHE` or `models/cache`); fails the test with the
/// command to run when it is missing.
pub fn cached(path: &str) -> PathBuf {
    let cache = std::env::var_os("EDGEMASS_MODEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/cache"));
    let file = cache.join(path);
    assert!(
        file.exists(),
        "{} missing: run `python3 models/fetch.py` first",
        file.display()
    );
    file
}
