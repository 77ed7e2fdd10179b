//! Running the onnxruntime helpers of `compress/scripts/` (python3 with onnxruntime and numpy),
//! which both families' measurements use for the onnxruntime columns.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use serde::de::DeserializeOwned;

/// Runs `compress/scripts/SCRIPT` with `args` and reads the JSON it prints; the error says why
/// onnxruntime could not be measured.
pub fn run_script<T: DeserializeOwned>(script: &str, args: &[&OsStr]) -> Result<T, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let output = Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run python3 ({e})"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("no message");
        return Err(format!("{} failed: {last}", script.display()));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("unreadable output of {} ({e})", script.display()))
}
