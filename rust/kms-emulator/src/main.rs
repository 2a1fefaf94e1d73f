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
    // Installed before the startup line: a SIGTERM right after it must still exit cleanly.
    let termination = match Termination::install() {
        Ok(termination) => termination,
        Err(err) => {
            eprintln!("kms-emulator: cannot wait for signals: {err}");
            return ExitCode::FAILURE;
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
    match termination.wait().await {
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

/// SIGTERM or SIGINT (Ctrl-C elsewhere), listened for from `install` on.
#[cfg(unix)]
struct Termination {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Termination {
    fn install() -> std::io::Result<Termination> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Termination {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(mut self) -> std::io::Result<()> {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        Ok(())
    }
}

#[cfg(not(unix))]
struct Termination;

#[cfg(not(unix))]
impl Termination {
    fn install() -> std::io::Result<Termination> {
        Ok(Termination)
    }

    async fn wait(self) -> std::io::Result<()> {
        tokio::signal::ctrl_c().await
    }
}
