//! The tracker shared by both listeners: admission (rate limit, token, known info
//! hash), the sharded swarm store, metrics and events.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use serde::Serialize;
use swarmdrop_identity::gcra::{Limiter, Quota};
use swarmdrop_identity::token::TokenVerifier;
use swarmdrop_manifest::keys::PublicKey;
use swarmdrop_manifest::{InfoHash, UtcTime};
use tokio::sync::mpsc;

use super::config::TrackerConfig;
use super::metrics::{Gauges, Metrics};
use crate::proto::connection::ConnectionIds;
use crate::proto::swarm::{Limits, PeerAnnounce, PeerChoice, Swarms, BYTES_PER_PEER};
use crate::proto::udp::{AnnounceEvent, ScrapeStats};

/// A typed record of something the tracker did, for hooks and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackerEvent {
    /// `announce`, `completed`, `stopped`, `scrape` or `refused`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Hex info hash (empty when the request had none we could read).
    pub info_hash: String,
    /// `http` or `udp`.
    pub protocol: &'static str,
    /// When.
    pub at: UtcTime,
    /// The peer (`ip:port`).
    pub peer: String,
    /// The announce event (`started`, …), for announces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'static str>,
    /// Bytes left, for announces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left: Option<u64>,
    /// The token's subject, for private drops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The reason code, for refusals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// A refused request: a reason code and the text for `failure reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable snake_case code (also the metric label).
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

/// What an announce answers.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Peers.
    pub peers: Vec<SocketAddr>,
    /// Counts.
    pub stats: ScrapeStats,
}

/// A tracker that cannot start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TrackerError(pub String);

/// The shared tracker.
pub struct Tracker {
    pub(crate) config: TrackerConfig,
    known: HashSet<InfoHash>,
    shards: Vec<Mutex<Swarms>>,
    limiter: Mutex<Limiter<IpAddr>>,
    /// Replaced whole when the revocation list changes; announces take a cheap read.
    verifier: RwLock<Option<Arc<TokenVerifier>>>,
    pub(crate) ids: ConnectionIds,
    pub(crate) metrics: Metrics,
    events: Option<mpsc::Sender<TrackerEvent>>,
    epoch: Instant,
}

/// One announce, whichever protocol carried it.
#[derive(Debug, Clone)]
pub struct AnnounceRequest<'a> {
    /// `http` or `udp` (UDP answers carry only peers of the asker's address family).
    pub protocol: &'static str,
    /// Source address with the announced port.
    pub peer: SocketAddr,
    /// Swarm.
    pub info_hash: InfoHash,
    /// Bytes left.
    pub left: u64,
    /// Event.
    pub event: AnnounceEvent,
    /// Peers wanted, if said.
    pub numwant: Option<u32>,
    /// The token from the URL, for private drops.
    pub token: Option<&'a str>,
}

/// A per-thread xorshift generator seeded once from the OS: peer selection needs
/// spread, not secrecy, and a system call per announce would cost more than the rest.
fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut bytes = [0u8; 8];
            let _ = getrandom::getrandom(&mut bytes);
            u64::from_le_bytes(bytes) | 1
        });
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    })
}

