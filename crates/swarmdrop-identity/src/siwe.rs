//! Sign-In with Ethereum (EIP-4361): parsing every field of the message, and the checks
//! a server makes before it believes one.
//!
//! The parser follows the EIP's ABNF line by line and caps every field, because the
//! message arrives from anyone. Checking is split the way the server needs it:
//! [`SiweMessage::check`] covers what needs no state (domain and URI binding, chain,
//! times with bounded skew, the signature); whether the nonce was issued and is still
//! unused is the caller's store's business, and it must consume the nonce only after
//! everything here passed, so an attacker cannot burn a victim's pending nonce.

use swarmdrop_manifest::UtcTime;

use crate::eth::{recover_personal_signer, Address};

/// Longest message accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;
const MAX_DOMAIN: usize = 253;
const MAX_STATEMENT: usize = 1024;
const MAX_URI: usize = 2048;
const MAX_NONCE: usize = 96;
const MAX_REQUEST_ID: usize = 256;
const MAX_RESOURCES: usize = 32;

const HEADER_SUFFIX: &str = " wants you to sign in with your Ethereum account:";

/// A parsed EIP-4361 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiweMessage {
    /// Optional scheme before the domain (`https`).
    pub scheme: Option<String>,
    /// The domain asking for the sign-in (authority: host and optional port).
    pub domain: String,
    /// The signing address, EIP-55 checksummed as written.
    pub address: Address,
    /// Optional human-readable statement.
    pub statement: Option<String>,
    /// The URI the sign-in is for.
    pub uri: String,
    /// Always `1`.
    pub version: String,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Server-issued nonce (8+ alphanumerics).
    pub nonce: String,
    /// When the message was made.
    pub issued_at: UtcTime,
    /// When it stops being valid.
    pub expiration_time: Option<UtcTime>,
    /// When it starts being valid.
    pub not_before: Option<UtcTime>,
    /// Optional request id.
    pub request_id: Option<String>,
    /// Resource URIs.
    pub resources: Vec<String>,
}

/// Why a SIWE message was refused. [`SiweError::code`] gives the stable reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiweError {
    /// Not an EIP-4361 message.
    #[error("malformed SIWE message: {0}")]
    Malformed(String),
    /// The domain is not ours.
    #[error("domain {found:?} is not {expected:?}")]
    DomainMismatch {
        /// In the message.
        found: String,
        /// Ours.
        expected: String,
    },
    /// The URI is not ours.
    #[error("URI {found:?} is not {expected:?}")]
    UriMismatch {
        /// In the message.
        found: String,
        /// Ours.
        expected: String,
    },
    /// Another chain.
    #[error("chain id {found} is not {expected}")]
    ChainMismatch {
        /// In the message.
        found: u64,
        /// Ours.
        expected: u64,
    },
    /// Past its expiration time (or issued implausibly far in the future).
    #[error("message expired at {0}")]
    Expired(UtcTime),
    /// Before its not-before time, or issued in the future beyond the allowed skew.
    #[error("message is not valid until {0}")]
    NotYetValid(UtcTime),
    /// The signature does not recover to the message's address.
    #[error("signature is not by {address}: {detail}")]
    BadSignature {
        /// The address the message claims.
        address: Address,
        /// What went wrong.
        detail: String,
    },
}

impl SiweError {
    /// The stable snake_case reason code used in HTTP errors, metrics and events.
    pub fn code(&self) -> &'static str {
        match self {
            SiweError::Malformed(_) => "malformed_message",
            SiweError::DomainMismatch { .. } => "domain_mismatch",
            SiweError::UriMismatch { .. } => "uri_mismatch",
            SiweError::ChainMismatch { .. } => "chain_mismatch",
            SiweError::Expired(_) => "expired",
            SiweError::NotYetValid(_) => "not_yet_valid",
            SiweError::BadSignature { .. } => "bad_signature",
        }
    }
}

fn malformed(detail: impl Into<String>) -> SiweError {
    SiweError::Malformed(detail.into())
}

fn capped<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, SiweError> {
    if value.len() > max {
        return Err(malformed(format!("{field} is longer than {max} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(malformed(format!("{field} contains a control character")));
    }
    Ok(value)
}

/// Takes `prefix` off the next line, or says which line was expected.
fn tagged<'a>(
    lines: &mut std::iter::Peekable<std::str::Split<'a, char>>,
    tag: &str,
) -> Result<&'a str, SiweError> {
    let line = lines
        .next()
        .ok_or_else(|| malformed(format!("missing \"{tag}\" line")))?;
    line.strip_prefix(tag).ok_or_else(|| {
        malformed(format!(
            "expected \"{tag}…\", found {:?}",
            line.chars().take(60).collect::<String>()
        ))
    })
}

fn optional<'a>(
    lines: &mut std::iter::Peekable<std::str::Split<'a, char>>,
    tag: &str,
) -> Option<&'a str> {
    let value = lines.peek().and_then(|line| line.strip_prefix(tag))?;
    lines.next();
    Some(value)
}

