//! Processes a benchmark starts: killed when dropped, and `swarmdrop` subcommands started
//! and waited on until they say where they listen.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use crate::pack::io;
use crate::BenchError;

/// A child process, killed and reaped when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs this binary with `args` and waits for its `listening <what> ADDR` line on stderr;
/// returns the process and ADDR.
pub fn start_swarmdrop(
    args: &[&std::ffi::OsStr],
    what: &str,
) -> Result<(Running, String), BenchError> {
    let exe = std::env::current_exe().map_err(io("locating the swarmdrop binary"))?;
    let mut child = Command::new(exe)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io(format!("starting swarmdrop ({what})")))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| BenchError::Usage(format!("no stderr from swarmdrop ({what})")))?;
    let running = Running(child);
    let prefix = format!("listening {what} ");
    for line in BufReader::new(stderr).lines() {
        let line = line.map_err(io(format!("reading swarmdrop's output ({what})")))?;
        if let Some(addr) = line.strip_prefix(&prefix) {
            return Ok((running, addr.trim().to_owned()));
        }
    }
    Err(BenchError::Usage(format!(
        "swarmdrop exited before listening ({what})"
    )))
}

/// The port of an `ip:port` address.
pub fn port_of(addr: &str) -> Result<u16, BenchError> {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| BenchError::Usage(format!("bad listening address {addr:?}")))
}
