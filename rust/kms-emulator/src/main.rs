//! `kms-emulator`: see `kms_emulator::cli::USAGE` and `docs/design.md` ("KMS emulator").

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;

use kms_emulator::cli::{parse_args, Command, USAGE};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("kms-emulator: {err}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let emulator = match kms_emulator::start(config).await {
        Ok(emulator) => emulator,
        Err(err) => {
            eprintln!("kms-emulator: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = writeln!(stdout, "{}", emulator.startup_line()).and_then(|()| stdout.flush())
    {
        eprintln!("kms-emulator: cannot write the startup line: {err}");
        return ExitCode::FAILURE;
    }
    drop(stdout);
    match wait_for_termination().await {
        Ok(()) => {
            emulator.shutdown().await;
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("kms-emulator: cannot wait for signals: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
#[cfg(unix)]
async fn wait_for_termination() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_termination() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
