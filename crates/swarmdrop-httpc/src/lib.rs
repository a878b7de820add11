//! A small HTTP/1.1 client for swarmdrop's own calls (edge → origin, tracker → gateway).
//!
//! Plain `http://` only: these calls run between parts of one deployment, usually on a
//! private network; TLS belongs in front of them (a terminating proxy) for now. Every
//! call is bounded: a connect timeout, a timeout for the response head, and for
//! [`get_bytes`] a cap on the body, so a slow or hostile peer costs a bounded wait and
//! bounded memory.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

mod pool;

pub use hyper::body::Incoming as Body;
pub use hyper::{HeaderMap, Response, StatusCode};
pub use pool::{get_pooled, get_pooled_in, Lane};

/// An `http://host:port/path?query` URL, checked once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    authority: String,
    path: String,
}

/// Why a call failed; each names the URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not an `http://` URL we can call.
    #[error("{url:?} is not an http:// URL with a host ({why})")]
    BadUrl {
        /// The text given.
        url: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The connection failed or timed out.
    #[error("connecting to {url}: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The request or response failed at the HTTP layer.
    #[error("{url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The body was longer than allowed.
    #[error("{url}: the body is longer than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        limit: usize,
    },
}

impl HttpUrl {
    /// Parses `http://authority[/path]`.
    pub fn parse(text: &str) -> Result<Self, FetchError> {
        let bad = |why| FetchError::BadUrl {
            url: text.chars().take(200).collect(),
            why,
        };
        let rest = text
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// is supported"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_owned()),
            Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
            None => (rest, "/".to_owned()),
        };
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        if authority
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
            || path.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad("spaces or control characters"));
        }
        Ok(Self {
            authority: authority.to_owned(),
            path,
        })
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The path and query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `relative` (already percent-encoded) under this URL's path, treated as a
    /// directory whatever its trailing slash; the query is dropped.
    pub fn join(&self, relative: &str) -> Self {
        let base = self.path.split('?').next().unwrap_or("/");
        self.with_path(&format!(
            "{}/{}",
            base.trim_end_matches('/'),
            relative.trim_start_matches('/')
        ))
    }

    /// The same origin with another path (which must start with `/`).
    pub fn with_path(&self, path: &str) -> Self {
        Self {
            authority: self.authority.clone(),
            path: if path.starts_with('/') {
                path.to_owned()
            } else {
                format!("/{path}")
            },
        }
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

/// Time bounds for one call, and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To connect.
    pub connect: Duration,
    /// From sending the request to the end of the response head.
    pub head: Duration,
    /// The local address to call from (default: the system's choice). A peer announcing
    /// to a tracker calls from the address it listens on, since that is the address the
    /// tracker hands out.
    pub source: Option<std::net::IpAddr>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            head: Duration::from_secs(10),
            source: None,
        }
    }
}

