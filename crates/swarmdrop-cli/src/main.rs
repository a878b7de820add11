//! `swarmdrop`: argument parsing and wiring. The work is in the library crates.

mod commands;

use clap::Parser as _;

// The servers allocate small, short-lived buffers per request on several threads;
// mimalloc's thread-local free lists serve that pattern better than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // mimalloc backs its arenas with transparent huge pages where the kernel allows, and
    // the first touch of each 2 MiB page zeroes all of it in one fault: a stall on
    // whichever thread touched it, often one answering a checkout page. Without them the
    // demo's checkout p99 fell about threefold and its peak memory by a third
    // (docs/design/0007-plan.md). The flag covers what mimalloc has already mapped, and
    // the processes this one starts (the demo's services) inherit it. A kernel that
    // refuses it keeps huge pages, which only costs that latency.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
