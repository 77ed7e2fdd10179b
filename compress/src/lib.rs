//! edgemass-compress: reads ONNX teachers and BERT-family checkpoints, and (as passes land)
//! prunes, distills and quantizes them into students for edgemass.

pub mod augment;
pub mod bert;
pub mod detect_package;
pub mod distill;
pub mod distill_detect;
pub mod dot;
pub mod downscale;
pub mod eval_detect;
pub mod eval_text;
pub mod export_triton;
pub mod graph;
pub mod inspect;
pub mod measure_detect;
pub mod measure_text;
pub use edgemass::model::onnx_build;
pub mod onnx_candle;
pub mod package;
pub mod pareto;
pub mod profile;
pub mod prune_bert;
pub mod prune_conv;
pub mod prune_vocab;
pub mod quantize;
pub mod quantize_detect;
pub mod recipe;
pub mod recipe_detect;
pub mod render_text;
pub mod report_plot;
pub mod text_data;
pub mod text_package;
pub mod thesaurus;
pub mod train_text;
pub mod tune_decoder;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
