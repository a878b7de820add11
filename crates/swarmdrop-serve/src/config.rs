//! `swarmdrop serve`'s one config file: `[serve]` and `[origin]` of its own, then
//! `[tracker]` and `[gateway]` holding exactly what `swarmdrop tracker` and `swarmdrop
//! gateway` read from theirs (their tables nested one level down: `[tracker.rate_limit]`).
//! [`default_config`] is what `--print-config` prints: this file's defaults followed by
//! the tracker's and the gateway's own documented defaults, nested, so no setting is
//! documented twice. Each section is checked by its own service's parser.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use swarmdrop_gateway::GatewayConfig;
use swarmdrop_manifest::time::parse_duration;
use swarmdrop_tracker::server::TrackerConfig;

/// `[serve]` and `[origin]`, with their defaults and meaning.
pub const SERVE_DEFAULTS: &str = r#"# swarmdrop serve configuration: the origin, the tracker and the gateway in one process.
# Flags override: PUBLISHED (the first argument), --state, --origin, --tracker-http,
# --tracker-udp, --gateway, --signing-key, --drop, --domain, --uri.
# Each service prints "listening <service> ADDR" on stderr once it accepts.

[serve]
# The published directory to serve (what `swarmdrop pack --out` wrote).
published = ""
# The state file (SQLite, created when missing; nothing to install): the gateway's
# nonces, proof-of-work challenges and revocations. Revocations survive a restart on
# the same file.
state = "swarmdrop-state.sqlite"
# On SIGINT or SIGTERM every listener stops accepting; requests in flight get this long
# to finish before the process exits anyway.
drain_timeout = "10s"
# Add the info hash of every torrent under PUBLISHED/torrents/ to the tracker's
# known_infohashes when serve starts (a release packed later needs a restart, or
# [tracker] open = true).
track_published = true

[origin]
# Where the published directory is served over HTTP (GET and HEAD, single ranges,
# ETags; /metrics beside it). Port 0 picks a free port.
listen = "127.0.0.1:8080"
# Cache-Control max-age for files a release replaces (timestamp.json, root.json, and
# any file not named by its content); "0s" sends no-cache. Versioned metadata,
# hash-named targets and torrents are immutable and cacheable for a year.
mutable_max_age = "1s"
# A connection's request head must arrive within this (slow clients cannot hold
# connections open for free).
header_timeout = "10s"
# Most connections open at once; more wait in the kernel's accept queue.
max_connections = 4096

[qoe]
# Clients' end-of-run quality reports: POST /qoe (what `swarmdrop get --gateway URL`
# sends) and GET /qoe/summary on the gateway's listener, counted on its /metrics
# (swarmdrop_qoe_*) and kept in the state file. Without a gateway there are none.
enabled = true
# Reports must carry a token from this gateway (anonymous ones do). With false, reports
# without a token are taken too (a token that is sent must still be valid).
require_token = true
# How long a report is kept, and how many are (the oldest go first).
max_age = "7d"
max_reports = 100000
# Most asset rows kept, all reports together (a report holds up to 10000).
max_asset_rows = 1000000
# GET /qoe/summary reads this many of the newest asset rows (and reports, for bytes).
summary_rows = 10000
# Distinct class labels on /metrics; classes beyond them are counted as "other".
max_classes = 32
"#;

/// The tracker's and gateway's tables, nested under `[tracker]` / `[gateway]`.
const SECTIONS: [&str; 5] = ["serve", "origin", "qoe", "tracker", "gateway"];

/// A config that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// `[origin]`, checked.
#[derive(Debug, Clone)]
pub struct OriginSettings {
    /// Listen address.
    pub listen: String,
    /// `Cache-Control` max-age of mutable files, seconds.
    pub mutable_max_age: u64,
    /// Deadline for a request head.
    pub header_timeout: Duration,
    /// Connection cap.
    pub max_connections: usize,
}

