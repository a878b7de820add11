//! The checks every metadata file goes through: parsing with the role's type and spec
//! version, signatures over canonical JSON by a threshold of distinct keys, and length
//! and hashes against what a parent pins.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sha2::{Digest as _, Sha256, Sha512};

use super::errors::TufError;
use super::metadata::{Delegations, Role, RoleDocument, Root, Signature, Targets};
use super::signatures::VerifyingKey;
use crate::canonical::to_canonical_json;
use crate::keys::{KeyId, TufKey};

/// A parsed metadata file: the document, the bytes its signatures cover, the signatures.
pub(crate) struct Parsed<T> {
    pub(crate) document: T,
    pub(crate) canonical: Vec<u8>,
    pub(crate) signatures: Vec<Signature>,
}

/// Who must sign: a set of keys, the ids allowed for this role, and how many.
pub(crate) struct Signers<'a> {
    /// Whose list this is, for errors (`root`, or the delegating role).
    pub(crate) listed_by: String,
    pub(crate) keys: &'a BTreeMap<KeyId, TufKey>,
    pub(crate) keyids: &'a [KeyId],
    pub(crate) threshold: u32,
}

impl<'a> Signers<'a> {
    /// The keys `root` lists for `role`.
    pub(crate) fn of_root(root: &'a Root, role: Role) -> Result<Self, TufError> {
        let keys = root.role(role).ok_or_else(|| TufError::Malformed {
            role: Role::Root.name().into(),
            detail: format!("no {role} role"),
        })?;
        Ok(Signers {
            listed_by: "root".into(),
            keys: &root.keys,
            keyids: &keys.keyids,
            threshold: keys.threshold,
        })
    }
}

/// Parses `bytes` as metadata of the document type `T` for the role named `role`.
pub(crate) fn parse<T: RoleDocument>(bytes: &[u8], role: &str) -> Result<Parsed<T>, TufError> {
    let malformed = |detail: String| TufError::Malformed {
        role: role.to_owned(),
        detail,
    };
    let mut file: Value =
        serde_json::from_slice(bytes).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let object = file
        .as_object_mut()
        .ok_or_else(|| malformed("not a JSON object".into()))?;
    let signed = object
        .remove("signed")
        .ok_or_else(|| malformed("no \"signed\" field".into()))?;
    let signatures: Vec<Signature> = object
        .remove("signatures")
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| malformed(format!("bad \"signatures\": {e}")))?
        .ok_or_else(|| malformed("no \"signatures\" field".into()))?;
    let mut seen = BTreeSet::new();
    if let Some(dup) = signatures.iter().find(|s| !seen.insert(&s.keyid)) {
        return Err(malformed(format!("two signatures by key {}", dup.keyid)));
    }
    let canonical = to_canonical_json(&signed).map_err(|e| malformed(e.to_string()))?;
    let type_name = signed.get("_type").and_then(Value::as_str).unwrap_or("");
    let expected = T::ROLE.name();
    if type_name != expected {
        return Err(malformed(format!(
            "_type is {type_name:?}, expected {expected:?}"
        )));
    }
    let spec_version = signed
        .get("spec_version")
        .and_then(Value::as_str)
        .unwrap_or("");
    check_spec_version(role, spec_version)?;
    if signed.get("version").and_then(Value::as_u64) == Some(0) {
        return Err(malformed("version 0 (versions start at 1)".into()));
    }
    let document: T = serde_json::from_value(signed).map_err(|e| malformed(e.to_string()))?;
    Ok(Parsed {
        document,
        canonical,
        signatures,
    })
}

impl<T: RoleDocument> Parsed<T> {
    /// Checks that a threshold of `signers` signed this document.
    pub(crate) fn check_signed_by(
        &self,
        role: &str,
        signers: &Signers<'_>,
    ) -> Result<(), TufError> {
        check_signatures(signers, role, &self.canonical, &self.signatures)
    }
}

/// Reads a role document without checking signatures, versions or expiry: for the
/// publisher reading back its own directory, never for a client deciding what to trust.
pub fn parse_unverified<T: RoleDocument>(bytes: &[u8]) -> Result<T, TufError> {
    parse::<T>(bytes, T::ROLE.name()).map(|parsed| parsed.document)
}

