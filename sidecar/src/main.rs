//! peersync's entry point: parses the command line, sets up logging, runs the command.
#![forbid(unsafe_code)]
use clap::Parser;
use peersync::cli;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let default = if matches!(cli.command, cli::Command::Serve(_)) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("PEERSYNC_LOG").unwrap_or_else(|_| EnvFilter::new(default)))
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader of our output went away (`peersync status | head`): nothing left to say.
        Err(peersync::error::Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::ExitCode::SUCCESS
        }
        Err(peersync::error::Error::Exit(code, message)) => {
            eprintln!("error: {message}");
            std::process::ExitCode::from(code)
        }
        Err(e) => {
            eprintln!("error: {}", message(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: a cause whose text the line already
/// holds (an error that shows its source as its own message) is left out.
fn message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
        source = s.source();
    }
    line
}
