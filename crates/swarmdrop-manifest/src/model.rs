//! Validated newtypes shared by every part: past the boundary nothing is a raw string.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A drop path that could escape its directory or confuse a URL.
    #[error("invalid drop path {path:?}: {reason}")]
    BadPath {
        /// The path given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A name that is not 1–64 characters of `a-z 0-9 - _ .`.
    #[error("invalid {what} {name:?}: use 1 to 64 characters from a-z, 0-9, '-', '_' and '.'")]
    BadName {
        /// Which kind of name.
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// Not one of `p2p`, `edge`, `origin`.
    #[error("unknown path {0:?} (expected one of p2p, edge, origin)")]
    UnknownPathKind(String),
    /// Not 40 hex digits.
    #[error("invalid infohash {0:?}: expected 40 hex digits")]
    BadInfoHash(String),
}

/// The longest drop path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 1024;

/// A relative `/`-separated path inside a drop (`frames/f001.png`): no empty, `.` or `..`
/// segments, no backslashes or control characters, at most [`MAX_PATH_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DropPath(String);

impl DropPath {
    /// Validates `path`.
    pub fn new(path: &str) -> Result<Self, ModelError> {
        let bad = |reason| ModelError::BadPath {
            path: path.chars().take(200).collect(),
            reason,
        };
        if path.is_empty() {
            return Err(bad("empty"));
        }
        if path.len() > MAX_PATH_LEN {
            return Err(bad("longer than 1024 bytes"));
        }
        if path.starts_with('/') {
            return Err(bad("absolute"));
        }
        if path.chars().any(|c| c.is_control() || c == '\\') {
            return Err(bad("contains a control character or backslash"));
        }
        for segment in path.split('/') {
            match segment {
                "" => return Err(bad("empty segment")),
                "." | ".." => return Err(bad("'.' or '..' segment")),
                _ => {}
            }
        }
        Ok(Self(path.to_owned()))
    }

    /// The path text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment (the file name).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// Everything before the file name, without the trailing slash (`""` at top level).
    pub fn parent(&self) -> &str {
        self.0.rsplit_once('/').map_or("", |(dir, _)| dir)
    }

    /// The consistent-snapshot name TUF clients fetch: `dir/<hash>.<file name>`.
    pub fn hash_prefixed(&self, sha256_hex: &str) -> String {
        match self.parent() {
            "" => format!("{sha256_hex}.{}", self.file_name()),
            dir => format!("{dir}/{sha256_hex}.{}", self.file_name()),
        }
    }
}

impl<'de> Deserialize<'de> for DropPath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DropPath::new(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for DropPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `name`.
            pub fn new(name: &str) -> Result<Self, ModelError> {
                if valid_name(name) {
                    Ok(Self(name.to_owned()))
                } else {
                    Err(ModelError::BadName { what: $what, name: name.chars().take(100).collect() })
                }
            }

            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::new(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// The name of a drop (`genesis-mint`).
    DropName,
    "drop name"
);
name_type!(
    /// The name of an asset class (`keyframe`).
    ClassName,
    "class name"
);

/// A delivery path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// BitTorrent peers.
    P2p,
    /// An edge cache over HTTP.
    Edge,
    /// The publisher's HTTP origin.
    Origin,
}

impl PathKind {
    /// Every path kind.
    pub const ALL: [PathKind; 3] = [PathKind::P2p, PathKind::Edge, PathKind::Origin];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::P2p => "p2p",
            PathKind::Edge => "edge",
            PathKind::Origin => "origin",
        }
    }
}

impl std::str::FromStr for PathKind {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PathKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| ModelError::UnknownPathKind(s.chars().take(100).collect()))
    }
}

impl fmt::Display for PathKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A BitTorrent v1 infohash: SHA-1 of the bencoded `info` dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// Parses 40 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, ModelError> {
        hex::decode(text)
            .ok()
            .and_then(|b| <[u8; 20]>::try_from(b).ok())
            .map(InfoHash)
            .ok_or_else(|| ModelError::BadInfoHash(text.chars().take(100).collect()))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for InfoHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for InfoHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        InfoHash::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters and the bytes in
/// `keep` (`b"/"` to encode a path, `b""` for a query value).
pub fn percent_encode(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || keep.contains(&byte)
        {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encode("a b/c#d%é", b"/"), "a%20b/c%23d%25%C3%A9");
        assert_eq!(percent_encode("http://x/y", b""), "http%3A%2F%2Fx%2Fy");
    }

    #[test]
    fn drop_paths() {
        let p = DropPath::new("frames/f001.png").unwrap();
        assert_eq!(p.file_name(), "f001.png");
        assert_eq!(p.parent(), "frames");
        assert_eq!(p.hash_prefixed("ab"), "frames/ab.f001.png");
        assert_eq!(
            DropPath::new("top.txt").unwrap().hash_prefixed("ab"),
            "ab.top.txt"
        );
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "a//b",
            "./a",
            "a\\b",
            "a\nb",
            "a/",
        ] {
            assert!(DropPath::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names() {
        assert!(ClassName::new("keyframe").is_ok());
        assert!(ClassName::new("Key Frame").is_err());
        assert!(DropName::new("").is_err());
        assert_eq!("edge".parse::<PathKind>().unwrap(), PathKind::Edge);
        assert!("cdn".parse::<PathKind>().is_err());
    }

    proptest! {
        #[test]
        fn valid_paths_never_escape(s in "[a-z./\\\\]{0,20}") {
            if let Ok(p) = DropPath::new(&s) {
                prop_assert!(!p.as_str().starts_with('/'));
                prop_assert!(p.as_str().split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".."));
            }
        }
    }
}
