//! `edgemass check-config`: a configuration validated and printed as it resolves.

use std::path::PathBuf;
use std::process::ExitCode;

use edgemass::config::Config;

/// `edgemass check-config`: validate a configuration file (with environment overrides).
#[derive(clap::Args)]
pub struct Args {
    /// The configuration file.
    pub file: PathBuf,
}

impl Args {
    /// Prints that `config`, read from `self.file`, is valid, and what it resolves to.
    pub fn print(&self, config: &Config) -> ExitCode {
        println!("{}: ok", self.file.display());
        println!("{config:#?}");
        ExitCode::SUCCESS
    }
}