/// Counts distinct keys among `signers` with a valid signature; errors below threshold.
/// Distinct means distinct public keys, not distinct key ids: a role that lists one key
/// under two ids must not let one signature count twice.
pub(crate) fn check_signatures(
    signers: &Signers<'_>,
    role: &str,
    canonical: &[u8],
    signatures: &[Signature],
) -> Result<(), TufError> {
    let allowed: BTreeSet<&KeyId> = signers.keyids.iter().collect();
    let valid = signatures
        .iter()
        .filter(|s| allowed.contains(&s.keyid))
        .filter_map(|s| {
            let key = signers
                .keys
                .get(&s.keyid)
                .and_then(|k| VerifyingKey::from_tuf(k).ok())?;
            let signature = hex::decode(&s.sig).ok()?;
            key.verify(canonical, &signature).then(|| key.identity())
        })
        .collect::<BTreeSet<_>>()
        .len();
    let valid = u32::try_from(valid).unwrap_or(u32::MAX);
    if valid < signers.threshold {
        return Err(TufError::Unsigned {
            role: role.to_owned(),
            signers: format!("{} lists for {role}", signers.listed_by),
            valid,
            threshold: signers.threshold,
        });
    }
    Ok(())
}

/// The major version of the TUF specification we implement.
const SPEC_MAJOR: &str = "1";

/// `1.x` or `1.x.y`, digits only (what python-tuf accepts).
fn check_spec_version(role: &str, spec_version: &str) -> Result<(), TufError> {
    let parts: Vec<&str> = spec_version.split('.').collect();
    let well_formed = matches!(parts.len(), 2 | 3)
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !well_formed || parts[0] != SPEC_MAJOR {
        return Err(TufError::Malformed {
            role: role.to_owned(),
            detail: format!("spec_version {spec_version:?} is not a 1.x version of TUF"),
        });
    }
    Ok(())
}

/// A root names exactly the four top-level roles, each with a non-zero threshold over
/// distinct key ids that it lists.
pub(crate) fn check_root_shape(root: &Root) -> Result<(), TufError> {
    let malformed = |detail: String| TufError::Malformed {
        role: Role::Root.name().into(),
        detail,
    };
    if let Some(extra) = root
        .roles
        .keys()
        .find(|name| !Role::ALL.iter().any(|r| r.name() == name.as_str()))
    {
        return Err(malformed(format!(
            "roles lists {extra:?}, not a top-level role"
        )));
    }
    for role in Role::ALL {
        let keys = root
            .role(role)
            .ok_or_else(|| malformed(format!("roles has no {role}")))?;
        check_keyids(role.name(), &keys.keyids, keys.threshold).map_err(malformed)?;
    }
    Ok(())
}

/// A non-zero threshold over distinct key ids. A listed id with no key is not an error
/// (python-tuf agrees): it simply cannot sign, so a repository that lists a retired id
/// still works.
fn check_keyids(role: &str, keyids: &[KeyId], threshold: u32) -> Result<(), String> {
    if threshold == 0 {
        return Err(format!("{role} threshold is 0"));
    }
    let mut seen = BTreeSet::new();
    if let Some(dup) = keyids.iter().find(|id| !seen.insert(*id)) {
        return Err(format!("{role} lists key {dup} twice"));
    }
    Ok(())
}

