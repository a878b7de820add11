//! Request paths, checked before anything else looks at them.
//!
//! A path is split into segments and each is percent-decoded once. A segment that
//! decodes to nothing, `.` or `..`, or contains `/`, `\`, NUL or another control
//! character is refused, so nothing downstream ever sees a path that could climb out
//! of where it is looked up. What is left must have the shape of something a published
//! drop contains; whether it exists is the index's question.

use std::borrow::Cow;

/// Longest path accepted.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest token accepted in `/t/<token>/…`.
pub const MAX_TOKEN_BYTES: usize = 8192;
/// Most segments in a path.
pub const MAX_SEGMENTS: usize = 32;
/// Longest segment, decoded.
pub const MAX_SEGMENT_BYTES: usize = 255;

/// What a path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// `metadata/<name>`: `timestamp.json`, `root.json` or `N.<role>.json`.
    Metadata(String),
    /// `targets/<consistent-snapshot path>`.
    Target(String),
    /// `torrents/<name>.torrent`.
    Torrent(String),
}

impl Object {
    /// The path relative to the published root.
    pub fn relative(&self) -> String {
        match self {
            Object::Metadata(name) => format!("metadata/{name}"),
            Object::Target(path) => format!("targets/{path}"),
            Object::Torrent(name) => format!("torrents/{name}"),
        }
    }
}

/// A checked request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath {
    /// The token from `/t/<token>/…`.
    pub token: Option<String>,
    /// What is asked for.
    pub object: Object,
}

/// A refused path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not a path we would ever serve (400).
    #[error("bad path: {0}")]
    Bad(&'static str),
    /// Well-formed but not something a published drop has (404).
    #[error("not found: {0}")]
    NotServed(&'static str),
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes one segment and refuses what could climb or hide: empty, `.`,
/// `..`, longer than `max_bytes`, or holding a slash, backslash or control character.
/// (`swarmdrop serve`'s origin checks its paths with this too.)
pub fn decode_segment(raw: &str, max_bytes: usize) -> Result<Cow<'_, str>, PathError> {
    let text = if raw.contains('%') {
        Cow::Owned(percent_decode(raw)?)
    } else {
        Cow::Borrowed(raw)
    };
    if text.is_empty() {
        return Err(PathError::Bad("an empty segment"));
    }
    if text == "." || text == ".." {
        return Err(PathError::Bad("a dot segment"));
    }
    if text.len() > max_bytes {
        return Err(PathError::Bad(
            "a segment longer than allowed (255 bytes; tokens 8 KiB)",
        ));
    }
    if text
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(PathError::Bad(
            "a slash, backslash or control character in a segment",
        ));
    }
    Ok(text)
}

fn percent_decode(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let high = bytes.get(at + 1).copied().and_then(hex_value);
            let low = bytes.get(at + 2).copied().and_then(hex_value);
            match (high, low) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(PathError::Bad("a % not followed by two hex digits")),
            }
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::Bad("a segment that is not UTF-8"))
}

fn metadata_name(name: &str) -> bool {
    let role = match name.split_once('.') {
        Some((version, rest))
            if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) =>
        {
            if version.len() > 19 {
                return false;
            }
            rest
        }
        _ => name,
    };
    matches!(
        role,
        "root.json" | "timestamp.json" | "snapshot.json" | "targets.json"
    )
}

/// The raw (still encoded) segments of an absolute request path, at most
/// `max_segments` of them, after the checks every path gets: its length, the leading
/// `/`, and the root (never a file). Decode each with [`decode_segment`].
/// (`swarmdrop serve`'s origin splits its paths with this too.)
pub fn split(path: &str, max_segments: usize) -> Result<Vec<&str>, PathError> {
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::Bad("longer than 4096 bytes"));
    }
    let rest = path
        .strip_prefix('/')
        .ok_or(PathError::Bad("not an absolute path"))?;
    if rest.is_empty() {
        return Err(PathError::NotServed("the root is not a file"));
    }
    let raw: Vec<&str> = rest.split('/').collect();
    if raw.len() > max_segments {
        return Err(PathError::Bad("more than 32 segments"));
    }
    Ok(raw)
}

