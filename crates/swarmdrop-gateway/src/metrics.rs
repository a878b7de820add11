//! Counters and gauges for `/metrics`, in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Decision counts by (endpoint, action, reason), plus gauges set at scrape time.
#[derive(Debug, Default)]
pub struct Metrics {
    decisions: Mutex<BTreeMap<(&'static str, &'static str, &'static str), u64>>,
    tokens: Mutex<BTreeMap<&'static str, u64>>,
}

/// Gauges read when `/metrics` is scraped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Pending nonces and challenges.
    pub pending: usize,
    /// Addresses tracked by the per-IP limiter.
    pub ip_limiter: usize,
    /// Identities tracked by the per-identity limiter.
    pub identity_limiter: usize,
    /// Clients tracked by the risk table.
    pub risk_table: usize,
    /// Revoked token ids.
    pub revoked: usize,
    /// Current request rate (per second).
    pub request_rate: f64,
}

impl Metrics {
    /// Counts one decision.
    pub fn decision(&self, endpoint: &'static str, action: &'static str, reason: &'static str) {
        if let Ok(mut map) = self.decisions.lock() {
            *map.entry((endpoint, action, reason)).or_default() += 1;
        }
    }

    /// Counts one issued token by tier.
    pub fn token(&self, tier: &'static str) {
        if let Ok(mut map) = self.tokens.lock() {
            *map.entry(tier).or_default() += 1;
        }
    }

    /// The exposition text.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        out.push_str("# HELP swarmdrop_gateway_decisions_total Identity decisions by endpoint, action and reason code.\n");
        out.push_str("# TYPE swarmdrop_gateway_decisions_total counter\n");
        if let Ok(map) = self.decisions.lock() {
            for ((endpoint, action, reason), count) in map.iter() {
                let _ = writeln!(out, "swarmdrop_gateway_decisions_total{{endpoint=\"{endpoint}\",action=\"{action}\",reason=\"{reason}\"}} {count}");
            }
        }
        out.push_str("# HELP swarmdrop_gateway_tokens_issued_total Tokens issued by trust tier.\n");
        out.push_str("# TYPE swarmdrop_gateway_tokens_issued_total counter\n");
        if let Ok(map) = self.tokens.lock() {
            for (tier, count) in map.iter() {
                let _ = writeln!(
                    out,
                    "swarmdrop_gateway_tokens_issued_total{{tier=\"{tier}\"}} {count}"
                );
            }
        }
        let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            );
        };
        gauge(
            &mut out,
            "swarmdrop_gateway_pending_single_use",
            "Nonces and challenges issued and not yet used or expired.",
            gauges.pending as f64,
        );
        gauge(
            &mut out,
            "swarmdrop_gateway_ip_limiter_entries",
            "Client addresses tracked by the per-address rate limiter.",
            gauges.ip_limiter as f64,
        );
        gauge(
            &mut out,
            "swarmdrop_gateway_identity_limiter_entries",
            "Identities tracked by the per-identity rate limiter.",
            gauges.identity_limiter as f64,
        );
        gauge(
            &mut out,
            "swarmdrop_gateway_risk_entries",
            "Clients tracked by the risk table.",
            gauges.risk_table as f64,
        );
        gauge(
            &mut out,
            "swarmdrop_gateway_revoked_tokens",
            "Revoked token ids not yet expired.",
            gauges.revoked as f64,
        );
        gauge(
            &mut out,
            "swarmdrop_gateway_request_rate",
            "Requests per second over the last second.",
            gauges.request_rate,
        );
        out
    }
}
