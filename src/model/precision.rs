//! Which form of a network to run: the float file, or the int8 file a package may carry. tract
//! runs int8 convolutions and matrix products with integer kernels, which beat float only where
//! the CPU has dot-product instructions (`sdot`: Cortex-A76 in the Pi 5, A78AE in the Jetson
//! Orin); on a Pi 4's Cortex-A72 or an x86 CPU the float form is faster.

use serde::Deserialize;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_resolves_to_int8_only_with_a_file_and_dotprod() {
        assert_eq!(Precision::Auto.resolve(true, true), Some(Precision::Int8));
        assert_eq!(Precision::Auto.resolve(true, false), Some(Precision::Fp32));
        assert_eq!(Precision::Auto.resolve(false, true), Some(Precision::Fp32));
        assert_eq!(Precision::Int8.resolve(false, true), None);
        assert_eq!(Precision::Fp32.resolve(true, true), Some(Precision::Fp32));
    }
}
