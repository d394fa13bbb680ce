//! peersync's entry point: parses the command line, sets up logging, runs the command.
#![forbid(unsafe_code)]
use clap::Parser;
use peersync::cli;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let default = if matches!(cli.command, cli::Command::Serve(_)) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("PEERSYNC_LOG").unwrap_or_else(|_| EnvFilter::new(default)))
        .with_writer(std::io::stderr)
        .init();
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(peersync::error::Error::Exit(code, message)) => {
            eprintln!("error: {message}");
            std::process::ExitCode::from(code)
        }
        Err(e) => {
            let e = anyhow::Error::from(e);
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