async fn connect(authority: &str, source: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(authority).await;
    };
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "resolves to nothing");
    for target in tokio::net::lookup_host(authority).await? {
        if target.is_ipv4() != source.is_ipv4() {
            continue;
        }
        let socket = if target.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(std::net::SocketAddr::new(source, 0))?;
        match socket.connect(target).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Sends `GET url` with `headers` and returns the response with its body still streaming
/// (the caller bounds the time it spends reading it).
pub async fn get(
    url: &HttpUrl,
    headers: &[(&str, &str)],
    timeouts: Timeouts,
) -> Result<Response<Incoming>, FetchError> {
    send(hyper::Method::GET, url, headers, Bytes::new(), timeouts).await
}

/// Sends `method url` with `headers` and `body`; the response's body still streaming.
pub async fn send(
    method: hyper::Method,
    url: &HttpUrl,
    headers: &[(&str, &str)],
    body: Bytes,
    timeouts: Timeouts,
) -> Result<Response<Incoming>, FetchError> {
    let mut sender = open(url, timeouts).await?;
    let request = build(&method, url, headers, body)?;
    exchange(&mut sender, url, request, timeouts).await
}

/// A new HTTP/1.1 connection to `url`'s host, from `timeouts.source`.
pub(crate) async fn open(url: &HttpUrl, timeouts: Timeouts) -> Result<Sender, FetchError> {
    let connect_error = |reason: String| FetchError::Connect {
        url: url.to_string(),
        reason,
    };
    let stream = tokio::time::timeout(timeouts.connect, connect(&url.authority, timeouts.source))
        .await
        .map_err(|_| connect_error(format!("no connection within {:?}", timeouts.connect)))?
        .map_err(|e| connect_error(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| FetchError::Http {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    // The connection runs until its last sender is dropped and its last body is read.
    tokio::spawn(connection);
    Ok(sender)
}

/// The sending half of a connection.
pub(crate) type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>;

fn build(
    method: &hyper::Method,
    url: &HttpUrl,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<hyper::Request<http_body_util::Full<Bytes>>, FetchError> {
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(url.path.as_str())
        .header("host", &url.authority);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(http_body_util::Full::new(body))
        .map_err(|e| FetchError::Http {
            url: url.to_string(),
            reason: format!("building the request: {e}"),
        })
}

/// Sends `request` on `sender` and waits for the response head.
pub(crate) async fn exchange(
    sender: &mut Sender,
    url: &HttpUrl,
    request: hyper::Request<http_body_util::Full<Bytes>>,
    timeouts: Timeouts,
) -> Result<Response<Incoming>, FetchError> {
    let http_error = |reason: String| FetchError::Http {
        url: url.to_string(),
        reason,
    };
    tokio::time::timeout(timeouts.head, sender.send_request(request))
        .await
        .map_err(|_| http_error(format!("no response within {:?}", timeouts.head)))?
        .map_err(|e| http_error(e.to_string()))
}

/// `GET url` and the whole body, refusing bodies over `max_bytes`, all within
/// `timeouts.head` plus `body_time`. It goes over a kept-alive connection when one is
/// ready ([`get_pooled`]), so a client's probe, metadata and first ranges to one mirror,
/// or a tracker's repeated calls to its gateway, share one connection.
pub async fn get_bytes(
    url: &HttpUrl,
    headers: &[(&str, &str)],
    max_bytes: usize,
    timeouts: Timeouts,
    body_time: Duration,
) -> Result<(StatusCode, Bytes), FetchError> {
    let response = get_pooled(url, headers, timeouts).await?;
    read_bounded(url, response, max_bytes, body_time).await
}

/// `POST url` with a JSON `body` and the whole answer, bounded like [`get_bytes`].
pub async fn post_json_bytes(
    url: &HttpUrl,
    headers: &[(&str, &str)],
    body: Bytes,
    max_bytes: usize,
    timeouts: Timeouts,
    body_time: Duration,
) -> Result<(StatusCode, Bytes), FetchError> {
    let mut all: Vec<(&str, &str)> = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let response = send(hyper::Method::POST, url, &all, body, timeouts).await?;
    read_bounded(url, response, max_bytes, body_time).await
}

async fn read_bounded(
    url: &HttpUrl,
    response: Response<Incoming>,
    max_bytes: usize,
    body_time: Duration,
) -> Result<(StatusCode, Bytes), FetchError> {
    let status = response.status();
    let body = tokio::time::timeout(
        body_time,
        Limited::new(response.into_body(), max_bytes).collect(),
    )
    .await
    .map_err(|_| FetchError::Http {
        url: url.to_string(),
        reason: format!("the body did not arrive within {body_time:?}"),
    })?
    .map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            FetchError::TooLarge {
                url: url.to_string(),
                limit: max_bytes,
            }
        } else {
            FetchError::Http {
                url: url.to_string(),
                reason: e.to_string(),
            }
        }
    })?;
    Ok((status, body.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_refuse() {
        let url = HttpUrl::parse("http://127.0.0.1:8080/auth/revocations?x=1").unwrap();
        assert_eq!(url.authority(), "127.0.0.1:8080");
        assert_eq!(url.path(), "/auth/revocations?x=1");
        assert_eq!(
            url.to_string(),
            "http://127.0.0.1:8080/auth/revocations?x=1"
        );
        assert_eq!(HttpUrl::parse("http://h:1").unwrap().path(), "/");
        assert_eq!(HttpUrl::parse("http://h:1?q").unwrap().path(), "/?q");
        assert_eq!(url.with_path("targets/a").path(), "/targets/a");
        for bad in [
            "https://h/",
            "http:///x",
            "ftp://h",
            "http://u:p@h/",
            "http://h/a b",
            "http://h/\n",
        ] {
            assert!(
                matches!(HttpUrl::parse(bad), Err(FetchError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn bodies_are_bounded_and_errors_name_the_url() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 1024];
                    let _ = socket.read(&mut request).await;
                    let body = vec![b'x'; 100];
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(&body).await;
                });
            }
        });
        let url = HttpUrl::parse(&format!("http://{addr}/x")).unwrap();
        let second = Duration::from_secs(1);
        let (status, body) = get_bytes(&url, &[], 100, Timeouts::default(), second)
            .await
            .unwrap();
        assert_eq!((status.as_u16(), body.len()), (200, 100));
        let too_large = get_bytes(&url, &[], 99, Timeouts::default(), second).await;
        assert!(matches!(
            too_large,
            Err(FetchError::TooLarge { limit: 99, .. })
        ));
        let closed = HttpUrl::parse("http://127.0.0.1:1/").unwrap();
        let error = get_bytes(&closed, &[], 10, Timeouts::default(), second)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
    }
}
