//! Kept-alive connections for the client's many small range requests: a viewer asks an
//! edge for hundreds of 32 KiB ranges, and a new TCP connection for each costs a round
//! trip and a handshake before the first byte, and a connection's worth of work on both
//! ends. Idle connections are kept per (host, source address), a few each, and reused
//! when ready; one that turns out closed costs a retry on a new connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::Response;

use crate::{build, exchange, open, FetchError, HttpUrl, Sender, Timeouts};

/// Connections kept per (host, source address): enough for a client's parallel ranges
/// to one mirror, few enough that idle ones cost nothing much.
const KEPT_PER_HOST: usize = 16;

/// Which of a client's connections a request may reuse. A kept connection's I/O runs on
/// the runtime that opened it: a client that runs its background downloads on a
/// lower-priority runtime keeps their connections apart, so that an urgent request never
/// rides a connection driven by the background runtime (nor the reverse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lane {
    /// Requests made from the caller's main runtime.
    #[default]
    Foreground,
    /// Requests made from a background runtime.
    Background,
}

type Key = (String, Option<IpAddr>, Lane);

fn pool() -> &'static Mutex<HashMap<Key, Vec<Sender>>> {
    static POOL: OnceLock<Mutex<HashMap<Key, Vec<Sender>>>> = OnceLock::new();
    POOL.get_or_init(Mutex::default)
}

/// A ready kept connection to `key`, if there is one (closed ones are dropped; busy
/// ones, whose last body is still being read, stay).
fn take(key: &Key) -> Option<Sender> {
    let mut pool = pool()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let senders = pool.get_mut(key)?;
    senders.retain(|s| !s.is_closed());
    let ready = senders.iter().position(Sender::is_ready)?;
    Some(senders.swap_remove(ready))
}

fn keep(key: Key, sender: Sender) {
    let mut pool = pool()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let senders = pool.entry(key).or_default();
    senders.retain(|s| !s.is_closed());
    if senders.len() < KEPT_PER_HOST {
        senders.push(sender);
    }
}

/// `GET url` like [`crate::get`], on a kept-alive connection when one is ready. The
/// connection goes back to the pool at once and is reused once its body has been read
/// to the end (a body dropped early closes it).
pub async fn get_pooled(
    url: &HttpUrl,
    headers: &[(&str, &str)],
    timeouts: Timeouts,
) -> Result<Response<Incoming>, FetchError> {
    get_pooled_in(Lane::Foreground, url, headers, timeouts).await
}

/// [`get_pooled`] on the connections of `lane` (see [`Lane`]).
pub async fn get_pooled_in(
    lane: Lane,
    url: &HttpUrl,
    headers: &[(&str, &str)],
    timeouts: Timeouts,
) -> Result<Response<Incoming>, FetchError> {
    let key: Key = (url.authority().to_owned(), timeouts.source, lane);
    if let Some(mut sender) = take(&key) {
        let request = build(&hyper::Method::GET, url, headers, Bytes::new())?;
        // A kept connection the server has just closed fails at once: fall through to a
        // new one rather than report the mirror as failing.
        if let Ok(response) = exchange(&mut sender, url, request, timeouts).await {
            keep(key, sender);
            return Ok(response);
        }
    }
    let mut sender = open(url, timeouts).await?;
    let request = build(&hyper::Method::GET, url, headers, Bytes::new())?;
    let response = exchange(&mut sender, url, request, timeouts).await?;
    keep(key, sender);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http_body_util::BodyExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A keep-alive server answering every request on a connection with `body`; it
    /// counts connections, and closes each after `per_connection` requests.
    async fn server_with(per_connection: usize, body: Vec<u8>) -> (HttpUrl, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                tokio::spawn(async move {
                    for _ in 0..per_connection {
                        let mut request = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match socket.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buf[..n]),
                            }
                        }
                        let head =
                            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                        if socket.write_all(head.as_bytes()).await.is_err()
                            || socket.write_all(&body).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        (
            HttpUrl::parse(&format!("http://{addr}/x")).unwrap(),
            connections,
        )
    }

    async fn server(per_connection: usize) -> (HttpUrl, Arc<AtomicUsize>) {
        server_with(per_connection, b"0123456789".to_vec()).await
    }

    async fn get_all(url: &HttpUrl) -> Vec<u8> {
        let response = get_pooled(url, &[], Timeouts::default()).await.unwrap();
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn sequential_requests_share_one_connection() {
        let (url, connections) = server(100).await;
        for _ in 0..5 {
            assert_eq!(get_all(&url).await, b"0123456789");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn lanes_keep_their_connections_apart() {
        let (url, connections) = server(100).await;
        for lane in [
            Lane::Foreground,
            Lane::Background,
            Lane::Foreground,
            Lane::Background,
        ] {
            let response = get_pooled_in(lane, &url, &[], Timeouts::default())
                .await
                .unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"0123456789");
        }
        // One connection per lane, each reused once.
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced_without_an_error() {
        let (url, connections) = server(1).await;
        for _ in 0..3 {
            assert_eq!(get_all(&url).await, b"0123456789");
            // Let the client see the close before the next request.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn parallel_requests_open_parallel_connections() {
        // Large enough that the first body cannot already sit in the client's buffer.
        let (url, connections) = server_with(100, vec![7; 4 << 20]).await;
        let first = get_pooled(&url, &[], Timeouts::default()).await.unwrap();
        // The first body is unread, so its connection is busy: the second needs its own.
        let second = get_pooled(&url, &[], Timeouts::default()).await.unwrap();
        for response in [first, second] {
            response.into_body().collect().await.unwrap();
        }
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }
}