/// A targets role's delegations are well formed: roles or succinct bins (not both),
/// unique names that are not top-level roles, patterns or hash prefixes (not both),
/// known keys, thresholds above zero, 1..=32 bin bits.
pub(crate) fn check_delegations_shape(role: &str, targets: &Targets) -> Result<(), TufError> {
    let Some(delegations) = &targets.delegations else {
        return Ok(());
    };
    let malformed = |detail: String| TufError::Malformed {
        role: role.to_owned(),
        detail: format!("delegations: {detail}"),
    };
    let Delegations {
        roles,
        succinct_roles,
        ..
    } = delegations;
    match (roles, succinct_roles) {
        (Some(_), Some(_)) => Err(malformed("both roles and succinct_roles".into())),
        (None, None) => Err(malformed("neither roles nor succinct_roles".into())),
        (None, Some(bins)) => {
            if !(1..=32).contains(&bins.bit_length) {
                return Err(malformed(format!(
                    "bit_length {} is outside 1..=32",
                    bins.bit_length
                )));
            }
            check_keyids("succinct_roles", &bins.keyids, bins.threshold).map_err(malformed)
        }
        (Some(roles), None) => {
            let mut names = BTreeSet::new();
            for delegated in roles {
                let name = delegated.name.as_str();
                // Case-insensitively: on macOS or Windows a role named `Timestamp` would
                // be kept in the same file as the top-level timestamp.
                if name.is_empty()
                    || Role::ALL
                        .iter()
                        .any(|r| r.name().eq_ignore_ascii_case(name))
                {
                    return Err(malformed(format!(
                        "a delegated role may not be named {name:?}"
                    )));
                }
                if !names.insert(name) {
                    return Err(malformed(format!("role {name:?} is delegated twice")));
                }
                if delegated.paths.is_some() && delegated.path_hash_prefixes.is_some() {
                    return Err(malformed(format!(
                        "role {name:?} has both paths and path_hash_prefixes"
                    )));
                }
                check_keyids(name, &delegated.keyids, delegated.threshold).map_err(malformed)?;
            }
            Ok(())
        }
    }
}

/// Checks `bytes` against a pinned length and any hashes we can compute.
pub fn check_length_and_hashes(
    what: &str,
    bytes: &[u8],
    length: Option<u64>,
    hashes: Option<&BTreeMap<String, String>>,
) -> Result<(), TufError> {
    let mut digests = Digests::new(hashes);
    digests.update(bytes);
    digests.finish(what, bytes.len() as u64, length)
}

/// Running hashes of a file for the algorithms its signed description lists, so a
/// target can be checked while it streams instead of after it is held in memory.
pub struct Digests {
    listed: bool,
    expected: Vec<(String, String)>,
    sha256: Option<Sha256>,
    sha512: Option<Sha512>,
}

impl Digests {
    /// Hashes for the algorithms in `hashes` (none: only the length will be checked).
    pub fn new(hashes: Option<&BTreeMap<String, String>>) -> Self {
        let expected: Vec<(String, String)> = hashes
            .map(|h| h.iter().map(|(a, v)| (a.clone(), v.clone())).collect())
            .unwrap_or_default();
        let wants = |name: &str| expected.iter().any(|(a, _)| a == name);
        Digests {
            listed: hashes.is_some(),
            sha256: wants("sha256").then(Sha256::new),
            sha512: wants("sha512").then(Sha512::new),
            expected,
        }
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        if let Some(h) = &mut self.sha256 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(bytes);
        }
    }

    /// Checks the total `length` against `expected_length` and every hash we computed;
    /// at least one listed hash must be one we compute.
    pub fn finish(
        self,
        what: &str,
        length: u64,
        expected_length: Option<u64>,
    ) -> Result<(), TufError> {
        let mismatch = |detail: String| TufError::LengthOrHashMismatch {
            what: what.to_owned(),
            detail,
        };
        if let Some(expected) = expected_length {
            if length != expected {
                return Err(mismatch(format!(
                    "length is {length} bytes, signed metadata says {expected}"
                )));
            }
        }
        if !self.listed {
            return Ok(());
        }
        let sha256 = self.sha256.map(|h| hex::encode(h.finalize()));
        let sha512 = self.sha512.map(|h| hex::encode(h.finalize()));
        let mut checked = 0;
        for (algorithm, expected) in &self.expected {
            let actual = match algorithm.as_str() {
                "sha256" => sha256.as_deref(),
                "sha512" => sha512.as_deref(),
                _ => None,
            };
            let Some(actual) = actual else { continue };
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(mismatch(format!(
                    "{algorithm} is {actual}, signed metadata says {expected}"
                )));
            }
            checked += 1;
        }
        if checked == 0 {
            return Err(mismatch(
                "no supported hash algorithm (sha256, sha512) listed".into(),
            ));
        }
        Ok(())
    }
}
