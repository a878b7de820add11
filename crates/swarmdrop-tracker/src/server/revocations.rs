//! Keeping the gateway's revocation list in force: poll `GET /auth/revocations`, and
//! when its version moves, swap in a verifier with the new list. Tokens are verified
//! offline, so without this a revoked token would keep announcing until it expired.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use swarmdrop_httpc::{get_bytes, FetchError, HttpUrl, Timeouts};

use super::state::Tracker;

/// Largest revocation list accepted (a million 32-hex-digit ids is about 36 MB).
const MAX_LIST_BYTES: usize = 64 << 20;

#[derive(Deserialize)]
struct RevocationList {
    version: u64,
    revoked: Vec<String>,
}

/// Why one poll failed.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The call failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The gateway answered but not with a list.
    #[error("{url}: {reason}")]
    Answer {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

async fn fetch(url: &HttpUrl) -> Result<RevocationList, PollError> {
    let (status, body) = get_bytes(
        url,
        &[("accept", "application/json")],
        MAX_LIST_BYTES,
        Timeouts::default(),
        Duration::from_secs(30),
    )
    .await?;
    if !status.is_success() {
        return Err(PollError::Answer {
            url: url.to_string(),
            reason: format!("HTTP {status}"),
        });
    }
    serde_json::from_slice(&body).map_err(|e| PollError::Answer {
        url: url.to_string(),
        reason: format!("not a revocation list ({{\"version\", \"revoked\"}}): {e}"),
    })
}

/// Polls until the task is dropped. The first poll happens at once.
pub async fn run(tracker: Arc<Tracker>, url: HttpUrl, every: Duration) {
    let mut version = None;
    loop {
        match fetch(&url).await {
            Ok(list) => {
                if version != Some(list.version) {
                    version = Some(list.version);
                    tracker.set_revocations(list.revoked);
                }
            }
            Err(e) => {
                tracker
                    .metrics
                    .revocation_polls_failed
                    .fetch_add(1, Ordering::Relaxed);
                eprintln!("warning: revocation poll failed (the last list stays in force): {e}");
            }
        }
        tokio::time::sleep(every).await;
    }
}
