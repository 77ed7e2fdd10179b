//! The model family a verb works on, read from the model it is given: a text-classify package, a
//! detection package or a bare ONNX file. `prune`, `distill`, `quantize` and `eval` keep their
//! arguments as given until the family is known, then parse them with that family's own flags.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser};

/// What a model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A `text-classify` package.
    Text,
    /// A `detect` package.
    Detect,
    /// A bare `.onnx` file.
    Onnx,
}

impl Family {
    /// The family of the model at `path`: an `.onnx` file is a bare graph, a manifest says its
    /// `task`.
    pub fn of(path: &Path) -> anyhow::Result<Family> {
        if path.extension().is_some_and(|e| e == "onnx") {
            return Ok(Family::Onnx);
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("{} is not a model manifest", path.display()))?;
        match table.get("task").and_then(|t| t.as_str()) {
            Some("text-classify") => Ok(Family::Text),
            Some("detect") => Ok(Family::Detect),
            Some(task) => bail!(
                "{}: task `{task}` is neither text-classify nor detect",
                path.display()
            ),
            None => bail!("{}: the manifest has no task", path.display()),
        }
    }
}

/// A verb's arguments as given.
#[derive(Debug, Clone, clap::Args)]
pub struct Raw {
    /// The verb's flags; they depend on the model's family (`--help` lists them all).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..,
        value_name = "ARGS"
    )]
    args: Vec<OsString>,
}

impl Raw {
    /// The model named by `--FLAG PATH` or `--FLAG=PATH`.
    pub fn flag(&self, flag: &str) -> Option<PathBuf> {
        let long = format!("--{flag}");
        let mut args = self.args.iter();
        while let Some(arg) = args.next() {
            let arg = arg.to_string_lossy();
            if arg == long {
                return args.next().map(PathBuf::from);
            }
            if let Some(value) = arg.strip_prefix(&format!("{long}=")) {
                return Some(PathBuf::from(value));
            }
        }
        None
    }

    /// Turns a leading positional argument into `--FLAG VALUE` (`quantize MODEL …`).
    pub fn positional_to(mut self, flag: &str) -> Raw {
        if self
            .args
            .first()
            .is_some_and(|a| !a.to_string_lossy().starts_with('-'))
        {
            self.args.insert(0, OsString::from(format!("--{flag}")));
        }
        self
    }

    /// Whether `-h` or `--help` was given.
    pub fn wants_help(&self) -> bool {
        self.args.iter().any(|a| a == "-h" || a == "--help")
    }

    /// The arguments read by `T`, the family's parser; a bad argument or `--help` ends the
    /// process as clap does.
    pub fn parse<T: Parser>(&self, verb: &str) -> T {
        let name = OsString::from(format!("edgemass-compress {verb}"));
        T::try_parse_from(std::iter::once(name).chain(self.args.iter().cloned()))
            .unwrap_or_else(|e| e.exit())
    }
}

/// One family's flags for a verb's help.
pub struct FamilyHelp {
    /// Which models these flags are for.
    pub models: &'static str,
    /// The family's parser.
    pub command: clap::Command,
}

impl FamilyHelp {
    /// The help of `T`'s flags for `models`.
    pub fn of<T: CommandFactory>(models: &'static str) -> FamilyHelp {
        FamilyHelp {
            models,
            command: T::command(),
        }
    }
}

/// What a verb says when its family is unknown: the help of every family under `--help`, else an
/// error that says how to name the model.
pub fn without_model(
    raw: &Raw,
    verb: &str,
    flag: &str,
    families: Vec<FamilyHelp>,
) -> anyhow::Result<String> {
    if !raw.wants_help() {
        bail!(
            "{verb} needs --{flag}: its flags depend on the model (see `edgemass-compress {verb} \
             --help`)"
        );
    }
    let mut out = format!(
        "The flags of `edgemass-compress {verb}` depend on the model given with --{flag}.\n"
    );
    for family in families {
        let mut command = family
            .command
            .bin_name(format!("edgemass-compress {verb}"))
            .about(None::<&'static str>);
        out.push_str(&format!(
            "\n## {}\n\n{}",
            family.models,
            command.render_help()
        ));
    }
    Ok(out)
}
