//! The tracker's configuration file; [`DEFAULT_CONFIG`] documents every field and is
//! what `swarmdrop tracker --print-config` prints.

use serde::Deserialize;

/// Every setting with its default and meaning.
pub const DEFAULT_CONFIG: &str = r#"# swarmdrop tracker configuration. Flags --http, --udp, --open and --infohash override.

# Listen addresses; "" turns a protocol off. Port 0 picks a free port; each listener
# prints "listening tracker-http ADDR" / "listening tracker-udp ADDR" on stderr.
http = "127.0.0.1:6969"
udp = "127.0.0.1:6969"
# Serve any info hash (an open tracker). Otherwise only known_infohashes.
open = false
# Info hashes (40 hex digits) this tracker serves.
known_infohashes = []
# Seconds between announces we ask for, and the least we accept.
interval = 1800
min_interval = 60
# Seconds a peer stays listed without announcing again.
peer_ttl = 2700
# Peers returned when a client does not say, and the most we ever return.
numwant_default = 50
numwant_max = 200
# Bounds: swarms and peers per swarm (per tracker), and lock shards for concurrency.
max_swarms = 100000
max_peers_per_swarm = 50000
# Most peers in one swarm from one host (an IPv4 address or an IPv6 /64), so one host
# cannot fill a swarm by announcing many ports. High enough for a carrier-grade NAT's
# share of a swarm; 0 turns it off.
max_peers_per_address = 64
shards = 16

[rate_limit]
# Announces and scrapes per client address: sustained per second, and burst.
per_ip_per_second = 10.0
per_ip_burst = 20
max_tracked = 100000

# A private drop: announces must carry a gateway token, at /announce/<token> (HTTP) or
# as BEP 41 URL data "/announce/<token>" (UDP). Empty drop: no token needed.
[private]
drop = ""
# The gateway's public keys (SPKI PEM files); several during a key rotation.
gateway_keys = []
# Clock difference tolerated on token times, seconds.
leeway = 30
# The gateway's GET /auth/revocations (http://host:port/auth/revocations), polled every
# revocations_every seconds so revoked tokens and their passes stop announcing. Empty:
# only expiry ends a token. A failed poll keeps the last list and is counted.
revocations_url = ""
revocations_every = 15

# Every event (announce, completed, stopped, scrape, refused) is POSTed here as JSON,
# signed the Standard Webhooks way (webhook-id, webhook-timestamp, webhook-signature:
# v1,base64(HMAC-SHA256(secret, "id.timestamp.body")). Empty url: no webhook.
[webhook]
url = ""
secret = ""
# Events waiting for delivery; more are dropped and counted.
queue = 10000
# Attempts per event, with doubling backoff from 100 ms.
max_attempts = 5
"#;

/// The configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerConfig {
    /// HTTP listen address.
    pub http: String,
    /// UDP listen address.
    pub udp: String,
    /// Serve any info hash.
    pub open: bool,
    /// Info hashes served.
    pub known_infohashes: Vec<String>,
    /// Announce interval.
    pub interval: u32,
    /// Minimum interval.
    pub min_interval: u32,
    /// Peer lifetime.
    pub peer_ttl: u64,
    /// Default numwant.
    pub numwant_default: u32,
    /// Numwant cap.
    pub numwant_max: u32,
    /// Swarm cap.
    pub max_swarms: usize,
    /// Peers-per-swarm cap.
    pub max_peers_per_swarm: usize,
    /// Peers per swarm from one IPv4 address or IPv6 /64 (0: no cap).
    pub max_peers_per_address: usize,
    /// Lock shards.
    pub shards: usize,
    /// Rate limit.
    pub rate_limit: RateLimit,
    /// Private drop.
    pub private: Private,
    /// Webhook.
    pub webhook: Webhook,
}

/// `[rate_limit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Rate.
    pub per_ip_per_second: f64,
    /// Burst.
    pub per_ip_burst: u32,
    /// Table bound.
    pub max_tracked: usize,
}

/// `[private]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Private {
    /// Drop name.
    pub drop: String,
    /// Gateway public keys.
    pub gateway_keys: Vec<std::path::PathBuf>,
    /// Token leeway.
    pub leeway: u64,
    /// The gateway's revocation list URL (empty: none).
    pub revocations_url: String,
    /// Seconds between polls.
    pub revocations_every: u64,
}

/// `[webhook]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Target URL (http://).
    pub url: String,
    /// HMAC secret.
    pub secret: String,
    /// Queue bound.
    pub queue: usize,
    /// Attempts per event.
    pub max_attempts: u32,
}

impl TrackerConfig {
    /// Parses `text` over the defaults; errors name `file`.
    pub fn parse(text: &str, file: &str) -> Result<Self, String> {
        let table = swarmdrop_manifest::config::over_defaults(DEFAULT_CONFIG, text, file)?;
        let config = TrackerConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| format!("{file}: {e}"))?;
        if config.shards == 0 || config.max_swarms == 0 || config.max_peers_per_swarm == 0 {
            return Err(format!(
                "{file}: shards, max_swarms and max_peers_per_swarm must be at least 1"
            ));
        }
        if config.max_peers_per_swarm >= 1 << 31 {
            return Err(format!(
                "{file}: max_peers_per_swarm must be below 2147483648"
            ));
        }
        if config.rate_limit.per_ip_per_second.is_nan()
            || config.rate_limit.per_ip_per_second <= 0.0
            || config.rate_limit.per_ip_burst == 0
        {
            return Err(format!(
                "{file}: rate_limit rate and burst must be positive"
            ));
        }
        if !config.private.revocations_url.is_empty() {
            swarmdrop_httpc::HttpUrl::parse(&config.private.revocations_url)
                .map_err(|e| format!("{file}: private.revocations_url: {e}"))?;
            if config.private.revocations_every == 0 {
                return Err(format!(
                    "{file}: private.revocations_every must be at least 1 second"
                ));
            }
        }
        if !config.private.drop.is_empty() && config.private.gateway_keys.is_empty() {
            return Err(format!(
                "{file}: a private drop needs private.gateway_keys to check tokens with"
            ));
        }
        if !config.webhook.url.is_empty() && !config.webhook.url.starts_with("http://") {
            return Err(format!("{file}: webhook.url must be an http:// URL"));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_typos_are_named() {
        let config = TrackerConfig::parse("", "t.toml").unwrap();
        assert_eq!((config.interval, config.shards), (1800, 16));
        let err = TrackerConfig::parse("intreval = 5", "t.toml").unwrap_err();
        assert!(err.contains("intreval"), "{err}");
        assert!(TrackerConfig::parse("[private]\ndrop = \"x\"", "t.toml")
            .unwrap_err()
            .contains("gateway_keys"));
        let err = TrackerConfig::parse(
            "[private]\nrevocations_url = \"https://gw/auth/revocations\"",
            "t.toml",
        )
        .unwrap_err();
        assert!(
            err.contains("revocations_url") && err.contains("http://"),
            "{err}"
        );
        let err = TrackerConfig::parse("max_peers_per_swarm = 2147483648", "t.toml").unwrap_err();
        assert!(err.contains("max_peers_per_swarm"), "{err}");
    }
}
