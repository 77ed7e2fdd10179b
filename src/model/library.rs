//! Where onnxruntime's shared library is: the path the config names, else
//! `$EDGEMASS_ONNXRUNTIME`, else the model cache's `onnxruntime/ARCH/` (`models/fetch.py --only
//! onnxruntime` puts this machine's there) or that of a cache enclosing it, else the `onnxruntime` package of the python3 on `PATH` (`pip install onnxruntime`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable naming the library file.
pub const LIBRARY_ENV: &str = "EDGEMASS_ONNXRUNTIME";

/// The library file and how it was found, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The `libonnxruntime.so` file.
    pub path: PathBuf,
    /// Where the path came from: `config`, `$EDGEMASS_ONNXRUNTIME`, `model cache`, `python3`.
    pub from: &'static str,
}

/// Why there is no library.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    /// The config or the environment named a file that does not exist.
    #[error("{0}")]
    Named(String),
    /// Nothing was named and none was found where it was looked for.
    #[error("{0}")]
    Nowhere(String),
}

/// Finds the library. A path named in the config or the environment must exist (it is not
/// passed over for another); otherwise the error says where it was looked for.
pub fn locate(configured: Option<&Path>, cache: &Path) -> Result<Found, Missing> {
    let named = configured.map(|p| (p.to_owned(), "config")).or_else(|| {
        std::env::var_os(LIBRARY_ENV)
            .filter(|p| !p.is_empty())
            .map(|p| (PathBuf::from(p), "$EDGEMASS_ONNXRUNTIME"))
    });
    if let Some((path, from)) = named {
        return if path.is_file() {
            Ok(Found { path, from })
        } else {
            Err(Missing::Named(format!(
                "onnxruntime library {} (from {from}) does not exist",
                path.display()
            )))
        };
    }
    let cached = cache.join("onnxruntime").join(std::env::consts::ARCH);
    // A package written inside the cache (`quantize-detect --out models/cache/NAME`) has a cache
    // of its own beside it; the one it sits in is an ancestor.
    let enclosing = cache
        .ancestors()
        .map(|dir| dir.join("onnxruntime").join(std::env::consts::ARCH));
    if let Some(path) = enclosing.filter_map(|dir| library_in(&dir)).next() {
        return Ok(Found {
            path,
            from: "model cache",
        });
    }
    if let Some(path) = python_package().and_then(|dir| library_in(&dir.join("capi"))) {
        return Ok(Found {
            path,
            from: "python3",
        });
    }
    Err(Missing::Nowhere(format!(
        "no onnxruntime library: none named by [inference] onnxruntime or ${LIBRARY_ENV}, none in {} \
         (python3 models/fetch.py --only onnxruntime), and python3 has no onnxruntime package",
        cached.display()
    )))
}

/// The newest `libonnxruntime.so*` file in `dir`.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    found.sort();
    found.pop()
}

/// The directory of python3's `onnxruntime` package, found without importing it.
fn python_package() -> Option<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import importlib.util as u; s = u.find_spec('onnxruntime'); \
             print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')",
        ])
        .output()
        .ok()?;
    let dir = String::from_utf8(output.stdout).ok()?;
    let dir = dir.trim();
    (output.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache holding an (empty) library for this machine; returns it and the library's path.
    fn cache_with_library() -> (tempfile::TempDir, PathBuf) {
        let cache = tempfile::tempdir().unwrap();
        let dir = cache
            .path()
            .join("onnxruntime")
            .join(std::env::consts::ARCH);
        std::fs::create_dir_all(&dir).unwrap();
        let library = dir.join("libonnxruntime.so.1.32.0");
        std::fs::write(&library, b"").unwrap();
        (cache, library)
    }

    #[test]
    fn a_named_library_that_does_not_exist_is_named_not_passed_over() {
        let (cache, library) = cache_with_library();
        assert_eq!(locate(None, cache.path()).unwrap().path, library);
        let err = locate(Some(Path::new("/nowhere/libonnxruntime.so")), cache.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "onnxruntime library /nowhere/libonnxruntime.so (from config) does not exist"
        );
        assert!(matches!(err, Missing::Named(_)));
    }

    #[test]
    fn a_package_inside_the_cache_finds_the_caches_library() {
        let (cache, library) = cache_with_library();
        let inside = cache.path().join("ssd-int8").join("cache");
        let found = locate(None, &inside).unwrap();
        assert_eq!((found.path, found.from), (library, "model cache"));
    }

    #[test]
    fn the_newest_library_in_the_cache_is_found() {
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().join("onnxruntime");
        std::fs::create_dir(&dir).unwrap();
        for name in [
            "libonnxruntime.so.1.20.0",
            "libonnxruntime.so.1.32.0",
            "README",
        ] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        assert_eq!(library_in(&dir), Some(dir.join("libonnxruntime.so.1.32.0")));
    }
}
