//! The gateway's configuration file. Every field is documented here and in
//! [`DEFAULT_CONFIG`], which `swarmdrop gateway --print-config` prints; a test checks
//! that the two agree.

use std::path::PathBuf;

use serde::Deserialize;
use swarmdrop_manifest::time::parse_duration;

/// `swarmdrop gateway --print-config`: every setting with its default and meaning.
pub const DEFAULT_CONFIG: &str = r#"# swarmdrop gateway configuration. Flags (--listen, --domain, --uri, --chain-id,
# --signing-key, --drop) override the fields of the same name.

# Address to listen on. Port 0 picks a free port; the chosen address is printed as
# "listening gateway ADDR" on stderr.
listen = "127.0.0.1:8780"
# The SIWE domain (host[:port]) messages must name, and the URI they must sign in to.
domain = ""
uri = ""
# EIP-155 chain id messages must carry.
chain_id = 1
# The drop tokens admit to.
drop = ""
# ed25519 private key (PKCS#8 PEM, as `swarmdrop keygen` writes) that signs tokens.
signing_key = ""
# Further public keys (SPKI PEM) whose tokens are still accepted on refresh: the
# previous signing key during a rotation.
previous_keys = []
# Token lifetime; clients refresh before it ends.
token_lifetime = "10m"
# How long one sign-in lasts through refreshes (at least token_lifetime). Refreshed tokens
# keep the session id (jti) and sign-in time, so revoking a jti ends the whole session.
session_lifetime = "24h"
# Asset classes a token grants.
classes = ["checkout", "keyframe", "segment", "bulk", "metadata"]
# Let viewers without a wallet in after proof-of-work.
allow_anonymous = false
# File of 0x addresses (one per line, # comments) that get tier "allowlisted" and
# capability "mint". Empty: no allowlist.
allowlist = ""
# Bearer token for POST /admin/revoke. Empty: revocation over HTTP is off.
admin_token = ""
# Clock difference tolerated on SIWE times and token times.
clock_skew = "60s"
# How long an issued nonce or challenge stays usable, and how many may be pending.
nonce_lifetime = "5m"
max_pending = 100000
# Of those, how many one client (an IPv4 address or an IPv6 /64) may hold, so a few
# addresses cannot exhaust the pool for everyone. Enough for a NAT's worth of sign-ins.
max_pending_per_client = 256
# Refuse SIWE messages issued longer ago than this.
max_message_age = "10m"

[rate_limit]
# Per client address: sustained requests per second and burst.
per_ip_per_second = 20.0
per_ip_burst = 40
# Per signing identity (address or subject).
per_identity_per_second = 5.0
per_identity_burst = 10
# Most clients remembered by each limiter and by the risk table.
max_tracked = 100000

[trust]
# Risk score (0-100) from which sign-in needs proof-of-work, and from which it is refused.
challenge_at = 30
deny_at = 90
# Proof-of-work difficulty in leading zero bits; it rises with load and risk.
base_difficulty = 12
# Requests per second the gateway considers normal load (difficulty rises above it).
nominal_rate = 200.0

# Edges and seeders: each signs "swarmdrop-service-auth\n<drop>\n<name>\n<nonce>" with
# its ed25519 key to get a service token.
# [[service]]
# name = "edge-fra-1"
# public_key = "/etc/swarmdrop/edge-fra-1.pub"
# caps = ["edge"]
"#;

/// The configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Listen address.
    pub listen: String,
    /// SIWE domain.
    pub domain: String,
    /// SIWE URI.
    pub uri: String,
    /// Chain id.
    pub chain_id: u64,
    /// Drop name.
    pub drop: String,
    /// Signing key file.
    pub signing_key: PathBuf,
    /// Previous public keys still accepted.
    pub previous_keys: Vec<PathBuf>,
    /// Token lifetime.
    pub token_lifetime: String,
    /// Session lifetime (duration text).
    pub session_lifetime: String,
    /// Classes granted.
    pub classes: Vec<String>,
    /// Anonymous viewers allowed.
    pub allow_anonymous: bool,
    /// Allowlist file.
    pub allowlist: PathBuf,
    /// Admin bearer token.
    pub admin_token: String,
    /// Clock skew.
    pub clock_skew: String,
    /// Nonce and challenge lifetime.
    pub nonce_lifetime: String,
    /// Most pending nonces and challenges.
    pub max_pending: usize,
    /// Pending nonces and challenges per client.
    pub max_pending_per_client: usize,
    /// Oldest SIWE message accepted.
    pub max_message_age: String,
    /// Rate limits.
    pub rate_limit: RateLimitConfig,
    /// Trust thresholds.
    pub trust: TrustConfig,
    /// Service identities.
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceConfig>,
}

/// `[rate_limit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Per-address rate.
    pub per_ip_per_second: f64,
    /// Per-address burst.
    pub per_ip_burst: u32,
    /// Per-identity rate.
    pub per_identity_per_second: f64,
    /// Per-identity burst.
    pub per_identity_burst: u32,
    /// Table bound.
    pub max_tracked: usize,
}

