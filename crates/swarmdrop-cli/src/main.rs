//! `swarmdrop`: argument parsing and wiring. The work is in the library crates.

mod commands;

use clap::Parser as _;

// The servers allocate small, short-lived buffers per request on several threads;
// mimalloc's thread-local free lists serve that pattern better than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