/// Checks `path` (the request target's path, still percent-encoded, without the query).
pub fn parse(path: &str) -> Result<RequestPath, PathError> {
    // Two more for `/t/<token>/`.
    let raw = split(path, MAX_SEGMENTS + 2)?;
    let (token, raw) = match raw.as_slice() {
        ["t", token, rest @ ..] => {
            if token.len() > MAX_TOKEN_BYTES {
                return Err(PathError::Bad("a token longer than 8 KiB"));
            }
            // Tokens are longer than file names (a gateway token is ~600 bytes).
            let token = decode_segment(token, MAX_TOKEN_BYTES)?;
            (Some(token), rest)
        }
        all => (None, all),
    };
    let segments = raw
        .iter()
        .map(|s| decode_segment(s, MAX_SEGMENT_BYTES))
        .collect::<Result<Vec<_>, _>>()?;
    let object = match segments.split_first() {
        Some((top, rest)) if top == "metadata" => match rest {
            [name] if metadata_name(name) => Object::Metadata(name.to_string()),
            _ => return Err(PathError::NotServed("no such metadata file")),
        },
        Some((top, rest)) if top == "torrents" => match rest {
            [name] if name.ends_with(".torrent") => Object::Torrent(name.to_string()),
            _ => return Err(PathError::NotServed("no such torrent")),
        },
        Some((top, rest)) if top == "targets" && !rest.is_empty() => Object::Target(rest.join("/")),
        _ => {
            return Err(PathError::NotServed(
                "only metadata/, targets/ and torrents/ are served",
            ))
        }
    };
    Ok(RequestPath {
        token: token.map(Cow::into_owned),
        object,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn drop_paths_parse() {
        assert_eq!(
            parse("/targets/frames/ab12.f001.png").unwrap(),
            RequestPath {
                token: None,
                object: Object::Target("frames/ab12.f001.png".into())
            }
        );
        assert_eq!(
            parse("/t/v4.public.abc/metadata/3.targets.json").unwrap(),
            RequestPath {
                token: Some("v4.public.abc".into()),
                object: Object::Metadata("3.targets.json".into())
            }
        );
        assert_eq!(
            parse("/targets/a%20b/c").unwrap().object,
            Object::Target("a b/c".into())
        );
        assert_eq!(
            parse("/torrents/x.torrent").unwrap().object.relative(),
            "torrents/x.torrent"
        );
        for name in [
            "timestamp.json",
            "root.json",
            "1.root.json",
            "12.snapshot.json",
        ] {
            assert!(parse(&format!("/metadata/{name}")).is_ok(), "{name}");
        }
    }

    #[test]
    fn hostile_paths_are_refused() {
        for bad in [
            "",
            "targets/a",
            "/../etc/passwd",
            "/targets/../../etc/passwd",
            "/targets/%2e%2e/%2e%2e/etc/passwd",
            "/targets/%2E%2E/x",
            "/targets/./x",
            "/targets/a%00b",
            "/targets/a%2fb",
            "/targets/a%5cb",
            "/targets/a\\b",
            "//etc/passwd",
            "/targets//x",
            "/targets/%zz",
            "/targets/%",
            "/targets/%ff",
            "/t//targets/x",
        ] {
            assert!(
                matches!(parse(bad), Err(PathError::Bad(_))),
                "{bad:?} -> {:?}",
                parse(bad)
            );
        }
        for unserved in [
            "/",
            "/etc/passwd",
            "/targets",
            "/metadata/secret.key",
            "/metadata/a/b",
            "/metadata/x.root.json",
            "/torrents/x.txt",
            "/provenance/1.dsse.json",
        ] {
            assert!(
                matches!(parse(unserved), Err(PathError::NotServed(_))),
                "{unserved:?} -> {:?}",
                parse(unserved)
            );
        }
        assert!(parse(&format!("/targets/{}", "a/".repeat(40))).is_err());
        assert!(parse(&format!("/targets/{}", "a".repeat(300))).is_err());
        // A token may be long; a file name may not.
        let token = format!("v4.public.{}", "A".repeat(700));
        assert_eq!(
            parse(&format!("/t/{token}/targets/x")).unwrap().token,
            Some(token)
        );
        assert!(parse(&format!("/t/{}/targets/x", "A".repeat(9000))).is_err());
    }

    proptest! {
        /// Whatever comes in, an accepted target path has no segment that could climb.
        #[test]
        fn accepted_paths_never_climb(path in "/[a-z%./\\\\0-9A-F]{0,40}") {
            if let Ok(RequestPath { object, .. }) = parse(&path) {
                let relative = object.relative();
                for segment in relative.split('/') {
                    prop_assert!(!segment.is_empty() && segment != "." && segment != "..");
                    prop_assert!(!segment.contains('\\') && !segment.contains('\0'));
                }
            }
        }
    }
}
