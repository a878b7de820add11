//! `swarmdrop`: argument parsing and wiring. The work is in the library crates.

mod commands;

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
