//! The demo's emulated network in front of an HTTP service (an edge, the origin): a TCP
//! proxy on loopback that delays every chunk by half the round trip each way (a delay
//! line, so latency does not cap throughput) and caps what the service sends, all
//! connections together, with a token bucket. It counts the bytes the service sent.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use swarmdrop_peer::ratelimit::RateLimit;
use swarmdrop_peer::runtime::RuntimeSlot;
use swarmdrop_peer::transport::read_chunk;
use tokio::io::AsyncWriteExt as _;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A running shaper.
pub(crate) struct Shaper {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Bytes the service sent through it.
    pub sent: Arc<AtomicU64>,
}

/// Reads from `from`, waits for the bucket (if any), and queues each chunk to be written
/// `one_way` later.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    one_way: Duration,
    limit: Option<Arc<RateLimit>>,
    counter: Option<Arc<AtomicU64>>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(256);
    let writer = tokio::spawn(async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    });
    // Copying each chunk out cost the emulated network a tenth of its CPU, taken from
    // the viewers it runs beside.
    let mut buf = BytesMut::new();
    loop {
        let n = match read_chunk(&mut from, &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(limit) = &limit {
            limit.acquire(n).await;
        }
        if let Some(counter) = &counter {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
        if tx
            .send((Instant::now() + one_way, buf.split().freeze()))
            .await
            .is_err()
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// The emulated network's own threads: links are not delayed because the viewers,
/// sharing this machine's cores, keep the demo's runtime busy (on a real network they
/// are other machines' CPUs).
fn network() -> std::io::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: RuntimeSlot = RuntimeSlot::new();
    RUNTIME.get_or_build(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("emulated-network")
            .enable_all()
            .build()
    })
}

/// Starts a shaper on `ip` in front of `upstream`: `rtt` round trip, at most `rate`
/// bytes per second from the service to its clients. It runs on the emulated network's
/// threads.
pub(crate) async fn start(
    ip: &str,
    upstream: SocketAddr,
    rate: Option<u64>,
    rtt: Duration,
) -> std::io::Result<Shaper> {
    let ip = ip.to_owned();
    network()?
        .spawn(async move { start_here(&ip, upstream, rate, rtt).await })
        .await
        .map_err(std::io::Error::other)?
}

async fn start_here(
    ip: &str,
    upstream: SocketAddr,
    rate: Option<u64>,
    rtt: Duration,
) -> std::io::Result<Shaper> {
    let listener = TcpListener::bind((ip, 0)).await?;
    let addr = listener.local_addr()?;
    let sent = Arc::new(AtomicU64::new(0));
    let limit = rate.map(|r| Arc::new(RateLimit::new(r)));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (limit, counter) = (limit.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let one_way = rtt / 2;
                tokio::join!(
                    pump(client_read, server_write, one_way, None, None),
                    pump(server_read, client_write, one_way, limit, Some(counter)),
                );
            });
        }
    });
    Ok(Shaper { addr, sent })
}
