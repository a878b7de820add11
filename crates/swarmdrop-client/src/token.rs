//! A token from the gateway: anonymous proof of work (`GET /auth/challenge`, solve,
//! `POST /auth/anonymous`).

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use swarmdrop_httpc::{get_bytes, post_json_bytes, HttpUrl, Timeouts};

use crate::ClientError;

#[derive(Deserialize)]
struct Challenge {
    challenge: String,
    difficulty: u32,
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: String,
}

/// Most hashes tried for one challenge (the gateway asks for ~20 bits in normal load).
const MAX_TRIES: u64 = 1 << 32;

fn refused(what: &str, status: u16, body: &[u8]) -> ClientError {
    ClientError::Gateway(format!(
        "{what}: HTTP {status}: {}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    ))
}

/// An anonymous token from the gateway at `base`.
pub async fn anonymous(
    base: &str,
    source: Option<std::net::IpAddr>,
) -> Result<String, ClientError> {
    let timeouts = Timeouts {
        source,
        ..Timeouts::default()
    };
    let base = HttpUrl::parse(base).map_err(|e| ClientError::Usage(format!("--gateway: {e}")))?;
    let wait = Duration::from_secs(10);
    let url = base.join("auth/challenge");
    let (status, body) = get_bytes(&url, &[], 64 << 10, timeouts, wait)
        .await
        .map_err(|e| ClientError::Gateway(e.to_string()))?;
    if !status.is_success() {
        return Err(refused("a challenge", status.as_u16(), &body));
    }
    let challenge: Challenge = serde_json::from_slice(&body)
        .map_err(|e| ClientError::Gateway(format!("an unreadable challenge: {e}")))?;
    let (text, difficulty) = (challenge.challenge.clone(), challenge.difficulty);
    let solution = tokio::task::spawn_blocking(move || {
        swarmdrop_identity::pow::solve(&text, difficulty, MAX_TRIES)
    })
    .await
    .map_err(|e| ClientError::Gateway(format!("solving the challenge: {e}")))?
    .ok_or_else(|| ClientError::Gateway(format!("no solution to a {difficulty}-bit challenge")))?;
    let request = serde_json::json!({ "challenge": challenge.challenge, "solution": solution });
    let (status, body) = post_json_bytes(
        &base.join("auth/anonymous"),
        &[],
        Bytes::from(request.to_string()),
        64 << 10,
        timeouts,
        wait,
    )
    .await
    .map_err(|e| ClientError::Gateway(e.to_string()))?;
    if !status.is_success() {
        return Err(refused("an anonymous token", status.as_u16(), &body));
    }
    let answer: TokenAnswer = serde_json::from_slice(&body)
        .map_err(|e| ClientError::Gateway(format!("an unreadable token answer: {e}")))?;
    Ok(answer.token)
}
