//! Which form of a network to run: the float file, or the int8 file a package may carry. tract
//! runs int8 convolutions and matrix products with integer kernels, which beat float only where
//! the CPU has dot-product instructions (`sdot`: Cortex-A76 in the Pi 5, A78AE in the Jetson
//! Orin); on a Pi 4's Cortex-A72 or an x86 CPU the float form is faster.

use serde::Deserialize;

use super::manifest::{Manifest, ManifestError};

/// The form asked for in a config or on the command line, or the form a manifest resolved to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// int8 when the package has it and the CPU has dot-product instructions, else float.
    #[default]
    Auto,
    /// The float file.
    Fp32,
    /// The `[int8]` file; a package without one is an error.
    Int8,
}

impl Precision {
    /// The name used in configs, logs and `--version`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        }
    }

    /// The form to run for a package that has (or lacks) an int8 file on a CPU that has (or
    /// lacks) dot-product instructions; `None` when int8 is asked for and there is none.
    pub fn resolve(self, has_int8: bool, dotprod: bool) -> Option<Precision> {
        match self {
            Precision::Auto if has_int8 && dotprod => Some(Precision::Int8),
            Precision::Auto | Precision::Fp32 => Some(Precision::Fp32),
            Precision::Int8 => has_int8.then_some(Precision::Int8),
        }
    }
}

/// Whether this CPU has the Armv8.2 dot-product instructions tract's fast int8 kernel uses.
pub fn cpu_has_dotprod() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}

impl Manifest {
    /// This manifest with `file` and `sha256` naming the form `precision` resolves to on this
    /// CPU, and `precision` saying which it is.
    pub fn with_precision(self, precision: Precision) -> Result<Manifest, ManifestError> {
        self.with_precision_on(precision, cpu_has_dotprod())
    }

    fn with_precision_on(
        mut self,
        precision: Precision,
        dotprod: bool,
    ) -> Result<Manifest, ManifestError> {
        let resolved = precision
            .resolve(self.int8.is_some(), dotprod)
            .ok_or_else(|| ManifestError::NoInt8 {
                model: self.name.clone(),
            })?;
        if resolved == Precision::Int8 {
            let int8 = self.int8.take().expect("resolve checked the int8 file");
            self.file = int8.file;
            self.sha256 = int8.sha256;
        }
        self.precision = resolved;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const DBNET: &str = r#"
        name = "student"
        task = "detect"
        file = "model.onnx"
        sha256 = "1111111111111111111111111111111111111111111111111111111111111111"
        labels = ["text"]
        [input]
        name = "x"
        layout = "nchw"
        width = 960
        height = 960
        [decoder]
        kind = "dbnet"
        output = "sigmoid_0.tmp_0"
        [int8]
        file = "model.qdq.onnx"
        sha256 = "2222222222222222222222222222222222222222222222222222222222222222"
    "#;

    fn manifest(text: &str) -> Manifest {
        Manifest::parse(text, Path::new("m.toml"), Path::new("/m"), None).unwrap()
    }

    #[test]
    fn auto_takes_int8_only_with_dotprod() {
        let m = manifest(DBNET);
        let on_a76 = m.clone().with_precision_on(Precision::Auto, true).unwrap();
        assert_eq!(on_a76.precision, Precision::Int8);
        assert_eq!(on_a76.file, Path::new("/m/model.qdq.onnx"));
        assert!(on_a76.sha256.starts_with("2222"));
        let on_a72 = m.with_precision_on(Precision::Auto, false).unwrap();
        assert_eq!(on_a72.precision, Precision::Fp32);
        assert_eq!(on_a72.file, Path::new("/m/model.onnx"));
        assert!(on_a72.sha256.starts_with("1111"));
    }

    #[test]
    fn explicit_forms_ignore_the_cpu() {
        let m = manifest(DBNET);
        let int8 = m.clone().with_precision_on(Precision::Int8, false).unwrap();
        assert_eq!(int8.precision, Precision::Int8);
        let fp32 = m.with_precision_on(Precision::Fp32, true).unwrap();
        assert_eq!(fp32.file, Path::new("/m/model.onnx"));
    }

    #[test]
    fn int8_without_a_file_names_the_model() {
        let text = DBNET.split("[int8]").next().unwrap();
        let m = manifest(text);
        assert_eq!(
            m.clone()
                .with_precision_on(Precision::Auto, true)
                .unwrap()
                .precision,
            Precision::Fp32
        );
        let err = m
            .with_precision_on(Precision::Int8, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`student`") && err.contains("[int8]"), "{err}");
    }

    #[test]
    fn a_bad_int8_hash_is_named() {
        let text = DBNET.replace("2222222222222222", "zz");
        let err = Manifest::parse(&text, Path::new("m.toml"), Path::new("/m"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`int8.sha256`"), "{err}");
    }
}
