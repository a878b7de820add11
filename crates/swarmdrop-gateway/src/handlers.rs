//! The HTTP endpoints. Each admits the client first, then does its one job; every
//! refusal is `{"error": code, "detail": …}` with the code also counted on /metrics.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use swarmdrop_identity::pow;
use swarmdrop_identity::siwe::{Expected, SiweMessage};
use swarmdrop_identity::token::Tier;
use swarmdrop_identity::trust::Decision;

use crate::state::{client_key, random_hex, Gateway, Refusal};
use crate::store::{NewSingleUse, Pending, StoreError};

type Shared = State<Arc<Gateway>>;
type Client = ConnectInfo<SocketAddr>;
type Answer = Result<Json<Value>, Refusal>;

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "detail": self.detail });
        if let (Some(extra), Some(map)) = (self.extra, body.as_object_mut()) {
            if let Some(extra) = extra.as_object() {
                map.extend(extra.clone());
            }
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

fn store_error(e: crate::store::StoreError) -> Refusal {
    match e {
        StoreError::ClientFull(_) => Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_pending",
            e.to_string(),
        ),
        _ => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
    }
}

fn body<T: DeserializeOwned>(bytes: &Bytes, code: &'static str) -> Result<T, Refusal> {
    serde_json::from_slice(bytes)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, code, format!("request body: {e}")))
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Compares secrets without an early exit.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A refusal attributed to `client` on `endpoint`.
fn refuse(
    gw: &Gateway,
    endpoint: &'static str,
    client: IpAddr,
    status: StatusCode,
    code: &'static str,
    detail: impl Into<String>,
) -> Refusal {
    gw.refuse(endpoint, client, None, Refusal::new(status, code, detail))
}

/// Records a nonce or challenge for `client` (counted against its quota); returns when
/// it expires.
async fn issue_single_use(
    gw: &Gateway,
    client: IpAddr,
    kind: &'static str,
    value: &str,
    data: String,
) -> Result<swarmdrop_manifest::UtcTime, Refusal> {
    let now = gw.now();
    let expires = now.plus_seconds(gw.durations.nonce_lifetime);
    let new = NewSingleUse {
        kind,
        value: value.to_owned(),
        data,
        owner: client_key(client),
        expires,
    };
    gw.store
        .issue(new, now)
        .await
        .map_err(|e| gw.refuse(kind, client, None, store_error(e)))?;
    Ok(expires)
}

