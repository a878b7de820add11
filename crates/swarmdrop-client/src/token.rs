//! A token from the gateway: anonymous proof of work (`GET /auth/challenge`, solve,
//! `POST /auth/anonymous`), or a wallet's Sign-In with Ethereum ([`wallet`]).

pub mod wallet;

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use swarmdrop_httpc::{get_bytes, post_json_bytes, HttpUrl, Timeouts};

use crate::ClientError;

/// `{"challenge", "difficulty"}`: a proof-of-work challenge.
#[derive(Deserialize)]
pub(crate) struct Challenge {
    pub(crate) challenge: String,
    pub(crate) difficulty: u32,
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: String,
}

/// Most hashes tried for one challenge (the gateway asks for ~20 bits in normal load).
const MAX_TRIES: u64 = 1 << 32;
/// Longest a gateway answer may be.
const MAX_ANSWER: usize = 64 << 10;
/// How long one gateway call may take.
const WAIT: Duration = Duration::from_secs(10);

fn refused(what: &str, status: u16, body: &[u8]) -> ClientError {
    ClientError::Gateway(format!(
        "{what}: HTTP {status}: {}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    ))
}

/// The gateway's base URL, checked.
pub(crate) fn gateway_url(base: &str) -> Result<HttpUrl, ClientError> {
    HttpUrl::parse(base).map_err(|e| ClientError::Usage(format!("--gateway: {e}")))
}

fn timeouts(source: Option<std::net::IpAddr>) -> Timeouts {
    Timeouts {
        source,
        ..Timeouts::default()
    }
}

/// `GET {base}/{relative}`: the answer's body when it is a success, else a refusal
/// naming `what`.
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    base: &HttpUrl,
    relative: &str,
    what: &str,
    source: Option<std::net::IpAddr>,
) -> Result<T, ClientError> {
    let (status, body) = get_bytes(
        &base.join(relative),
        &[],
        MAX_ANSWER,
        timeouts(source),
        WAIT,
    )
    .await
    .map_err(|e| ClientError::Gateway(format!("{what}: {e}")))?;
    if !status.is_success() {
        return Err(refused(what, status.as_u16(), &body));
    }
    serde_json::from_slice(&body)
        .map_err(|e| ClientError::Gateway(format!("{what}: an unreadable answer: {e}")))
}

/// `POST {base}/{relative}` with a JSON body: the status and the body.
pub(crate) async fn post(
    base: &HttpUrl,
    relative: &str,
    what: &str,
    request: &serde_json::Value,
    source: Option<std::net::IpAddr>,
) -> Result<(u16, Bytes), ClientError> {
    let (status, body) = post_json_bytes(
        &base.join(relative),
        &[],
        Bytes::from(request.to_string()),
        MAX_ANSWER,
        timeouts(source),
        WAIT,
    )
    .await
    .map_err(|e| ClientError::Gateway(format!("{what}: {e}")))?;
    Ok((status.as_u16(), body))
}

/// The token in a successful answer, or the refusal.
pub(crate) fn token_from(what: &str, status: u16, body: &[u8]) -> Result<String, ClientError> {
    if !(200..300).contains(&status) {
        return Err(refused(what, status, body));
    }
    let answer: TokenAnswer = serde_json::from_slice(body)
        .map_err(|e| ClientError::Gateway(format!("{what}: an unreadable token answer: {e}")))?;
    Ok(answer.token)
}

/// Solves a proof-of-work challenge off the async workers.
pub(crate) async fn solve(challenge: &Challenge) -> Result<String, ClientError> {
    let (text, difficulty) = (challenge.challenge.clone(), challenge.difficulty);
    tokio::task::spawn_blocking(move || {
        swarmdrop_identity::pow::solve(&text, difficulty, MAX_TRIES)
    })
    .await
    .map_err(|e| ClientError::Gateway(format!("solving the challenge: {e}")))?
    .ok_or_else(|| ClientError::Gateway(format!("no solution to a {difficulty}-bit challenge")))
}

/// An anonymous token from the gateway at `base`.
pub async fn anonymous(
    base: &str,
    source: Option<std::net::IpAddr>,
) -> Result<String, ClientError> {
    let base = gateway_url(base)?;
    let challenge: Challenge = get_json(&base, "auth/challenge", "a challenge", source).await?;
    let solution = solve(&challenge).await?;
    let request = serde_json::json!({ "challenge": challenge.challenge, "solution": solution });
    let what = "an anonymous token";
    let (status, body) = post(&base, "auth/anonymous", what, &request, source).await?;
    token_from(what, status, &body)
}
