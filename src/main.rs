//! The `edgemass` command: parses arguments, loads the configuration, sets up logging and maps
//! errors to exit codes. The subcommands are in `cli/`, one file each.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, Usage, one_line};
use edgemass::config::{Config, ConfigError, LogConfig, LogFormat};

/// Exit code of a bad configuration or argument (sysexits `EX_USAGE`).
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let command = Cli::parse().command;
    let plain = |level: &str| LogConfig {
        format: LogFormat::Text,
        level: level.into(),
    };
    match &command {
        Command::Run(_) => {} // its configuration sets the logging up
        Command::Serve(_) => init_logging(&plain("info")),
        _ => init_logging(&plain("warn")),
    }
    let result = match command {
        Command::Run(args) => Config::from_path(&args.config)
            .map_err(anyhow::Error::from)
            .and_then(|config| {
                init_logging(&config.log);
                args.run(config)
            }),
        Command::CheckConfig(args) => Config::from_path(&args.file)
            .map(|config| args.print(&config))
            .map_err(anyhow::Error::from),
        Command::PrintConfig => {
            print!("{}", edgemass::config::DEFAULT);
            Ok(ExitCode::SUCCESS)
        }
        Command::Detect(args) => args.run(),
        Command::Classify(args) => args.run(),
        Command::Bench(args) => args.run(),
        Command::Serve(args) => args.run(),
        Command::Tensor(args) => args.run(),
    };
    result.unwrap_or_else(|e| {
        eprintln!("edgemass: error: {}", one_line(&e));
        if e.is::<Usage>() || e.is::<ConfigError>() {
            ExitCode::from(EXIT_CONFIG)
        } else {
            ExitCode::FAILURE
        }
    })
}

fn init_logging(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDGEMASS_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{},rumqttd=off,rumqttc=warn", log.level))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