/// `GET /auth/nonce`.
pub(crate) async fn nonce(State(gw): Shared, ConnectInfo(addr): Client) -> Answer {
    let client = addr.ip();
    gw.admit("nonce", client)?;
    let nonce = random_hex(12)?;
    let expires = issue_single_use(&gw, client, "nonce", &nonce, String::new()).await?;
    gw.emit("nonce", client, None, "allow", "ok");
    // What the message must say besides the nonce, so a client can build it unaided.
    Ok(Json(json!({
        "nonce": nonce,
        "expires_at": expires.to_string(),
        "domain": gw.config.domain,
        "uri": gw.config.uri,
        "chain_id": gw.config.chain_id,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiweRequest {
    message: String,
    signature: String,
    #[serde(default)]
    challenge: Option<String>,
    #[serde(default)]
    solution: Option<String>,
}

/// Checks and uses a proof-of-work challenge; the challenge is used only on success.
async fn redeem_challenge(
    gw: &Gateway,
    endpoint: &'static str,
    client: IpAddr,
    challenge: &str,
    solution: &str,
) -> Result<(), Refusal> {
    let now = gw.now();
    let difficulty = match gw
        .store
        .peek("challenge", challenge, now)
        .await
        .map_err(store_error)?
    {
        Pending::Ready(data) => data.parse::<u32>().unwrap_or(pow::MAX_DIFFICULTY),
        Pending::Used => {
            gw.signal(client, |s| s.replays += 1);
            return Err(refuse(
                gw,
                endpoint,
                client,
                StatusCode::UNAUTHORIZED,
                "challenge_reused",
                "this challenge was already used",
            ));
        }
        Pending::Unknown => {
            return Err(refuse(
                gw,
                endpoint,
                client,
                StatusCode::UNAUTHORIZED,
                "unknown_challenge",
                "no such challenge, or it expired",
            ))
        }
    };
    if !pow::check(challenge, solution, difficulty) {
        gw.signal(client, |s| s.failed_signatures += 1);
        return Err(refuse(
            gw,
            endpoint,
            client,
            StatusCode::UNAUTHORIZED,
            "bad_solution",
            format!("the solution does not give {difficulty} leading zero bits"),
        ));
    }
    if !gw
        .store
        .consume("challenge", challenge, now)
        .await
        .map_err(store_error)?
    {
        return Err(refuse(
            gw,
            endpoint,
            client,
            StatusCode::UNAUTHORIZED,
            "challenge_reused",
            "this challenge was already used",
        ));
    }
    gw.signal(client, |s| s.pow_solved += 1);
    Ok(())
}

/// A fresh challenge for `client`: `{"challenge", "difficulty", "expires_at"}`.
async fn new_challenge(gw: &Gateway, client: IpAddr) -> Result<Value, Refusal> {
    let (load, risk) = gw.load_and_risk(client);
    let difficulty = pow::difficulty(gw.config.trust.base_difficulty, load, risk);
    let challenge = random_hex(16)?;
    let expires =
        issue_single_use(gw, client, "challenge", &challenge, difficulty.to_string()).await?;
    Ok(
        json!({ "challenge": challenge, "difficulty": difficulty, "expires_at": expires.to_string() }),
    )
}

/// `POST /auth/siwe`: EIP-4361 sign-in. The nonce is consumed only after every check passed.
pub(crate) async fn siwe(State(gw): Shared, ConnectInfo(addr): Client, bytes: Bytes) -> Answer {
    let client = addr.ip();
    let risk = gw.admit("siwe", client)?;
    let request: SiweRequest =
        body(&bytes, "malformed_message").map_err(|r| gw.refuse("siwe", client, None, r))?;
    let message = SiweMessage::parse(&request.message).map_err(|e| {
        refuse(
            &gw,
            "siwe",
            client,
            StatusCode::BAD_REQUEST,
            e.code(),
            e.to_string(),
        )
    })?;
    let subject = message.address.to_checksummed();
    gw.admit_identity("siwe", client, &subject)?;
    if let Decision::Challenge { .. } = risk {
        match (&request.challenge, &request.solution) {
            (Some(challenge), Some(solution)) => {
                redeem_challenge(&gw, "siwe", client, challenge, solution).await?
            }
            _ => {
                let extra = new_challenge(&gw, client).await?;
                return Err(gw.refuse(
                    "siwe",
                    client,
                    Some(subject),
                    Refusal {
                        extra: Some(extra),
                        ..Refusal::new(
                            StatusCode::UNAUTHORIZED,
                            "challenge_required",
                            "solve the proof-of-work challenge and send it with the sign-in",
                        )
                    },
                ));
            }
        }
    }
    let now = gw.now();
    match gw
        .store
        .peek("nonce", &message.nonce, now)
        .await
        .map_err(store_error)?
    {
        Pending::Ready(_) => {}
        Pending::Used => {
            gw.signal(client, |s| s.replays += 1);
            return Err(gw.refuse(
                "siwe",
                client,
                Some(subject),
                Refusal::new(
                    StatusCode::UNAUTHORIZED,
                    "nonce_reused",
                    "this nonce was already used to sign in",
                ),
            ));
        }
        Pending::Unknown => {
            return Err(gw.refuse(
                "siwe",
                client,
                Some(subject),
                Refusal::new(
                    StatusCode::UNAUTHORIZED,
                    "unknown_nonce",
                    "this gateway did not issue that nonce, or it expired",
                ),
            ))
        }
    }
    let expected = Expected {
        domain: &gw.config.domain,
        uri: &gw.config.uri,
        chain_id: gw.config.chain_id,
        skew_seconds: gw.durations.clock_skew,
        max_age_seconds: Some(gw.durations.max_message_age),
    };
    if let Err(e) = message.check(&request.message, &request.signature, &expected, now) {
        if e.code() == "bad_signature" {
            gw.signal(client, |s| s.failed_signatures += 1);
        }
        return Err(gw.refuse(
            "siwe",
            client,
            Some(subject),
            Refusal::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string()),
        ));
    }
    if !gw
        .store
        .consume("nonce", &message.nonce, now)
        .await
        .map_err(store_error)?
    {
        return Err(gw.refuse(
            "siwe",
            client,
            Some(subject),
            Refusal::new(
                StatusCode::UNAUTHORIZED,
                "nonce_reused",
                "this nonce was used by a concurrent sign-in",
            ),
        ));
    }
    let (tier, caps) = if gw.allowlist.contains(&message.address) {
        (Tier::Allowlisted, vec!["mint".to_owned()])
    } else {
        (Tier::Wallet, Vec::new())
    };
    Ok(Json(gw.issue("siwe", client, subject, tier, caps)?))
}

/// `GET /auth/challenge`.
pub(crate) async fn challenge(State(gw): Shared, ConnectInfo(addr): Client) -> Answer {
    let client = addr.ip();
    if !gw.config.allow_anonymous {
        return Err(refuse(
            &gw,
            "challenge",
            client,
            StatusCode::FORBIDDEN,
            "anonymous_disabled",
            "this drop admits wallets only",
        ));
    }
    gw.admit("challenge", client)?;
    let answer = new_challenge(&gw, client).await?;
    gw.emit("challenge", client, None, "allow", "ok");
    Ok(Json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnonymousRequest {
    challenge: String,
    solution: String,
}

/// `POST /auth/anonymous`.
pub(crate) async fn anonymous(
    State(gw): Shared,
    ConnectInfo(addr): Client,
    bytes: Bytes,
) -> Answer {
    let client = addr.ip();
    if !gw.config.allow_anonymous {
        return Err(refuse(
            &gw,
            "anonymous",
            client,
            StatusCode::FORBIDDEN,
            "anonymous_disabled",
            "this drop admits wallets only",
        ));
    }
    gw.admit("anonymous", client)?;
    let request: AnonymousRequest =
        body(&bytes, "malformed_request").map_err(|r| gw.refuse("anonymous", client, None, r))?;
    redeem_challenge(
        &gw,
        "anonymous",
        client,
        &request.challenge,
        &request.solution,
    )
    .await?;
    let subject = format!(
        "anon:{}",
        hex::encode(&Sha256::digest(request.challenge.as_bytes())[..8])
    );
    Ok(Json(gw.issue(
        "anonymous",
        client,
        subject,
        Tier::Anonymous,
        Vec::new(),
    )?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceRequest {
    name: String,
    nonce: String,
    signature: String,
}

/// `POST /auth/service`: an edge or seeder signs `swarmdrop-service-auth\n<drop>\n<name>\n<nonce>`.
pub(crate) async fn service(State(gw): Shared, ConnectInfo(addr): Client, bytes: Bytes) -> Answer {
    let client = addr.ip();
    gw.admit("service", client)?;
    let request: ServiceRequest =
        body(&bytes, "malformed_request").map_err(|r| gw.refuse("service", client, None, r))?;
    let Some((name, key, caps)) = gw
        .services
        .iter()
        .find(|(name, _, _)| *name == request.name)
        .cloned()
    else {
        return Err(refuse(
            &gw,
            "service",
            client,
            StatusCode::UNAUTHORIZED,
            "unknown_service",
            format!(
                "no service named {:?} in the gateway config",
                request.name.chars().take(64).collect::<String>()
            ),
        ));
    };
    let now = gw.now();
    if gw
        .store
        .peek("nonce", &request.nonce, now)
        .await
        .map_err(store_error)?
        != Pending::Ready(String::new())
    {
        return Err(refuse(
            &gw,
            "service",
            client,
            StatusCode::UNAUTHORIZED,
            "unknown_nonce",
            "nonce unknown, expired or used",
        ));
    }
    let message = format!(
        "swarmdrop-service-auth\n{}\n{name}\n{}",
        gw.config.drop, request.nonce
    );
    let signature = hex::decode(&request.signature).unwrap_or_default();
    if !key.verify(message.as_bytes(), &signature) {
        gw.signal(client, |s| s.failed_signatures += 1);
        return Err(refuse(
            &gw,
            "service",
            client,
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            format!("signature is not by service {name}'s key"),
        ));
    }
    if !gw
        .store
        .consume("nonce", &request.nonce, now)
        .await
        .map_err(store_error)?
    {
        return Err(refuse(
            &gw,
            "service",
            client,
            StatusCode::UNAUTHORIZED,
            "nonce_reused",
            "nonce already used",
        ));
    }
    Ok(Json(gw.issue(
        "service",
        client,
        format!("service:{name}"),
        Tier::Service,
        caps,
    )?))
}

/// `POST /auth/refresh` with `Authorization: Bearer`: a new token for the same subject.
pub(crate) async fn refresh(
    State(gw): Shared,
    ConnectInfo(addr): Client,
    headers: HeaderMap,
) -> Answer {
    let client = addr.ip();
    let claims = gw
        .authenticate("refresh", client, &headers, true)
        .await?
        .ok_or_else(|| {
            refuse(
                &gw,
                "refresh",
                client,
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "send the token as Authorization: Bearer",
            )
        })?;
    gw.admit_identity("refresh", client, &claims.sub)?;
    Ok(Json(gw.reissue("refresh", client, &claims)?))
}

/// `GET /auth/keys`.
pub(crate) async fn keys(State(gw): Shared) -> Json<Value> {
    Json(gw.keys_answer())
}

/// `GET /auth/revocations`.
pub(crate) async fn revocations(State(gw): Shared) -> Answer {
    let (version, revoked) = gw.store.revocations(gw.now()).await.map_err(store_error)?;
    Ok(Json(json!({ "version": version, "revoked": revoked })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    jti: String,
}

/// `POST /admin/revoke` with the admin bearer token.
pub(crate) async fn revoke(
    State(gw): Shared,
    ConnectInfo(addr): Client,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let client = addr.ip();
    if gw.config.admin_token.is_empty() {
        return Err(refuse(
            &gw,
            "revoke",
            client,
            StatusCode::FORBIDDEN,
            "revocation_disabled",
            "set admin_token in the gateway config to revoke over HTTP",
        ));
    }
    if !bearer(&headers).is_some_and(|t| same_secret(t, &gw.config.admin_token)) {
        return Err(refuse(
            &gw,
            "revoke",
            client,
            StatusCode::UNAUTHORIZED,
            "bad_admin_token",
            "the admin bearer token is wrong",
        ));
    }
    let request: RevokeRequest = body(&bytes, "malformed_request")?;
    if request.jti.is_empty() || request.jti.len() > 128 {
        return Err(refuse(
            &gw,
            "revoke",
            client,
            StatusCode::BAD_REQUEST,
            "malformed_request",
            "jti must be 1 to 128 characters",
        ));
    }
    // A jti names a session: refreshes keep it for up to session_lifetime, and no token
    // of the session outlives that plus the skew tolerated.
    let until = gw
        .now()
        .plus_seconds(gw.durations.session_lifetime + gw.durations.clock_skew);
    let version = gw
        .store
        .revoke(request.jti, until)
        .await
        .map_err(store_error)?;
    gw.emit("revoke", client, None, "allow", "ok");
    Ok(Json(json!({ "version": version })))
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(gw): Shared) -> Response {
    let mut text = gw.metrics.render(&gw.gauges().await);
    for hook in &gw.metrics_hooks {
        hook(&mut text);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
