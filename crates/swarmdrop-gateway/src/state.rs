//! The gateway's state and the admission step every request goes through.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::StatusCode;
use serde_json::{json, Value};
use swarmdrop_identity::eth::Address;
use swarmdrop_identity::gcra::{Limiter, Quota};
use swarmdrop_identity::token::{key_id, Claims, Tier, TokenIssuer, TokenVerifier};
use swarmdrop_identity::trust::{
    risk_score, Decision, IdentityEvent, RiskTable, Signals, TrustPolicy,
};
use swarmdrop_manifest::keys::{PublicKey, SigningKey};
use swarmdrop_manifest::UtcTime;
use tokio::sync::broadcast;

use crate::config::{Durations, GatewayConfig};
use crate::metrics::{Gauges, Metrics};
use crate::store::{IdentityStore, MemoryStore};
use crate::MetricsHook;

const NANOS: u64 = 1_000_000_000;

/// A refusal: HTTP status, stable reason code, detail, and optional extras.
#[derive(Debug)]
pub struct Refusal {
    /// Status code.
    pub status: StatusCode,
    /// Reason code (`nonce_reused`, …).
    pub code: &'static str,
    /// Human-readable detail.
    pub detail: String,
    /// `Retry-After` seconds for 429.
    pub retry_after: Option<u64>,
    /// Extra fields merged into the body (a challenge to solve, say).
    pub extra: Option<Value>,
}

impl Refusal {
    /// A refusal with no extras.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
            extra: None,
        }
    }
}

/// Requests per second over the last full second.
#[derive(Debug, Default)]
struct LoadMeter {
    window: u64,
    count: u64,
    last: u64,
}

impl LoadMeter {
    fn tick(&mut self, now: u64) {
        let window = now / NANOS;
        if window != self.window {
            self.last = if window == self.window + 1 {
                self.count
            } else {
                0
            };
            self.window = window;
            self.count = 0;
        }
        self.count += 1;
    }

    fn rate(&self) -> f64 {
        self.last.max(self.count) as f64
    }
}

struct Limits {
    ip: Limiter<IpAddr>,
    identity: Limiter<String>,
    risk: RiskTable<IpAddr>,
    load: LoadMeter,
}

/// A running gateway's state.
pub struct Gateway {
    pub(crate) config: GatewayConfig,
    pub(crate) durations: Durations,
    pub(crate) issuer: TokenIssuer,
    pub(crate) accepted_keys: Vec<PublicKey>,
    pub(crate) allowlist: HashSet<Address>,
    pub(crate) services: Vec<(String, PublicKey, Vec<String>)>,
    pub(crate) store: Arc<dyn IdentityStore>,
    pub(crate) metrics: Metrics,
    pub(crate) policy: TrustPolicy,
    /// More families for `/metrics`, from the process hosting the gateway.
    pub(crate) metrics_hooks: Vec<MetricsHook>,
    limits: Mutex<Limits>,
    epoch: Instant,
    events: broadcast::Sender<IdentityEvent>,
}

/// A gateway that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A key or allowlist file could not be read.
    #[error("{path}: {detail}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
}

fn read(path: &std::path::Path) -> Result<String, GatewayError> {
    let file_error = |detail: String| GatewayError::File {
        path: path.display().to_string(),
        detail,
    };
    let meta = std::fs::metadata(path).map_err(|e| file_error(e.to_string()))?;
    if meta.len() > 16 * 1024 * 1024 {
        return Err(file_error("larger than 16 MiB".into()));
    }
    std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))
}

