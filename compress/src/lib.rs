//! edgemass-compress: reads ONNX teachers and BERT-family checkpoints, and (as passes land)
//! prunes, distills and quantizes them into students for edgemass.

#![deny(missing_docs)]

/// `impl Default` for a settings struct whose flags all have defaults: the flags' defaults are
/// the struct's (see [`flag_defaults`]).
macro_rules! default_from_flags {
    ($settings:ty) => {
        impl Default for $settings {
            fn default() -> $settings {
                $crate::flag_defaults()
            }
        }
    };
}

pub mod bert;
pub mod data;
pub mod eval;
pub mod onnx;
pub mod package;
pub mod passes;
pub mod recipe;
pub mod train;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Writes `bytes` to a temporary file beside `path` and renames it into place, so a reader never
/// sees a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let mut file = tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new(".")))?;
    file.write_all(bytes)?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A progress bar on stderr labelled `label`, or a hidden one when `enabled` is false.
pub fn progress_bar(enabled: bool, len: u64, label: &str) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
            .expect("template is valid")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}

/// A settings struct with every field at its default. A pass declares its settings once, as a
/// struct that is both the recipe's TOML table (`#[serde(default)]`) and the command's flags
/// (`#[arg(default_value_t = …)]`); its `Default` comes from here, so the flags' defaults are
/// the only ones written down.
pub fn flag_defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults"));
    T::from_arg_matches(&command.get_matches_from(["defaults"])).expect("every flag has a default")
}

/// A file that could not be read or written, and why: the file error every pass reports.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

impl FileError {
    /// `path` could not be used because of `reason`.
    pub fn new(path: &Path, reason: impl std::fmt::Display) -> FileError {
        FileError {
            path: path.to_owned(),
            reason: reason.to_string(),
        }
    }
}
