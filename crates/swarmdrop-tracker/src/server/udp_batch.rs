//! Linux: the UDP loop with one `recvmmsg` and one `sendmmsg` per batch instead of a
//! system call per datagram. Under load most of a request's cost is the kernel's, and
//! half of that is crossing into it; a batch pays the crossing once. When the socket
//! holds one datagram, `MSG_WAITFORONE` returns it at once, so light traffic sees no
//! added latency.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

use super::state::Tracker;
use super::udp::handle;

/// Datagrams per system call.
const BATCH: usize = 32;
/// Largest request we read (a BEP 15 request with BEP 41 options is far smaller).
const MAX_DATAGRAM: usize = 2048;

fn socket_addr(storage: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    storage
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

/// Serves datagrams in batches until the socket fails.
pub(super) fn serve_batched(tracker: &Tracker, socket: &UdpSocket) -> std::io::Result<()> {
    let fd = socket.as_raw_fd();
    let mut receive_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut buffers = vec![[0u8; MAX_DATAGRAM]; BATCH];
    let mut answers: Vec<Vec<u8>> = (0..BATCH)
        .map(|_| Vec::with_capacity(MAX_DATAGRAM))
        .collect();
    let mut received: Vec<(usize, Option<SocketAddr>)> = Vec::with_capacity(BATCH);
    let mut destinations: Vec<Option<SockaddrStorage>> = Vec::with_capacity(BATCH);
    let mut replies: Vec<usize> = Vec::with_capacity(BATCH);
    loop {
        received.clear();
        {
            let mut slices: Vec<[IoSliceMut<'_>; 1]> = buffers
                .iter_mut()
                .map(|b| [IoSliceMut::new(&mut b[..])])
                .collect();
            match recvmmsg(
                fd,
                &mut receive_headers,
                slices.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(messages) => received
                    .extend(messages.map(|m| (m.bytes, m.address.as_ref().and_then(socket_addr)))),
                // A peer's ICMP unreachable surfaces as ECONNREFUSED; it is not ours.
                Err(Errno::ECONNREFUSED | Errno::EINTR | Errno::EAGAIN) => continue,
                Err(e) => return Err(std::io::Error::from(e)),
            }
        }
        let started = Instant::now();
        replies.clear();
        destinations.clear();
        for (slot, &(bytes, from)) in received.iter().enumerate() {
            let Some(from) = from else { continue };
            let packet = &buffers[slot][..bytes.min(MAX_DATAGRAM)];
            handle(tracker, from, packet, &mut answers[slot]);
            if !answers[slot].is_empty() {
                replies.push(slot);
                destinations.push(Some(SockaddrStorage::from(from)));
            }
        }
        if !replies.is_empty() {
            let slices: Vec<[IoSlice<'_>; 1]> = replies
                .iter()
                .map(|&slot| [IoSlice::new(&answers[slot])])
                .collect();
            let sent = sendmmsg(
                fd,
                &mut send_headers,
                slices.iter(),
                &destinations,
                [],
                MsgFlags::empty(),
            )
            .map(|results| results.count())
            .unwrap_or(0);
            // A full socket buffer takes fewer than all: send the rest one by one, and
            // let a refusal drop an answer rather than stop the server.
            for (&slot, to) in replies.iter().zip(&destinations).skip(sent) {
                if let Some(to) = to.as_ref().and_then(socket_addr) {
                    let _ = socket.send_to(&answers[slot], to);
                }
            }
        }
        let per_request = started.elapsed() / u32::try_from(received.len().max(1)).unwrap_or(1);
        for _ in 0..received.len() {
            tracker.metrics.udp_latency.observe(per_request);
        }
    }
}
