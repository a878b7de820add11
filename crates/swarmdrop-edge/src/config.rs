//! `swarmdrop edge --config FILE`: TOML over documented defaults.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use swarmdrop_manifest::time::parse_duration;

/// The defaults, documented; `swarmdrop edge --print-config` prints this.
pub const DEFAULT_CONFIG: &str = r#"# swarmdrop edge configuration. Every field is optional; these are the defaults.

# Where viewers and webseed clients connect.
listen = "127.0.0.1:8090"
# The origin: base URL of a published directory (swarmdrop pack output). http:// only.
origin = ""
# The edge's own directory: the disk tier (objects/), verified metadata (metadata/) and
# torrents (torrents/). Nothing else is ever read or written.
cache_dir = ""
# The drop's root.json, obtained out of band. Empty: trust the origin's 1.root.json on
# first use (said on stderr), as `swarmdrop verify` does without --root.
root = ""
# Byte bounds of the two tiers, and the largest object the memory tier takes (hot
# objects served from memory are sliced, never copied).
memory_bytes = 268435456
disk_bytes = 10737418240
memory_object_max = 67108864
# Immutable entries are fresh this long (a drop's lifetime). Past it a request refetches;
# if the origin fails, the stale copy is served for stale_if_error more, then dropped.
ttl = "6h"
stale_if_error = "1h"
# How long timestamp.json and root.json are served before the edge asks the origin again.
timestamp_ttl = "5s"
# Objects up to this many bytes are verified whole before any byte is sent; larger ones
# stream as they arrive and are cut short on a digest mismatch.
verify_before_send = 4194304
# Gateway public keys (SPKI PEM files): viewer tokens for a private drop, service tokens
# for /admin. Several during a key rotation.
gateway_keys = []
# Append every event as a JSON line to this file. Empty: off.
events_log = ""

[limits]
# A client must send its whole request head within this time, or is disconnected (idle
# keep-alive connections too).
header_timeout = "10s"
# Connections served at once; more wait in the kernel's accept queue.
max_connections = 10000
# Origin calls: to connect and get the response head, and for a whole body.
origin_timeout = "10s"
origin_body_timeout = "10m"
# Bytes per second the edge sends, all clients together (0: no limit). Set it a little
# under the uplink's rate: responses then queue here, most urgent first by each request's
# RFC 9218 Priority header (u=0 first, u=7 background, 3 without one), rather than in
# the network, where a checkout page waits behind every bulk range in flight.
upload_bytes_per_second = 0

# A private drop: every request needs a viewer token from the gateway, as
# "Authorization: Bearer <token>" or in the path, /t/<token>/... (webseeds cannot send
# headers). The token must grant the target's class. Empty drop: open.
[private]
drop = ""
# Clock difference tolerated on token times, seconds.
leeway = 30

# /admin/prewarm, /admin/purge and /admin/status need a gateway service token carrying
# this capability.
[admin]
cap = "edge-admin"
"#;

/// The configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Listen address.
    pub listen: String,
    /// Origin base URL.
    pub origin: String,
    /// Cache directory.
    pub cache_dir: PathBuf,
    /// Trusted root (empty: trust on first use).
    pub root: PathBuf,
    /// Memory tier bytes.
    pub memory_bytes: u64,
    /// Disk tier bytes.
    pub disk_bytes: u64,
    /// Largest object in memory.
    pub memory_object_max: u64,
    /// Freshness of immutable entries.
    pub ttl: String,
    /// Extra life when the origin fails.
    pub stale_if_error: String,
    /// Freshness of timestamp.json.
    pub timestamp_ttl: String,
    /// Verify-whole threshold.
    pub verify_before_send: u64,
    /// Gateway public keys.
    pub gateway_keys: Vec<PathBuf>,
    /// Event log file.
    pub events_log: PathBuf,
    /// Timeouts.
    pub limits: Limits,
    /// Private drop.
    pub private: Private,
    /// Admin API.
    pub admin: Admin,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Request head deadline.
    pub header_timeout: String,
    /// Concurrent connections.
    pub max_connections: usize,
    /// Origin head deadline.
    pub origin_timeout: String,
    /// Origin body deadline.
    pub origin_body_timeout: String,
    /// Upload pacing, bytes per second (0: none).
    pub upload_bytes_per_second: u64,
}

/// `[private]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Private {
    /// Drop name (empty: open).
    pub drop: String,
    /// Token leeway, seconds.
    pub leeway: u64,
}

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Capability an admin token must carry.
    pub cap: String,
}

/// The durations of a checked config.
#[derive(Debug, Clone, Copy)]
pub struct Durations {
    /// Freshness of immutable entries.
    pub ttl: Duration,
    /// Extra life when the origin fails.
    pub stale_if_error: Duration,
    /// Freshness of timestamp.json.
    pub timestamp_ttl: Duration,
    /// Request head deadline.
    pub header_timeout: Duration,
    /// Origin head deadline.
    pub origin_timeout: Duration,
    /// Origin body deadline.
    pub origin_body_timeout: Duration,
}

impl EdgeConfig {
    /// Parses `text` over the defaults; errors name `file` and the field.
    pub fn parse(text: &str, file: &str) -> Result<Self, String> {
        let table = swarmdrop_manifest::config::over_defaults(DEFAULT_CONFIG, text, file)?;
        let config = EdgeConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| format!("{file}: {e}"))?;
        config.durations().map_err(|e| format!("{file}: {e}"))?;
        if config.memory_bytes == 0 || config.disk_bytes == 0 {
            return Err(format!(
                "{file}: memory_bytes and disk_bytes must be positive"
            ));
        }
        if !config.private.drop.is_empty() && config.gateway_keys.is_empty() {
            return Err(format!(
                "{file}: a private drop needs gateway_keys to check viewer tokens with"
            ));
        }
        Ok(config)
    }

    /// The duration fields, checked.
    pub fn durations(&self) -> Result<Durations, String> {
        let d = |name: &str, text: &str| {
            parse_duration(text)
                .map(Duration::from_secs)
                .map_err(|e| format!("{name}: {e}"))
        };
        let durations = Durations {
            ttl: d("ttl", &self.ttl)?,
            stale_if_error: d("stale_if_error", &self.stale_if_error)?,
            timestamp_ttl: d("timestamp_ttl", &self.timestamp_ttl)?,
            header_timeout: d("limits.header_timeout", &self.limits.header_timeout)?,
            origin_timeout: d("limits.origin_timeout", &self.limits.origin_timeout)?,
            origin_body_timeout: d(
                "limits.origin_body_timeout",
                &self.limits.origin_body_timeout,
            )?,
        };
        if durations.ttl.is_zero() || durations.header_timeout.is_zero() {
            return Err("ttl and limits.header_timeout must be at least 1s".into());
        }
        Ok(durations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_mistakes_are_named() {
        let config = EdgeConfig::parse("", "e.toml").unwrap();
        assert_eq!(
            config.durations().unwrap().timestamp_ttl,
            Duration::from_secs(5)
        );
        assert_eq!(config.admin.cap, "edge-admin");
        let err = EdgeConfig::parse("memroy_bytes = 1", "e.toml").unwrap_err();
        assert!(err.contains("memroy_bytes"), "{err}");
        let err = EdgeConfig::parse("ttl = \"soon\"", "e.toml").unwrap_err();
        assert!(err.contains("ttl"), "{err}");
        let err = EdgeConfig::parse("[private]\ndrop = \"x\"", "e.toml").unwrap_err();
        assert!(err.contains("gateway_keys"), "{err}");
    }
}