/// `[qoe]`, checked.
#[derive(Debug, Clone)]
pub struct QoeSettings {
    /// Serve `/qoe` and `/qoe/summary` beside the gateway.
    pub enabled: bool,
    /// Refuse reports without a token.
    pub require_token: bool,
    /// How long a report is kept, seconds.
    pub max_age: u64,
    /// Most reports kept.
    pub max_reports: usize,
    /// Most asset rows kept.
    pub max_asset_rows: usize,
    /// Asset rows (and reports) a summary reads.
    pub summary_rows: usize,
    /// Distinct class labels on `/metrics`.
    pub max_classes: usize,
}

/// The whole configuration, checked.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The published directory.
    pub published: PathBuf,
    /// The state file.
    pub state: PathBuf,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Duration,
    /// Track the published torrents' info hashes.
    pub track_published: bool,
    /// The origin.
    pub origin: OriginSettings,
    /// Clients' quality reports.
    pub qoe: QoeSettings,
    /// The tracker, as `swarmdrop tracker` reads it.
    pub tracker: TrackerConfig,
    /// The gateway, as `swarmdrop gateway` reads it; `listen = ""` runs without one.
    pub gateway: GatewayConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeSection {
    published: PathBuf,
    state: PathBuf,
    drain_timeout: String,
    track_published: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OriginSection {
    listen: String,
    mutable_max_age: String,
    header_timeout: String,
    max_connections: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QoeSection {
    enabled: bool,
    require_token: bool,
    max_age: String,
    max_reports: usize,
    max_asset_rows: usize,
    summary_rows: usize,
    max_classes: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnSections {
    serve: ServeSection,
    origin: OriginSection,
    qoe: QoeSection,
}

/// `text` (a service's own documented defaults) with every table moved under
/// `section`: `[rate_limit]` becomes `[tracker.rate_limit]`, and the commented
/// `# [[service]]` example becomes `# [[gateway.service]]`. The service's opening
/// comment (which names its own flags) gives way to one line naming the section.
fn nest(section: &str, what: &str, text: &str) -> String {
    let mut out = format!("\n# {what}\n[{section}]\n");
    let body = text.split_once("\n\n").map_or(text, |(_, body)| body);
    for line in body.lines() {
        let (prefix, rest) = match line.strip_prefix("# ") {
            Some(rest) if rest.starts_with('[') => ("# ", rest),
            _ => ("", line),
        };
        let nested = if let Some(name) = rest.strip_prefix("[[").and_then(|r| r.strip_suffix("]]"))
        {
            format!("{prefix}[[{section}.{name}]]")
        } else if let Some(name) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            format!("{prefix}[{section}.{name}]")
        } else {
            line.to_owned()
        };
        out.push_str(&nested);
        out.push('\n');
    }
    out
}

/// What `swarmdrop serve --print-config` prints.
pub fn default_config() -> String {
    let mut text = SERVE_DEFAULTS.to_owned();
    text.push_str(&nest(
        "tracker",
        "The tracker: the settings of `swarmdrop tracker --print-config`. http or udp = \"\" turns that listener off.\n\
         # A private drop whose revocations_url is empty polls the gateway of this process.",
        swarmdrop_tracker::server::config::DEFAULT_CONFIG,
    ));
    text.push_str(&nest(
        "gateway",
        "The gateway: the settings of `swarmdrop gateway --print-config`. listen = \"\" runs serve without a gateway.",
        swarmdrop_gateway::config::DEFAULT_CONFIG,
    ));
    text
}

fn seconds(file: &str, name: &str, text: &str) -> Result<u64, ConfigError> {
    parse_duration(text).map_err(|e| ConfigError(format!("{file}: {name}: {e}")))
}

/// The sub-table `name` of `user` as TOML text ("" when absent).
fn section_text(user: &toml::Table, name: &str) -> String {
    user.get(name)
        .and_then(toml::Value::as_table)
        .map(ToString::to_string)
        .unwrap_or_default()
}

impl ServeConfig {
    /// Parses `text` (the user's file, named `file` in errors) over the defaults.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let user: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError(format!("{file}: {e}")))?;
        for (key, value) in &user {
            if !SECTIONS.contains(&key.as_str()) {
                return Err(ConfigError(format!(
                    "{file}: unknown setting `{key}`; the sections are [serve], [origin], [qoe], [tracker] and [gateway]"
                )));
            }
            if !value.is_table() {
                return Err(ConfigError(format!(
                    "{file}: `{key}` must be a [{key}] table"
                )));
            }
        }
        // Our own sections, read over their defaults as every config is.
        let mut own = toml::Table::new();
        for name in ["serve", "origin", "qoe"] {
            if let Some(value) = user.get(name) {
                own.insert(name.to_owned(), value.clone());
            }
        }
        let table =
            swarmdrop_manifest::config::over_defaults(SERVE_DEFAULTS, &own.to_string(), file)
                .map_err(ConfigError)?;
        let own = OwnSections::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError(format!("{file}: {e}")))?;
        let tracker = TrackerConfig::parse(
            &section_text(&user, "tracker"),
            &format!("{file} [tracker]"),
        )
        .map_err(ConfigError)?;
        let gateway = GatewayConfig::parse(
            &section_text(&user, "gateway"),
            &format!("{file} [gateway]"),
        )
        .map_err(|e| ConfigError(e.to_string()))?;
        Ok(Self {
            published: own.serve.published,
            state: own.serve.state,
            drain_timeout: Duration::from_secs(seconds(
                file,
                "serve.drain_timeout",
                &own.serve.drain_timeout,
            )?),
            track_published: own.serve.track_published,
            origin: OriginSettings {
                listen: own.origin.listen,
                mutable_max_age: seconds(
                    file,
                    "origin.mutable_max_age",
                    &own.origin.mutable_max_age,
                )?,
                header_timeout: Duration::from_secs(
                    seconds(file, "origin.header_timeout", &own.origin.header_timeout)?.max(1),
                ),
                max_connections: own.origin.max_connections.max(1),
            },
            qoe: QoeSettings {
                enabled: own.qoe.enabled,
                require_token: own.qoe.require_token,
                max_age: seconds(file, "qoe.max_age", &own.qoe.max_age)?.max(1),
                max_reports: own.qoe.max_reports.max(1),
                max_asset_rows: own.qoe.max_asset_rows.max(1),
                summary_rows: own.qoe.summary_rows.max(1),
                max_classes: own.qoe.max_classes,
            },
            tracker,
            gateway,
        })
    }

    /// Checks what only makes sense once flags have overridden the file.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.published.as_os_str().is_empty() {
            return Err(ConfigError(
                "no published directory: give it as the first argument, or as [serve] published"
                    .into(),
            ));
        }
        if self.state.as_os_str().is_empty() {
            return Err(ConfigError(
                "no state file: give --state FILE, or [serve] state".into(),
            ));
        }
        if self.origin.listen.is_empty() {
            return Err(ConfigError(
                "[origin] listen is empty: serve always runs the origin".into(),
            ));
        }
        if !self.gateway.listen.is_empty() {
            self.gateway.validate().map_err(|e| {
                ConfigError(format!(
                    "{e}. The gateway needs [gateway] domain, uri, drop and signing_key (or \
                     --domain, --uri, --drop, --signing-key); to serve without a gateway, set \
                     [gateway] listen = \"\" or pass --gateway ''"
                ))
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_defaults_are_every_service_s_own() {
        let printed = default_config();
        // What --print-config shows reads back as the defaults of each part.
        let config = ServeConfig::parse(&printed, "printed").unwrap();
        let plain = ServeConfig::parse("", "empty").unwrap();
        assert_eq!(config.origin.listen, "127.0.0.1:8080");
        assert_eq!(config.state, PathBuf::from("swarmdrop-state.sqlite"));
        assert_eq!(config.drain_timeout, Duration::from_secs(10));
        assert_eq!(config.origin.mutable_max_age, 1);
        assert!(config.qoe.enabled && config.qoe.require_token);
        assert_eq!(config.qoe.max_age, 7 * 86_400);
        assert_eq!(config.qoe.max_classes, 32);
        let tracker = TrackerConfig::parse("", "t").unwrap();
        let gateway = GatewayConfig::defaults().unwrap();
        for c in [&config, &plain] {
            assert_eq!(c.tracker.http, tracker.http);
            assert_eq!(
                c.tracker.rate_limit.per_ip_burst,
                tracker.rate_limit.per_ip_burst
            );
            assert_eq!(c.tracker.webhook.queue, tracker.webhook.queue);
            assert_eq!(c.gateway.listen, gateway.listen);
            assert_eq!(
                c.gateway.trust.base_difficulty,
                gateway.trust.base_difficulty
            );
        }
        assert!(printed.contains("\n[tracker.rate_limit]\n"));
        assert!(printed.contains("\n[gateway.trust]\n"));
        assert!(printed.contains("\n# [[gateway.service]]\n"));
        assert!(!printed.contains("\n[rate_limit]\n"));
    }

    #[test]
    fn sections_override_their_service_s_defaults() {
        let text = r#"
[serve]
published = "/srv/drop"
drain_timeout = "3s"
[origin]
mutable_max_age = "0s"
[tracker]
open = true
[tracker.rate_limit]
per_ip_burst = 7
[gateway]
listen = ""
allow_anonymous = true
[[gateway.service]]
name = "edge-1"
public_key = "edge-1.pub"
caps = ["edge"]
"#;
        let config = ServeConfig::parse(text, "s.toml").unwrap();
        assert_eq!(config.published, PathBuf::from("/srv/drop"));
        assert_eq!(config.drain_timeout, Duration::from_secs(3));
        assert_eq!(config.origin.mutable_max_age, 0);
        assert!(config.tracker.open);
        assert_eq!(config.tracker.rate_limit.per_ip_burst, 7);
        assert_eq!(config.tracker.rate_limit.per_ip_per_second, 10.0);
        assert!(config.gateway.allow_anonymous);
        assert_eq!(config.gateway.services.len(), 1);
        config.validate().unwrap();
    }

    #[test]
    fn mistakes_are_named() {
        let err = |text: &str| ServeConfig::parse(text, "s.toml").unwrap_err().0;
        assert!(err("[trackr]\nopen = true").contains("trackr"));
        assert!(err("published = \"x\"").contains("published"));
        assert!(err("[serve]\npublsihed = \"x\"").contains("publsihed"));
        let e = err("[tracker]\nintreval = 5");
        assert!(e.contains("[tracker]") && e.contains("intreval"), "{e}");
        let e = err("[gateway.rate_limit]\nper_ip_bust = 1");
        assert!(e.contains("[gateway]") && e.contains("per_ip_bust"), "{e}");
        assert!(err("[origin]\nheader_timeout = \"soon\"").contains("origin.header_timeout"));
        assert!(err("[serve\n").contains("s.toml"));
        assert!(err("[qoe]\nmax_age = \"long\"").contains("qoe.max_age"));
        assert!(err("[qoe]\nmax_clases = 3").contains("max_clases"));
    }

    #[test]
    fn validation_says_what_is_missing() {
        let config = ServeConfig::parse("", "s.toml").unwrap();
        assert!(config
            .validate()
            .unwrap_err()
            .0
            .contains("published directory"));
        let config = ServeConfig::parse("[serve]\npublished = \"p\"", "s.toml").unwrap();
        let e = config.validate().unwrap_err().0;
        assert!(e.contains("listen = \"\""), "{e}");
        let config = ServeConfig::parse(
            "[serve]\npublished = \"p\"\n[gateway]\nlisten = \"\"",
            "s.toml",
        )
        .unwrap();
        config.validate().unwrap();
    }
}