impl Tracker {
    /// A tracker for `config`; events go to `events` when given.
    pub fn new(
        config: TrackerConfig,
        events: Option<mpsc::Sender<TrackerEvent>>,
    ) -> Result<Self, TrackerError> {
        let known = config
            .known_infohashes
            .iter()
            .map(|h| {
                InfoHash::from_hex(h).map_err(|e| TrackerError(format!("known_infohashes: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let verifier = if config.private.drop.is_empty() {
            None
        } else {
            let mut verifier = TokenVerifier::new()
                .for_drop(&config.private.drop)
                .with_leeway(config.private.leeway);
            for path in &config.private.gateway_keys {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| TrackerError(format!("{}: {e}", path.display())))?;
                verifier = verifier.with_key(
                    PublicKey::from_spki_pem(&pem)
                        .map_err(|e| TrackerError(format!("{}: {e}", path.display())))?,
                );
            }
            Some(Arc::new(verifier))
        };
        let shard_limits = Limits {
            max_swarms: config.max_swarms.div_ceil(config.shards).max(1),
            max_peers_per_swarm: config.max_peers_per_swarm,
            max_peers_per_origin: config.max_peers_per_address,
            peer_ttl: config.peer_ttl,
        };
        let mut key = [0u8; 16];
        getrandom::getrandom(&mut key)
            .map_err(|e| TrackerError(format!("the OS random number generator failed: {e}")))?;
        let rate = &config.rate_limit;
        Ok(Self {
            shards: (0..config.shards)
                .map(|_| Mutex::new(Swarms::new(shard_limits)))
                .collect(),
            limiter: Mutex::new(Limiter::new(
                Quota {
                    per_second: rate.per_ip_per_second,
                    burst: rate.per_ip_burst,
                },
                rate.max_tracked,
            )),
            known,
            verifier: RwLock::new(verifier),
            ids: ConnectionIds::new(key),
            metrics: Metrics::default(),
            events,
            epoch: Instant::now(),
            config,
        })
    }

    pub(crate) fn now(&self) -> UtcTime {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        UtcTime::saturating_from_unix(i64::try_from(seconds).unwrap_or(i64::MAX))
    }

    fn shard(&self, info_hash: &InfoHash) -> std::sync::MutexGuard<'_, Swarms> {
        let index = usize::from(info_hash.0[0]) % self.shards.len();
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes an event (built only when someone listens); a full queue drops it
    /// and counts the drop.
    pub(crate) fn emit(&self, event: impl FnOnce() -> TrackerEvent) {
        if let Some(events) = &self.events {
            if events.try_send(event()).is_err() {
                self.metrics.events_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts and publishes a refusal.
    pub(crate) fn refuse(
        &self,
        protocol: &'static str,
        peer: SocketAddr,
        info_hash: Option<&InfoHash>,
        code: &'static str,
        message: String,
    ) -> Refusal {
        self.metrics.refusal(protocol, code);
        self.emit(|| TrackerEvent {
            kind: "refused",
            info_hash: info_hash.map(InfoHash::to_hex).unwrap_or_default(),
            protocol,
            at: self.now(),
            peer: peer.to_string(),
            event: None,
            left: None,
            subject: None,
            reason: Some(code),
        });
        Refusal { code, message }
    }

    /// Rate limit, token and known-hash checks shared by announce and scrape.
    fn admit(
        &self,
        protocol: &'static str,
        peer: SocketAddr,
        info_hash: Option<&InfoHash>,
        token: Option<&str>,
        now: UtcTime,
    ) -> Result<Option<String>, Refusal> {
        let since_start = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let limited = self
            .limiter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .check(&peer.ip(), since_start);
        if let Err(retry) = limited {
            return Err(self.refuse(
                protocol,
                peer,
                info_hash,
                "rate_limited",
                format!("too many requests; retry in {} s", retry.seconds()),
            ));
        }
        let verifier = self
            .verifier
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let subject = match verifier {
            None => None,
            Some(verifier) => {
                let token = token.filter(|t| !t.is_empty()).ok_or_else(|| {
                    self.refuse(protocol, peer, info_hash, "token_missing", "token missing: this drop is private; announce at /announce/<token> with a token from the gateway".into())
                })?;
                let subject = verifier.verify_for_tracker(token, now).map_err(|e| {
                    self.refuse(
                        protocol,
                        peer,
                        info_hash,
                        e.code(),
                        format!("token refused: {}: {e}", e.code()),
                    )
                })?;
                Some(subject)
            }
        };
        if let Some(hash) = info_hash {
            if !self.config.open && !self.known.contains(hash) {
                return Err(self.refuse(
                    protocol,
                    peer,
                    info_hash,
                    "unknown_infohash",
                    format!(
                        "unknown infohash {hash}: this tracker serves only its drop's torrents"
                    ),
                ));
            }
        }
        Ok(subject)
    }

    /// Handles an announce, returning the chosen peers in a new vector.
    pub fn announce(&self, request: &AnnounceRequest<'_>) -> Result<Answer, Refusal> {
        let mut peers = Vec::new();
        let stats = self.announce_into(request, &mut peers)?;
        Ok(Answer { peers, stats })
    }

    /// Handles an announce, appending the chosen peers to `peers` (a buffer the caller
    /// reuses, so the hot path allocates nothing per request).
    pub fn announce_into(
        &self,
        request: &AnnounceRequest<'_>,
        peers: &mut Vec<SocketAddr>,
    ) -> Result<ScrapeStats, Refusal> {
        let now = self.now();
        let subject = self.admit(
            request.protocol,
            request.peer,
            Some(&request.info_hash),
            request.token,
            now,
        )?;
        let want = request
            .numwant
            .unwrap_or(self.config.numwant_default)
            .min(self.config.numwant_max) as usize;
        let peer = PeerAnnounce {
            addr: request.peer,
            left: request.left,
            event: request.event,
        };
        let choice = PeerChoice {
            want,
            random: random_u64(),
            same_family_only: request.protocol == "udp",
        };
        let unix = u64::try_from(now.unix()).unwrap_or(0);
        let outcome = self
            .shard(&request.info_hash)
            .announce(unix, request.info_hash, peer, choice, peers)
            .map_err(|full| {
                self.refuse(
                    request.protocol,
                    request.peer,
                    Some(&request.info_hash),
                    full.code(),
                    full.to_string(),
                )
            })?;
        self.metrics
            .announce(request.protocol, request.event.as_str());
        let kind = match request.event {
            AnnounceEvent::Stopped => "stopped",
            _ if outcome.completed => "completed",
            _ => "announce",
        };
        self.emit(|| TrackerEvent {
            kind,
            info_hash: request.info_hash.to_hex(),
            protocol: request.protocol,
            at: now,
            peer: request.peer.to_string(),
            event: Some(request.event.as_str()),
            left: Some(request.left),
            subject,
            reason: None,
        });
        Ok(outcome.stats)
    }

    /// Handles a scrape.
    pub fn scrape(
        &self,
        protocol: &'static str,
        peer: SocketAddr,
        hashes: &[InfoHash],
        token: Option<&str>,
    ) -> Result<Vec<ScrapeStats>, Refusal> {
        let now = self.now();
        self.admit(protocol, peer, None, token, now)?;
        self.metrics.scrape(protocol);
        let stats = hashes
            .iter()
            .map(|h| {
                if self.config.open || self.known.contains(h) {
                    self.shard(h).scrape(h)
                } else {
                    ScrapeStats::default()
                }
            })
            .collect();
        self.emit(|| TrackerEvent {
            kind: "scrape",
            info_hash: hashes.first().map(InfoHash::to_hex).unwrap_or_default(),
            protocol,
            at: now,
            peer: peer.to_string(),
            event: None,
            left: None,
            subject: None,
            reason: None,
        });
        Ok(stats)
    }

    /// Puts a new revocation list in force (a private drop only; the rest of the
    /// verifier stays as configured).
    pub fn set_revocations(&self, revoked: Vec<String>) {
        let mut verifier = self
            .verifier
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(current) = verifier.as_ref() {
            self.metrics
                .revoked
                .store(revoked.len() as u64, Ordering::Relaxed);
            *verifier = Some(Arc::new(current.as_ref().clone().with_revocations(revoked)));
        }
    }

    /// Drops expired peers everywhere (the server calls this periodically).
    pub fn expire(&self) {
        let now = u64::try_from(self.now().unix()).unwrap_or(0);
        for shard in &self.shards {
            shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .expire(now);
        }
    }

    /// Gauges for /metrics.
    pub fn gauges(&self) -> Gauges {
        let (mut swarms, mut peers) = (0, 0);
        for shard in &self.shards {
            let shard = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            swarms += shard.swarm_count();
            peers += shard.peer_count();
        }
        let limiter = self
            .limiter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        Gauges {
            swarms,
            peers,
            bytes_per_peer: BYTES_PER_PEER,
            limiter,
        }
    }
}
