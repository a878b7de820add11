//! The origin in process, over a real socket: answers, and a graceful stop that lets a
//! response in flight finish.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use swarmdrop_serve::config::OriginSettings;
use swarmdrop_serve::origin::{serve, Origin};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn published() -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("metadata")).unwrap();
    std::fs::create_dir_all(dir.path().join("targets/bulk")).unwrap();
    std::fs::write(dir.path().join("metadata/timestamp.json"), b"{}").unwrap();
    let big: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join(format!("targets/bulk/{SHA}.big.bin")), &big).unwrap();
    // A file outside the root, reachable only through a symlink.
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join("targets/link")).unwrap();
    (dir, big)
}

async fn start(
    dir: &std::path::Path,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let settings = OriginSettings {
        listen: String::new(),
        mutable_max_age: 1,
        header_timeout: Duration::from_secs(5),
        max_connections: 16,
    };
    let origin = Arc::new(Origin::new(dir, &settings).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(origin, listener, async move {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

async fn request(addr: std::net::SocketAddr, head: &str) -> (String, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).await.unwrap();
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..split]).to_lowercase();
    (head, all[split + 4..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_ranges_and_refuses_what_is_not_a_published_file() {
    let (dir, big) = published();
    let (addr, stop, task) = start(dir.path()).await;
    let path = format!("/targets/bulk/{SHA}.big.bin");
    let (head, body) = request(
        addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nRange: bytes=100-199\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(head.starts_with("http/1.1 206"), "{head}");
    assert!(head.contains(&format!("etag: \"{SHA}\"")), "{head}");
    assert_eq!(body, big[100..200]);
    let (head, body) = request(
        addr,
        &format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(
        head.contains(&format!("content-length: {}", big.len())),
        "{head}"
    );
    assert!(body.is_empty());
    for (target, status) in [
        ("/targets/link", "404"),
        ("/targets/bulk", "404"),
        ("/targets/%2e%2e/%2e%2e/etc/hostname", "400"),
        ("/metadata/timestamp.json", "200"),
    ] {
        let (head, _) = request(
            addr,
            &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(
            head.starts_with(&format!("http/1.1 {status}")),
            "{target}: {head}"
        );
    }
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_lets_the_response_in_flight_finish() {
    let (dir, big) = published();
    let (addr, stop, task) = start(dir.path()).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET /targets/bulk/{SHA}.big.bin HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut first = vec![0u8; 16 * 1024];
    let n = stream.read(&mut first).await.unwrap();
    assert!(n > 0);
    // Stop while 4 MiB are still to come; the connection is not idle, so it finishes.
    stop.send(()).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    let mut all = first[..n].to_vec();
    all.extend_from_slice(&rest);
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert_eq!(all[split + 4..], big[..]);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("serve returns once the response is done")
        .unwrap()
        .unwrap();
    // And nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