/// `[trust]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// Challenge threshold.
    pub challenge_at: u32,
    /// Deny threshold.
    pub deny_at: u32,
    /// Base difficulty.
    pub base_difficulty: u32,
    /// Nominal request rate.
    pub nominal_rate: f64,
}

/// `[[service]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Service name.
    pub name: String,
    /// Its public key (SPKI PEM).
    pub public_key: PathBuf,
    /// Capabilities its token carries.
    #[serde(default)]
    pub caps: Vec<String>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not TOML, or an unknown or mistyped field.
    #[error("{file}: {detail}")]
    Parse {
        /// The file.
        file: String,
        /// What is wrong.
        detail: String,
    },
    /// A required field is empty or a value is out of range.
    #[error("gateway config: {0}")]
    Invalid(String),
}

impl GatewayConfig {
    /// Parses a configuration file over the defaults.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let parse_error = |detail: String| ConfigError::Parse {
            file: file.to_owned(),
            detail,
        };
        let table =
            swarmdrop_manifest::config::over_defaults(DEFAULT_CONFIG, text, file).map_err(|e| {
                ConfigError::Parse {
                    file: file.to_owned(),
                    detail: e
                        .strip_prefix(&format!("{file}: "))
                        .unwrap_or(&e)
                        .to_owned(),
                }
            })?;
        GatewayConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| parse_error(e.to_string()))
    }

    /// The defaults alone.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::parse("", "(defaults)")
    }

    /// Checks required fields and ranges; returns durations in seconds.
    pub fn validate(&self) -> Result<Durations, ConfigError> {
        let invalid = |m: String| ConfigError::Invalid(m);
        for (name, value) in [
            ("domain", &self.domain),
            ("uri", &self.uri),
            ("drop", &self.drop),
        ] {
            if value.is_empty() {
                return Err(invalid(format!(
                    "{name} is required (in the config file or as --{name})"
                )));
            }
        }
        if self.signing_key.as_os_str().is_empty() {
            return Err(invalid(
                "signing_key is required (in the config file or as --signing-key)".into(),
            ));
        }
        let rate = &self.rate_limit;
        if !(rate.per_ip_per_second > 0.0 && rate.per_identity_per_second > 0.0)
            || rate.per_ip_burst == 0
            || rate.per_identity_burst == 0
        {
            return Err(invalid(
                "rate_limit rates and bursts must be positive".into(),
            ));
        }
        if self.trust.challenge_at > self.trust.deny_at {
            return Err(invalid(
                "trust.challenge_at must not exceed trust.deny_at".into(),
            ));
        }
        let duration = |name: &str, text: &str| {
            parse_duration(text).map_err(|e| invalid(format!("{name}: {e}")))
        };
        let token_lifetime = duration("token_lifetime", &self.token_lifetime)?.max(1);
        let session_lifetime = duration("session_lifetime", &self.session_lifetime)?;
        if session_lifetime < token_lifetime {
            return Err(invalid(
                "session_lifetime must be at least token_lifetime".into(),
            ));
        }
        Ok(Durations {
            token_lifetime,
            session_lifetime,
            clock_skew: duration("clock_skew", &self.clock_skew)?,
            nonce_lifetime: duration("nonce_lifetime", &self.nonce_lifetime)?.max(1),
            max_message_age: duration("max_message_age", &self.max_message_age)?,
        })
    }
}

/// The durations of a validated config, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Durations {
    /// Token lifetime.
    pub token_lifetime: u64,
    /// Longest session through refreshes.
    pub session_lifetime: u64,
    /// Clock skew.
    pub clock_skew: u64,
    /// Nonce lifetime.
    pub nonce_lifetime: u64,
    /// Oldest message.
    pub max_message_age: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_defaults_parse_and_user_values_override() {
        let defaults = GatewayConfig::defaults().unwrap();
        assert_eq!(defaults.rate_limit.per_ip_burst, 40);
        assert!(defaults.validate().is_err(), "domain etc. are required");
        let config = GatewayConfig::parse("domain = \"d\"\nuri = \"https://d/\"\ndrop = \"x\"\nsigning_key = \"k\"\n[rate_limit]\nper_ip_burst = 3\n", "g.toml").unwrap();
        assert_eq!(
            (
                config.rate_limit.per_ip_burst,
                config.rate_limit.per_identity_burst
            ),
            (3, 10)
        );
        assert_eq!(config.validate().unwrap().token_lifetime, 600);
    }

    #[test]
    fn typos_are_named() {
        let err = GatewayConfig::parse("domian = \"d\"", "g.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("g.toml") && err.contains("domian"), "{err}");
        let err = GatewayConfig::parse("[rate_limit]\nper_ip_bust = 1", "g.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("per_ip_bust"), "{err}");
    }
}
