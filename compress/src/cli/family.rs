//! The model family a verb works on, read from the model it is given: a text-classify package, a
//! detection package or a bare ONNX file. `prune`, `distill`, `quantize` and `eval` keep their
//! arguments as given until the family is known, then parse them with that family's own flags.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Parser;

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

/// A family's flags for a verb, parsed from the arguments as given and then run.
pub trait Flags: Parser {
    /// Runs the verb; the text is printed on stdout.
    fn run(self) -> anyhow::Result<String>;
}

/// One family's form of a verb: which models it takes and its flags.
pub struct Form {
    families: &'static [Family],
    models: &'static str,
    command: fn() -> clap::Command,
    run: fn(&Raw, &str) -> anyhow::Result<String>,
}

impl Form {
    /// The form whose flags are `T`, for the `families` described as `models`.
    pub fn of<T: Flags>(families: &'static [Family], models: &'static str) -> Form {
        Form {
            families,
            models,
            command: T::command,
            run: |raw, verb| raw.parse::<T>(verb).run(),
        }
    }
}

/// Runs `verb` in the form for the family of the model named by `--FLAG`. Without that flag, the
/// help of every form under `--help`, else an error that says how to name the model.
pub fn dispatch(raw: &Raw, verb: &str, flag: &str, forms: &[Form]) -> anyhow::Result<String> {
    let Some(model) = raw.flag(flag) else {
        return without_model(raw, verb, flag, forms);
    };
    let family = Family::of(&model)?;
    match forms.iter().find(|f| f.families.contains(&family)) {
        Some(form) => (form.run)(raw, verb),
        None => bail!(
            "{}: {verb} takes {}; give a manifest of one",
            model.display(),
            forms
                .iter()
                .map(|f| f.models)
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    }
}

fn without_model(raw: &Raw, verb: &str, flag: &str, forms: &[Form]) -> anyhow::Result<String> {
    if !raw.wants_help() {
        bail!(
            "{verb} needs --{flag}: its flags depend on the model (see `edgemass-compress {verb} \
             --help`)"
        );
    }
    let mut out = format!(
        "The flags of `edgemass-compress {verb}` depend on the model given with --{flag}.\n"
    );
    for form in forms {
        let mut command = (form.command)()
            .bin_name(format!("edgemass-compress {verb}"))
            .about(None::<&'static str>);
        out.push_str(&format!(
            "\n## {}\n\n{}",
            form.models,
            command.render_help()
        ));
    }
    Ok(out)
}