fn public_key(path: &std::path::Path) -> Result<PublicKey, GatewayError> {
    PublicKey::from_spki_pem(&read(path)?).map_err(|e| GatewayError::File {
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

/// Random lowercase hex of `bytes` bytes from the OS RNG; without one, nothing is issued.
/// Who a request counts against: an IPv4 address, or an IPv6 /64 (one subscriber's
/// allocation, which it can fill with addresses at will).
pub(crate) fn client_key(client: IpAddr) -> String {
    match client {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

pub(crate) fn random_hex(bytes: usize) -> Result<String, Refusal> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).map_err(|e| {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "rng_unavailable",
            format!("the OS random number generator failed: {e}"),
        )
    })?;
    Ok(hex::encode(buf))
}

impl Gateway {
    /// Builds a gateway from a configuration with the in-memory store.
    pub fn new(config: GatewayConfig) -> Result<Self, GatewayError> {
        let store = Arc::new(MemoryStore::new(
            config.max_pending,
            config.max_pending_per_client,
        ));
        Self::with_store(config, store)
    }

    /// Builds a gateway over `store` (`swarmdrop serve` passes its state file; the
    /// store should honour `max_pending` and `max_pending_per_client`).
    pub fn with_store(
        config: GatewayConfig,
        store: Arc<dyn IdentityStore>,
    ) -> Result<Self, GatewayError> {
        let durations = config.validate()?;
        let key_path = config.signing_key.clone();
        let key =
            SigningKey::from_pkcs8_pem(&read(&key_path)?).map_err(|e| GatewayError::File {
                path: key_path.display().to_string(),
                detail: e.to_string(),
            })?;
        let issuer = TokenIssuer::new(key, "swarmdrop-gateway");
        let mut accepted_keys = vec![issuer.public()];
        for path in &config.previous_keys {
            accepted_keys.push(public_key(path)?);
        }
        let mut allowlist = HashSet::new();
        if !config.allowlist.as_os_str().is_empty() {
            for (number, line) in read(&config.allowlist)?.lines().enumerate() {
                let line = line.split('#').next().unwrap_or_default().trim();
                if line.is_empty() {
                    continue;
                }
                let address = Address::parse(line).map_err(|e| GatewayError::File {
                    path: format!("{}:{}", config.allowlist.display(), number + 1),
                    detail: e.to_string(),
                })?;
                allowlist.insert(address);
            }
        }
        let mut services = Vec::new();
        for service in &config.services {
            services.push((
                service.name.clone(),
                public_key(&service.public_key)?,
                service.caps.clone(),
            ));
        }
        let rate = &config.rate_limit;
        let limits = Limits {
            ip: Limiter::new(
                Quota {
                    per_second: rate.per_ip_per_second,
                    burst: rate.per_ip_burst,
                },
                rate.max_tracked,
            ),
            identity: Limiter::new(
                Quota {
                    per_second: rate.per_identity_per_second,
                    burst: rate.per_identity_burst,
                },
                rate.max_tracked,
            ),
            risk: RiskTable::new(300 * NANOS, rate.max_tracked),
            load: LoadMeter::default(),
        };
        let policy = TrustPolicy {
            challenge_at: config.trust.challenge_at,
            deny_at: config.trust.deny_at,
            base_difficulty: config.trust.base_difficulty,
        };
        let (events, _) = broadcast::channel(1024);
        Ok(Self {
            store,
            config,
            durations,
            issuer,
            accepted_keys,
            allowlist,
            services,
            metrics: Metrics::default(),
            policy,
            metrics_hooks: Vec::new(),
            limits: Mutex::new(limits),
            epoch: Instant::now(),
            events,
        })
    }

    /// Adds `hook`'s text to every `/metrics` answer (a hosting process's own families:
    /// `swarmdrop serve`'s QoE counters).
    pub fn with_metrics_hook(mut self, hook: MetricsHook) -> Self {
        self.metrics_hooks.push(hook);
        self
    }

    /// Admits a request to a route of the hosting process that takes this gateway's
    /// tokens: the per-address limit and risk first (as every gateway endpoint), then
    /// the `Authorization: Bearer` token, verified offline against the accepted keys and
    /// the revocations. A token that is sent must be valid; a missing one is refused
    /// when `required`, else `None`. Refusals are counted under `endpoint`.
    pub async fn authenticate(
        &self,
        endpoint: &'static str,
        client: IpAddr,
        headers: &axum::http::HeaderMap,
        required: bool,
    ) -> Result<Option<Claims>, Refusal> {
        self.admit(endpoint, client)?;
        let Some(token) = crate::handlers::bearer(headers) else {
            if required {
                return Err(self.refuse(
                    endpoint,
                    client,
                    None,
                    Refusal::new(
                        StatusCode::UNAUTHORIZED,
                        "missing_token",
                        "send a token from this gateway as Authorization: Bearer",
                    ),
                ));
            }
            return Ok(None);
        };
        let claims = self
            .verifier()
            .await?
            .verify(token, self.now(), None)
            .map_err(|e| {
                let refusal = Refusal::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string());
                self.refuse(endpoint, client, None, refusal)
            })?;
        Ok(Some(claims))
    }

    /// Identity events as they happen (a bounded channel: slow readers miss events).
    pub fn subscribe(&self) -> broadcast::Receiver<IdentityEvent> {
        self.events.subscribe()
    }

    /// Wall-clock time.
    pub(crate) fn now(&self) -> UtcTime {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        UtcTime::saturating_from_unix(i64::try_from(seconds).unwrap_or(i64::MAX))
    }

    fn mono(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn limits(&self) -> std::sync::MutexGuard<'_, Limits> {
        self.limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a decision and publishes its event.
    pub(crate) fn emit(
        &self,
        endpoint: &'static str,
        client: IpAddr,
        subject: Option<String>,
        action: &'static str,
        reason: &'static str,
    ) {
        self.metrics.decision(endpoint, action, reason);
        let _ = self.events.send(IdentityEvent {
            at: self.now(),
            endpoint,
            client: client.to_string(),
            subject,
            action,
            reason,
        });
    }

    /// Refuses and records it.
    pub(crate) fn refuse(
        &self,
        endpoint: &'static str,
        client: IpAddr,
        subject: Option<String>,
        refusal: Refusal,
    ) -> Refusal {
        let action = match refusal.status {
            StatusCode::TOO_MANY_REQUESTS => "throttle",
            StatusCode::FORBIDDEN if refusal.code == "risk_deny" => "deny",
            _ if refusal.code == "challenge_required" => "challenge",
            _ => "refuse",
        };
        self.emit(endpoint, client, subject, action, refusal.code);
        refusal
    }

    /// Every request's first step: per-address rate limit and risk. Returns the risk
    /// decision for the caller to act on (allow, or challenge).
    pub(crate) fn admit(
        &self,
        endpoint: &'static str,
        client: IpAddr,
    ) -> Result<Decision, Refusal> {
        let now = self.mono();
        let (decision, reason) = {
            let mut limits = self.limits();
            limits.load.tick(now);
            let rate = limits.ip.check(&client, now);
            if rate.is_err() {
                limits.risk.record(&client, now, |s| s.rate_limited += 1);
            }
            let score = risk_score(&limits.risk.signals(&client, now));
            let load = limits.load.rate() / self.config.trust.nominal_rate.max(1.0);
            self.policy.decide(score, rate, load)
        };
        match decision {
            Decision::Throttle {
                retry_after_seconds,
            } => Err(self.refuse(
                endpoint,
                client,
                None,
                Refusal {
                    retry_after: Some(retry_after_seconds),
                    ..Refusal::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        reason,
                        format!(
                            "too many requests from {client}; retry in {retry_after_seconds} s"
                        ),
                    )
                },
            )),
            Decision::Deny => Err(self.refuse(
                endpoint,
                client,
                None,
                Refusal::new(
                    StatusCode::FORBIDDEN,
                    reason,
                    "too many failed attempts from this address; try later",
                ),
            )),
            other => Ok(other),
        }
    }

    /// Per-identity rate limit.
    pub(crate) fn admit_identity(
        &self,
        endpoint: &'static str,
        client: IpAddr,
        identity: &str,
    ) -> Result<(), Refusal> {
        let now = self.mono();
        let rate = self.limits().identity.check(&identity.to_owned(), now);
        rate.map_err(|retry| {
            self.refuse(
                endpoint,
                client,
                Some(identity.to_owned()),
                Refusal {
                    retry_after: Some(retry.seconds()),
                    ..Refusal::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        format!("too many requests for {identity}"),
                    )
                },
            )
        })
    }

    /// Records a signal against a client.
    pub(crate) fn signal(&self, client: IpAddr, update: impl FnOnce(&mut Signals)) {
        let now = self.mono();
        self.limits().risk.record(&client, now, update);
    }

    /// The current load factor and a client's risk (for challenge difficulty).
    pub(crate) fn load_and_risk(&self, client: IpAddr) -> (f64, u32) {
        let now = self.mono();
        let limits = self.limits();
        (
            limits.load.rate() / self.config.trust.nominal_rate.max(1.0),
            risk_score(&limits.risk.signals(&client, now)),
        )
    }

    /// Issues a token and the JSON answer for it.
    pub(crate) fn issue(
        &self,
        endpoint: &'static str,
        client: IpAddr,
        sub: String,
        tier: Tier,
        caps: Vec<String>,
    ) -> Result<Value, Refusal> {
        let (token, claims) = self.issuer.issue(
            random_hex(16)?,
            sub.clone(),
            &self.config.drop,
            self.config.classes.clone(),
            tier,
            caps,
            self.now(),
            self.durations.token_lifetime,
        );
        self.metrics.token(tier.as_str());
        self.emit(endpoint, client, Some(sub), "allow", "ok");
        let pass = self.issuer.issue_tracker_pass(&claims);
        Ok(token_answer(&token, &pass, &claims, self.issuer.kid()))
    }

    /// The next token of `previous`'s session, and the JSON answer for it.
    pub(crate) fn reissue(
        &self,
        endpoint: &'static str,
        client: IpAddr,
        previous: &Claims,
    ) -> Result<Value, Refusal> {
        let (token, claims) = self
            .issuer
            .refresh(
                previous,
                self.now(),
                self.durations.token_lifetime,
                self.durations.session_lifetime,
            )
            .map_err(|e| {
                let refusal = Refusal::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string());
                self.refuse(endpoint, client, Some(previous.sub.clone()), refusal)
            })?;
        self.metrics.token(claims.tier.as_str());
        self.emit(endpoint, client, Some(claims.sub.clone()), "allow", "ok");
        let pass = self.issuer.issue_tracker_pass(&claims);
        Ok(token_answer(&token, &pass, &claims, self.issuer.kid()))
    }

    /// A verifier for tokens this gateway issued (any accepted key), with revocations.
    pub(crate) async fn verifier(&self) -> Result<TokenVerifier, Refusal> {
        let (_, revoked) = self.store.revocations(self.now()).await.map_err(|e| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            )
        })?;
        let mut verifier = TokenVerifier::new()
            .for_drop(&self.config.drop)
            .with_leeway(self.durations.clock_skew)
            .with_revocations(revoked);
        for key in &self.accepted_keys {
            verifier = verifier.with_key(*key);
        }
        Ok(verifier)
    }

    /// The keys verifiers accept.
    pub(crate) fn keys_answer(&self) -> Value {
        let keys: Vec<Value> = self
            .accepted_keys
            .iter()
            .map(|k| json!({ "kid": key_id(k), "alg": "ed25519", "public_key": k.to_hex(), "format": "paseto.v4.public" }))
            .collect();
        json!({ "keys": keys })
    }

    /// Gauges for /metrics.
    pub(crate) async fn gauges(&self) -> Gauges {
        let pending = self.store.pending().await.unwrap_or(0);
        let revoked = self
            .store
            .revocations(self.now())
            .await
            .map_or(0, |(_, r)| r.len());
        let limits = self.limits();
        Gauges {
            pending,
            ip_limiter: limits.ip.len(),
            identity_limiter: limits.identity.len(),
            risk_table: limits.risk.len(),
            revoked,
            request_rate: limits.load.rate(),
        }
    }
}

/// `{"token", "tracker_pass", "expires_at", "claims"}` with the key id among the claims.
/// The pass is the compact form for UDP tracker URLs (see `token::pass`).
pub(crate) fn token_answer(token: &str, pass: &str, claims: &Claims, kid: &str) -> Value {
    let mut claims_json = serde_json::to_value(claims).unwrap_or(Value::Null);
    claims_json["kid"] = Value::String(kid.to_owned());
    json!({
        "token": token,
        "tracker_pass": pass,
        "expires_at": claims.exp.to_string(),
        "claims": claims_json,
    })
}

#[cfg(test)]
mod client_key_tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_slash_64() {
        let key = |text: &str| client_key(text.parse().unwrap());
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
    }
}
