//! Processes a benchmark starts: killed when dropped, and `swarmdrop` subcommands started
//! and waited on until they say where they listen.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    let (running, mut found) = start_listening(args, &[what], None)?;
    let addr = found.remove(what).unwrap_or_default();
    Ok((running, addr))
}

/// Runs this binary with `args` and waits (at most two minutes) until it has printed
/// `listening <name> ADDR` for every name in `wanted`; returns the process and each ADDR.
/// Its stderr is drained for the child's whole life (into `log` when given), so a
/// process that keeps logging never meets a full or closed pipe.
pub fn start_listening(
    args: &[&std::ffi::OsStr],
    wanted: &[&str],
    log: Option<&std::path::Path>,
) -> Result<(Running, HashMap<String, String>), BenchError> {
    let what = wanted.join(", ");
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
    let mut file = match log {
        Some(path) => Some(std::fs::File::create(path).map_err(io(path.display().to_string()))?),
        None => None,
    };
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(file) = file.as_mut() {
                let _ = writeln!(file, "{line}");
            }
            let _ = tx.send(line);
        }
    });
    let mut found = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while found.len() < wanted.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            return Err(BenchError::Usage(format!(
                "swarmdrop exited or went quiet before listening ({what})"
            )));
        };
        for name in wanted {
            if let Some(addr) = line.strip_prefix(&format!("listening {name} ")) {
                found.insert((*name).to_owned(), addr.trim().to_owned());
            }
        }
    }
    Ok((running, found))
}

/// The port of an `ip:port` address.
pub fn port_of(addr: &str) -> Result<u16, BenchError> {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| BenchError::Usage(format!("bad listening address {addr:?}")))
}
