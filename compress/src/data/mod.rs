//! What students learn from and are measured on: labelled text corpora, text rendered onto
//! photos, augmentation and the thesaurus it draws on.

pub mod augment;
pub mod corpus;
pub mod render_text;
pub mod thesaurus;

use std::path::PathBuf;

use crate::FileError;

/// The image file extensions the passes read.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

/// The files of `paths`: a file as given, a directory as its files whose extension (in any case)
/// is one of `extensions`, in name order; a path that does not exist is an error.
pub fn files(paths: &[PathBuf], extensions: &[&str]) -> Result<Vec<PathBuf>, FileError> {
    let mut out = Vec::new();
    for path in paths {
        if !path.exists() {
            return Err(FileError::new(path, "no such file or directory"));
        }
        if !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        let mut listed: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| FileError::new(path, format!("cannot list: {e}")))?
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|f| {
                f.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| extensions.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        listed.sort();
        out.extend(listed);
    }
    Ok(out)
}