fn time(field: &str, text: &str) -> Result<UtcTime, SiweError> {
    UtcTime::parse(text).map_err(|e| malformed(format!("{field}: {e}")))
}

fn valid_uri(uri: &str) -> bool {
    // RFC 3986: scheme ":" hier-part; enough to refuse text that is not a URI at all.
    uri.split_once(':').is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            && !rest.is_empty()
            && !rest.contains(char::is_whitespace)
    })
}

impl SiweMessage {
    /// Parses an EIP-4361 message.
    pub fn parse(text: &str) -> Result<Self, SiweError> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(malformed(format!(
                "message is longer than {MAX_MESSAGE_BYTES} bytes"
            )));
        }
        let mut lines = text.split('\n').peekable();
        let header = lines.next().unwrap_or_default();
        let authority = header.strip_suffix(HEADER_SUFFIX).ok_or_else(|| {
            malformed(
                "the first line must end with \"wants you to sign in with your Ethereum account:\"",
            )
        })?;
        let (scheme, domain) = match authority.split_once("://") {
            Some((scheme, domain)) => (Some(capped("scheme", scheme, 32)?.to_owned()), domain),
            None => (None, authority),
        };
        let domain = capped("domain", domain, MAX_DOMAIN)?;
        if domain.is_empty() || domain.contains(char::is_whitespace) || domain.contains('/') {
            return Err(malformed(format!("domain {domain:?} is not an authority")));
        }
        let address_text = lines
            .next()
            .ok_or_else(|| malformed("missing address line"))?;
        let address = Address::parse(address_text).map_err(|e| malformed(e.to_string()))?;
        if !Address::is_checksummed(address_text) {
            return Err(malformed(format!(
                "address {address_text} is not EIP-55 checksummed"
            )));
        }
        if lines.next() != Some("") {
            return Err(malformed("expected an empty line after the address"));
        }
        // `[ statement LF ] LF`: a statement line then an empty line, or just the empty
        // line. Messages without a statement from some older libraries lack that empty
        // line; the signature covers the exact text either way, so accept both.
        let statement = match lines.peek() {
            Some(line) if line.starts_with("URI: ") => None,
            Some(&"") => {
                lines.next();
                None
            }
            Some(line) => {
                let statement = capped("statement", line, MAX_STATEMENT)?.to_owned();
                lines.next();
                if lines.next() != Some("") {
                    return Err(malformed("expected an empty line after the statement"));
                }
                Some(statement)
            }
            None => return Err(malformed("message ends after the address")),
        };
        let uri = capped("URI", tagged(&mut lines, "URI: ")?, MAX_URI)?;
        if !valid_uri(uri) {
            return Err(malformed(format!("URI {uri:?} is not an RFC 3986 URI")));
        }
        let version = tagged(&mut lines, "Version: ")?;
        if version != "1" {
            return Err(malformed(format!("version {version:?} is not 1")));
        }
        let chain_text = tagged(&mut lines, "Chain ID: ")?;
        let chain_id = chain_text
            .parse::<u64>()
            .ok()
            .filter(|_| chain_text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| malformed(format!("chain id {chain_text:?} is not a number")))?;
        let nonce = capped("nonce", tagged(&mut lines, "Nonce: ")?, MAX_NONCE)?;
        if nonce.len() < 8 || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(malformed("nonce must be at least 8 letters and digits"));
        }
        let issued_at = time("Issued At", tagged(&mut lines, "Issued At: ")?)?;
        let expiration_time = optional(&mut lines, "Expiration Time: ")
            .map(|t| time("Expiration Time", t))
            .transpose()?;
        let not_before = optional(&mut lines, "Not Before: ")
            .map(|t| time("Not Before", t))
            .transpose()?;
        let request_id = optional(&mut lines, "Request ID: ")
            .map(|r| capped("request id", r, MAX_REQUEST_ID).map(str::to_owned))
            .transpose()?;
        let mut resources = Vec::new();
        if lines.peek() == Some(&"Resources:") {
            lines.next();
            while let Some(resource) = lines.peek().and_then(|l| l.strip_prefix("- ")) {
                if resources.len() == MAX_RESOURCES {
                    return Err(malformed(format!("more than {MAX_RESOURCES} resources")));
                }
                let resource = capped("resource", resource, MAX_URI)?;
                if !valid_uri(resource) {
                    return Err(malformed(format!("resource {resource:?} is not a URI")));
                }
                resources.push(resource.to_owned());
                lines.next();
            }
        }
        if let Some(extra) = lines.next() {
            return Err(malformed(format!(
                "unexpected line {:?}",
                extra.chars().take(60).collect::<String>()
            )));
        }
        Ok(SiweMessage {
            scheme,
            domain: domain.to_owned(),
            address,
            statement,
            uri: uri.to_owned(),
            version: version.to_owned(),
            chain_id,
            nonce: nonce.to_owned(),
            issued_at,
            expiration_time,
            not_before,
            request_id,
            resources,
        })
    }

    /// The message text in EIP-4361 form (what a wallet shows and signs).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if let Some(scheme) = &self.scheme {
            out.push_str(scheme);
            out.push_str("://");
        }
        out.push_str(&self.domain);
        out.push_str(HEADER_SUFFIX);
        out.push('\n');
        out.push_str(&self.address.to_checksummed());
        out.push_str("\n\n");
        if let Some(statement) = &self.statement {
            out.push_str(statement);
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&format!(
            "URI: {}\nVersion: {}\nChain ID: {}\nNonce: {}\nIssued At: {}",
            self.uri, self.version, self.chain_id, self.nonce, self.issued_at
        ));
        if let Some(t) = self.expiration_time {
            out.push_str(&format!("\nExpiration Time: {t}"));
        }
        if let Some(t) = self.not_before {
            out.push_str(&format!("\nNot Before: {t}"));
        }
        if let Some(id) = &self.request_id {
            out.push_str(&format!("\nRequest ID: {id}"));
        }
        if !self.resources.is_empty() {
            out.push_str("\nResources:");
            for resource in &self.resources {
                out.push_str(&format!("\n- {resource}"));
            }
        }
        out
    }

    /// Everything but the nonce: domain and URI binding, chain, times (with `skew`
    /// seconds of allowed clock difference), and the signature over `text` (the exact
    /// bytes the wallet signed).
    pub fn check(
        &self,
        text: &str,
        signature: &str,
        expected: &Expected<'_>,
        now: UtcTime,
    ) -> Result<(), SiweError> {
        if !self.domain.eq_ignore_ascii_case(expected.domain) {
            return Err(SiweError::DomainMismatch {
                found: self.domain.clone(),
                expected: expected.domain.to_owned(),
            });
        }
        if self.uri != expected.uri {
            return Err(SiweError::UriMismatch {
                found: self.uri.clone(),
                expected: expected.uri.to_owned(),
            });
        }
        if self.chain_id != expected.chain_id {
            return Err(SiweError::ChainMismatch {
                found: self.chain_id,
                expected: expected.chain_id,
            });
        }
        let late = now.plus_seconds(expected.skew_seconds);
        let early = UtcTime::saturating_from_unix(
            now.unix() - i64::try_from(expected.skew_seconds).unwrap_or(i64::MAX),
        );
        if let Some(expiry) = self.expiration_time {
            if expiry <= early {
                return Err(SiweError::Expired(expiry));
            }
        }
        if let Some(not_before) = self.not_before {
            if not_before > late {
                return Err(SiweError::NotYetValid(not_before));
            }
        }
        if self.issued_at > late {
            return Err(SiweError::NotYetValid(self.issued_at));
        }
        if let Some(max_age) = expected.max_age_seconds {
            if self.issued_at.plus_seconds(max_age) <= early {
                return Err(SiweError::Expired(self.issued_at.plus_seconds(max_age)));
            }
        }
        let signer = recover_personal_signer(text.as_bytes(), signature).map_err(|e| {
            SiweError::BadSignature {
                address: self.address,
                detail: e.to_string(),
            }
        })?;
        if signer != self.address {
            return Err(SiweError::BadSignature {
                address: self.address,
                detail: format!("it was made by {signer}"),
            });
        }
        Ok(())
    }
}

/// What the server expects of a message.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// Our domain (authority).
    pub domain: &'a str,
    /// Our sign-in URI.
    pub uri: &'a str,
    /// Our chain.
    pub chain_id: u64,
    /// Allowed clock difference, seconds.
    pub skew_seconds: u64,
    /// Refuse messages issued longer ago than this (even without an expiration time).
    pub max_age_seconds: Option<u64>,
}

#[cfg(test)]
mod tests;
