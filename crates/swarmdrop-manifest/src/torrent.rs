//! BitTorrent v1 metainfo (BEP 3) with `announce-list` (BEP 12) and `url-list` webseeds
//! (BEP 19), and magnet links (BEP 9).
//!
//! We write single-file torrents, one per asset, so each asset is its own swarm and a
//! live drop's new segments never change an existing infohash. We read any v1 torrent,
//! single- or multi-file, for `inspect`.

use sha1::{Digest as _, Sha1};
use swarmdrop_bencode::{Decoder, Dict, EncodeError, Value, Writer};

use crate::model::{percent_encode, InfoHash};

/// What is wrong with a torrent file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TorrentError {
    /// The bytes are not bencode.
    #[error("torrent is not valid bencode: {0}")]
    Bencode(#[from] swarmdrop_bencode::DecodeError),
    /// A field is missing or has the wrong type or value.
    #[error("torrent field {field}: {problem}")]
    Field {
        /// The field path, e.g. `info.piece length`.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// Writing produced non-canonical bencode (a bug, reported rather than hidden).
    #[error("{0}")]
    Encode(#[from] EncodeError),
}

fn field(field: &'static str, problem: impl Into<String>) -> TorrentError {
    TorrentError::Field {
        field,
        problem: problem.into(),
    }
}

/// What to put into a single-file torrent.
#[derive(Debug, Clone)]
pub struct NewTorrent<'a> {
    /// File name (no slashes).
    pub name: &'a str,
    /// File length in bytes.
    pub length: u64,
    /// Piece length in bytes.
    pub piece_length: u32,
    /// SHA-1 of each piece.
    pub pieces: &'a [[u8; 20]],
    /// Tracker announce URLs, one tier each, in preference order.
    pub trackers: &'a [String],
    /// Full URLs of the file on HTTP webseeds.
    pub webseeds: &'a [String],
    /// `created by`.
    pub created_by: &'a str,
    /// `creation date` (Unix seconds).
    pub creation_date: i64,
}

impl NewTorrent<'_> {
    /// The bencoded `.torrent` and its infohash.
    pub fn build(&self) -> Result<(Vec<u8>, InfoHash), TorrentError> {
        if self.name.is_empty() || self.name.contains('/') {
            return Err(field(
                "info.name",
                format!("{:?} is not a plain file name", self.name),
            ));
        }
        let length = i64::try_from(self.length).map_err(|_| field("info.length", "too large"))?;
        let mut info = Vec::with_capacity(128 + self.pieces.len() * 20);
        Writer::new(&mut info).dict(|d| {
            d.key("length")?.int(length);
            d.key("name")?.str(self.name);
            d.key("piece length")?.int(i64::from(self.piece_length));
            let pieces: Vec<u8> = self.pieces.concat();
            d.key("pieces")?.bytes(&pieces);
            Ok(())
        })?;
        let info_hash = InfoHash(Sha1::digest(&info).into());

        let mut out = Vec::with_capacity(info.len() + 512);
        let mut writer = Writer::new(&mut out);
        writer.dict(|d| {
            if let Some(first) = self.trackers.first() {
                d.key("announce")?.str(first);
                d.key("announce-list")?.list(|tiers| {
                    for tracker in self.trackers {
                        tiers.list(|tier| {
                            tier.str(tracker);
                            Ok(())
                        })?;
                    }
                    Ok(())
                })?;
            }
            d.key("created by")?.str(self.created_by);
            d.key("creation date")?.int(self.creation_date);
            // The info dictionary is spliced in as written, so its hash is what we computed.
            let w = d.key("info")?;
            w.raw(&info);
            if !self.webseeds.is_empty() {
                d.key("url-list")?.list(|urls| {
                    for url in self.webseeds {
                        urls.str(url);
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })?;
        Ok((out, info_hash))
    }
}

/// One file of a torrent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TorrentFile {
    /// Path segments joined with `/`.
    pub path: String,
    /// Length in bytes.
    pub length: u64,
}

/// A parsed v1 torrent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Metainfo {
    /// SHA-1 of the `info` dictionary as it appears in the file.
    pub info_hash: InfoHash,
    /// `info.name`.
    pub name: String,
    /// Total length of all files.
    pub length: u64,
    /// `info.piece length`.
    pub piece_length: u64,
    /// Number of pieces.
    pub piece_count: usize,
    /// Files (one for a single-file torrent).
    pub files: Vec<TorrentFile>,
    /// `announce`.
    pub announce: Option<String>,
    /// `announce-list` tiers.
    pub announce_list: Vec<Vec<String>>,
    /// `url-list` webseeds.
    pub url_list: Vec<String>,
    /// `info.private` = 1 (BEP 27).
    pub private: bool,
    /// `creation date`.
    pub creation_date: Option<i64>,
    /// `created by`.
    pub created_by: Option<String>,
    /// `comment`.
    pub comment: Option<String>,
    /// SHA-1 of each piece.
    #[serde(skip)]
    pub pieces: Vec<[u8; 20]>,
}

impl Metainfo {
    /// Parses a torrent file. Key order is not enforced (torrents in the wild break it).
    pub fn parse(bytes: &[u8]) -> Result<Self, TorrentError> {
        let decoder = Decoder {
            require_sorted_keys: false,
            ..Decoder::default()
        };
        let root = decoder.decode(bytes)?;
        let root = root
            .as_dict()
            .ok_or_else(|| field("(root)", "not a dictionary"))?;
        let info = root
            .get(b"info")
            .ok_or_else(|| field("info", "missing"))?
            .as_dict()
            .ok_or_else(|| field("info", "not a dictionary"))?;
        let info_hash = InfoHash(Sha1::digest(info.encoded()).into());

        let name =
            text(info, b"name", "info.name")?.ok_or_else(|| field("info.name", "missing"))?;
        let piece_length = positive(info, b"piece length", "info.piece length")?
            .ok_or_else(|| field("info.piece length", "missing"))?;
        let pieces_raw = info
            .get(b"pieces")
            .ok_or_else(|| field("info.pieces", "missing"))?
            .as_bytes()
            .ok_or_else(|| field("info.pieces", "not a byte string"))?;
        if pieces_raw.len() % 20 != 0 {
            return Err(field(
                "info.pieces",
                format!("length {} is not a multiple of 20", pieces_raw.len()),
            ));
        }
        let pieces: Vec<[u8; 20]> = pieces_raw
            .chunks_exact(20)
            .map(|c| {
                let mut piece = [0u8; 20];
                piece.copy_from_slice(c);
                piece
            })
            .collect();

        let files = match (info.get(b"length"), info.get(b"files")) {
            (Some(_), None) => {
                let length = non_negative(info, b"length", "info.length")?.unwrap_or(0);
                vec![TorrentFile {
                    path: name.clone(),
                    length,
                }]
            }
            (None, Some(list)) => parse_files(list)?,
            (Some(_), Some(_)) => return Err(field("info", "has both length and files")),
            (None, None) => return Err(field("info.length", "missing (and no info.files)")),
        };
        let length = files
            .iter()
            .try_fold(0u64, |sum, f| sum.checked_add(f.length))
            .ok_or_else(|| field("info.files", "total length overflows"))?;
        let expected_pieces = length.div_ceil(piece_length);
        if expected_pieces != pieces.len() as u64 {
            return Err(field(
                "info.pieces",
                format!("{} pieces for {length} bytes at piece length {piece_length}; expected {expected_pieces}", pieces.len()),
            ));
        }

        let announce_list = match root.get(b"announce-list") {
            None => Vec::new(),
            Some(value) => value
                .as_list()
                .ok_or_else(|| field("announce-list", "not a list"))?
                .iter()
                .map(|tier| {
                    tier.as_list()
                        .ok_or_else(|| field("announce-list", "a tier is not a list"))?
                        .iter()
                        .map(|url| {
                            url.as_str()
                                .map(str::to_owned)
                                .ok_or_else(|| field("announce-list", "a URL is not UTF-8 text"))
                        })
                        .collect()
                })
                .collect::<Result<_, _>>()?,
        };
        let url_list = match root.get(b"url-list") {
            None => Vec::new(),
            Some(Value::Bytes(b"")) => Vec::new(),
            Some(Value::Bytes(_)) => vec![text(root, b"url-list", "url-list")?.unwrap_or_default()],
            Some(Value::List(urls)) => urls
                .iter()
                .map(|u| {
                    u.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| field("url-list", "a URL is not UTF-8 text"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(field("url-list", "not a list or string")),
        };

        Ok(Metainfo {
            info_hash,
            name,
            length,
            piece_length,
            piece_count: pieces.len(),
            files,
            announce: text(root, b"announce", "announce")?,
            announce_list,
            url_list,
            private: info.get(b"private").and_then(Value::as_int) == Some(1),
            creation_date: root.get(b"creation date").and_then(Value::as_int),
            created_by: text(root, b"created by", "created by").ok().flatten(),
            comment: text(root, b"comment", "comment").ok().flatten(),
            pieces,
        })
    }

    /// All trackers, tiers flattened, `announce` first if it is not in a tier.
    pub fn trackers(&self) -> Vec<String> {
        let mut all: Vec<String> = self.announce_list.iter().flatten().cloned().collect();
        if let Some(announce) = &self.announce {
            if !all.contains(announce) {
                all.insert(0, announce.clone());
            }
        }
        all
    }

    /// The magnet link for this torrent.
    pub fn magnet(&self) -> String {
        magnet_link(
            &self.info_hash,
            &self.name,
            &self.trackers(),
            &self.url_list,
        )
    }
}

fn parse_files(list: &Value<'_>) -> Result<Vec<TorrentFile>, TorrentError> {
    let entries = list
        .as_list()
        .ok_or_else(|| field("info.files", "not a list"))?;
    if entries.is_empty() {
        return Err(field("info.files", "empty"));
    }
    entries
        .iter()
        .map(|entry| {
            let entry = entry
                .as_dict()
                .ok_or_else(|| field("info.files", "an entry is not a dictionary"))?;
            let length = non_negative(entry, b"length", "info.files.length")?
                .ok_or_else(|| field("info.files.length", "missing"))?;
            let segments = entry
                .get(b"path")
                .and_then(Value::as_list)
                .ok_or_else(|| field("info.files.path", "missing or not a list"))?;
            let path = segments
                .iter()
                .map(|s| {
                    s.as_str()
                        .ok_or_else(|| field("info.files.path", "a segment is not UTF-8 text"))
                })
                .collect::<Result<Vec<_>, _>>()?
                .join("/");
            Ok(TorrentFile { path, length })
        })
        .collect()
}

fn text(dict: &Dict<'_>, key: &[u8], name: &'static str) -> Result<Option<String>, TorrentError> {
    match dict.get(key) {
        None => Ok(None),
        Some(value) => value
            .as_str()
            .map(|s| Some(s.to_owned()))
            .ok_or_else(|| field(name, "not UTF-8 text")),
    }
}

fn non_negative(
    dict: &Dict<'_>,
    key: &[u8],
    name: &'static str,
) -> Result<Option<u64>, TorrentError> {
    match dict.get(key) {
        None => Ok(None),
        Some(value) => {
            let n = value.as_int().ok_or_else(|| {
                field(name, format!("is a {}, not an integer", value.type_name()))
            })?;
            u64::try_from(n)
                .map(Some)
                .map_err(|_| field(name, format!("{n} is negative")))
        }
    }
}

fn positive(dict: &Dict<'_>, key: &[u8], name: &'static str) -> Result<Option<u64>, TorrentError> {
    match non_negative(dict, key, name)? {
        Some(0) => Err(field(name, "is zero")),
        other => Ok(other),
    }
}

/// `magnet:?xt=urn:btih:…&dn=…&tr=…&ws=…` (BEP 9; `ws` as BEP 19 clients read it).
pub fn magnet_link(
    info_hash: &InfoHash,
    name: &str,
    trackers: &[String],
    webseeds: &[String],
) -> String {
    let mut link = format!(
        "magnet:?xt=urn:btih:{}&dn={}",
        info_hash.to_hex(),
        percent_encode(name, b"")
    );
    for tracker in trackers {
        link.push_str("&tr=");
        link.push_str(&percent_encode(tracker, b""));
    }
    for webseed in webseeds {
        link.push_str("&ws=");
        link.push_str(&percent_encode(webseed, b""));
    }
    link
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> (Vec<u8>, InfoHash) {
        let pieces = [[1u8; 20], [2u8; 20]];
        NewTorrent {
            name: "patch.bin",
            length: 20_000,
            piece_length: 16_384,
            pieces: &pieces,
            trackers: &[
                "http://127.0.0.1:6969/announce".into(),
                "udp://127.0.0.1:6969".into(),
            ],
            webseeds: &["http://127.0.0.1:8080/targets/ab.patch.bin".into()],
            created_by: "swarmdrop test",
            creation_date: 1_700_000_000,
        }
        .build()
        .unwrap()
    }

    #[test]
    fn build_then_parse() {
        let (bytes, info_hash) = sample();
        let meta = Metainfo::parse(&bytes).unwrap();
        assert_eq!(meta.info_hash, info_hash);
        assert_eq!(meta.name, "patch.bin");
        assert_eq!(
            (meta.length, meta.piece_length, meta.piece_count),
            (20_000, 16_384, 2)
        );
        assert_eq!(meta.announce_list.len(), 2);
        assert_eq!(
            meta.url_list,
            vec!["http://127.0.0.1:8080/targets/ab.patch.bin".to_owned()]
        );
        // Our output is canonical bencode.
        assert!(swarmdrop_bencode::decode(&bytes).is_ok());
        assert!(meta.magnet().starts_with(&format!("magnet:?xt=urn:btih:{info_hash}&dn=patch.bin&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce")));
    }

    #[test]
    fn bad_torrents_are_named() {
        let (bytes, _) = sample();
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(Metainfo::parse(&bytes[..cut]).is_err());
        }
        let wrong_count = String::from_utf8_lossy(&bytes).replace("i20000e", "i40000e");
        let err = Metainfo::parse(wrong_count.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("info.pieces"), "{err}");
        let err = Metainfo::parse(b"d4:infod4:name1:xee").unwrap_err();
        assert!(err.to_string().contains("info.piece length"), "{err}");
        let err = Metainfo::parse(b"d4:infod12:piece lengthi0e4:name1:x6:pieces0:6:lengthi0eee")
            .unwrap_err();
        assert!(err.to_string().contains("zero"), "{err}");
    }

    #[test]
    fn multi_file_torrents_parse() {
        let input = b"d4:infod5:filesld6:lengthi3e4:pathl1:a1:beed6:lengthi2e4:pathl1:ceee4:name3:dir12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee";
        let meta = Metainfo::parse(input).unwrap();
        assert_eq!(meta.length, 5);
        assert_eq!(meta.files[0].path, "a/b");
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Metainfo::parse(&bytes);
        }

        #[test]
        fn mutated_torrents_never_panic(index in 0usize..200, byte in any::<u8>()) {
            let (mut bytes, _) = sample();
            let i = index % bytes.len();
            bytes[i] = byte;
            let _ = Metainfo::parse(&bytes);
        }
    }
}
