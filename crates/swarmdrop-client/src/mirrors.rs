//! Where the drop can be read from: the edges (fastest first, by a measured round trip)
//! and the origin, tried in that order for every metadata file, so a dead or stale edge
//! costs one failed request, not the refresh.

use std::time::{Duration, Instant};

use bytes::Bytes;
use swarmdrop_httpc::{get_bytes, HttpUrl, Timeouts};
use swarmdrop_manifest::model::percent_encode;

use crate::ClientError;

/// One base URL of a published drop.
#[derive(Debug, Clone)]
pub struct Mirror {
    /// `edge0`, `edge1`, … or `origin`.
    pub label: String,
    /// The published root.
    pub base: HttpUrl,
    /// Measured round trip (a small GET), if it answered.
    pub rtt: Option<Duration>,
    /// The local address calls come from (the viewer's own), if set.
    pub source: Option<std::net::IpAddr>,
}

impl Mirror {
    /// Time bounds for a call to this mirror, from the viewer's address.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            source: self.source,
            ..Timeouts::default()
        }
    }

    /// The URL of `relative` (a path under the published root), segments encoded.
    pub fn url(&self, relative: &str) -> HttpUrl {
        self.base.join(&percent_encode(relative, b"/"))
    }
}

/// Edges (in the order given) then the origin, each base URL checked.
pub fn parse_mirrors(
    origin: &str,
    edges: &[String],
    source: Option<std::net::IpAddr>,
) -> Result<Vec<Mirror>, ClientError> {
    let parse = |label: String, url: &str| {
        HttpUrl::parse(url)
            .map(|base| Mirror {
                label,
                base,
                rtt: None,
                source,
            })
            .map_err(|e| ClientError::Usage(format!("{url}: {e}")))
    };
    let mut mirrors = Vec::new();
    for (k, edge) in edges.iter().enumerate() {
        mirrors.push(parse(format!("edge{k}"), edge)?);
    }
    mirrors.push(parse("origin".into(), origin)?);
    Ok(mirrors)
}

/// Measures each edge with a GET of `metadata/timestamp.json` (small, always present)
/// and sorts the edges fastest first; the origin stays last. Unreachable edges keep no
/// RTT and go after the reachable ones.
pub async fn probe(mirrors: &mut [Mirror], headers: &[(&str, &str)]) {
    for mirror in mirrors.iter_mut() {
        let timeouts = Timeouts {
            connect: Duration::from_secs(2),
            head: Duration::from_secs(2),
            source: mirror.source,
        };
        let url = mirror.url("metadata/timestamp.json");
        let started = Instant::now();
        // Kept alive: the metadata walk and the first ranges reuse this connection.
        let answer = get_bytes(&url, headers, 1 << 20, timeouts, Duration::from_secs(2)).await;
        mirror.rtt = match answer {
            Ok((status, _)) if status.is_success() => Some(started.elapsed()),
            _ => None,
        };
    }
    let origin = mirrors.len().saturating_sub(1);
    mirrors[..origin].sort_by_key(|m| m.rtt.unwrap_or(Duration::MAX));
}

/// The mirrors as places to read TUF metadata from, in order (`get`'s refresh): a copy
/// that does not verify moves on to the next mirror.
pub struct MirrorSource<'a> {
    /// The mirrors, fastest edge first, the origin last.
    pub mirrors: &'a [Mirror],
    /// Sent with every request (the gateway's token).
    pub headers: &'a [(&'a str, &'a str)],
}

impl crate::tuf::MetadataSource for MirrorSource<'_> {
    fn places(&self) -> usize {
        self.mirrors.len()
    }

    fn label(&self, index: usize) -> String {
        self.mirrors
            .get(index)
            .map_or_else(String::new, |m| m.label.clone())
    }

    async fn fetch(
        &self,
        index: usize,
        path: &str,
        max_bytes: usize,
    ) -> Result<Option<Bytes>, ClientError> {
        let Some(mirror) = self.mirrors.get(index) else {
            return Ok(None);
        };
        let metadata = mirror.base.join("metadata");
        crate::tuf::fetch_metadata(&metadata, path, max_bytes, self.headers, mirror.timeouts())
            .await
    }
}

/// A file from the first mirror that has it: `Ok(None)` when every mirror says it does
/// not exist (404/410), an error when none could answer.
pub async fn fetch_first(
    mirrors: &[Mirror],
    relative: &str,
    max_bytes: usize,
    headers: &[(&str, &str)],
) -> Result<Option<Bytes>, ClientError> {
    let mut problems = Vec::new();
    let mut missing = 0;
    for mirror in mirrors {
        let url = mirror.url(relative);
        match get_bytes(
            &url,
            headers,
            max_bytes,
            mirror.timeouts(),
            Duration::from_secs(30),
        )
        .await
        {
            Ok((status, body)) if status.is_success() => return Ok(Some(body)),
            Ok((status, _)) if matches!(status.as_u16(), 404 | 410) => missing += 1,
            Ok((status, _)) => problems.push(format!("{}: HTTP {status}", mirror.label)),
            Err(e) => problems.push(format!("{}: {e}", mirror.label)),
        }
    }
    if missing > 0 {
        // Someone answered "not found" (and any others failed): that is the answer.
        return Ok(None);
    }
    Err(ClientError::Unreachable {
        what: relative.to_owned(),
        problems: problems.join("; "),
    })
}
