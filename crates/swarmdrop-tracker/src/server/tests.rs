use std::net::SocketAddr;

use swarmdrop_identity::token::{Tier, TokenIssuer};
use swarmdrop_manifest::keys::SigningKey;
use tokio::sync::mpsc;

use super::state::{AnnounceRequest, Tracker, TrackerEvent};
use super::udp::handle;
use super::TrackerConfig;
use crate::proto::udp::{AnnounceEvent, PROTOCOL_ID};

const HASH: &str = "0102030405060708090a0b0c0d0e0f1011121314";

fn tracker(extra: &str) -> (Tracker, mpsc::Receiver<TrackerEvent>) {
    let config =
        TrackerConfig::parse(&format!("known_infohashes = [\"{HASH}\"]\n{extra}"), "test").unwrap();
    let (tx, rx) = mpsc::channel(64);
    (Tracker::new(config, Some(tx)).unwrap(), rx)
}

fn from(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, i], 40000))
}

fn connect(t: &Tracker, addr: SocketAddr) -> u64 {
    let mut packet = PROTOCOL_ID.to_be_bytes().to_vec();
    packet.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9]);
    let mut out = Vec::new();
    handle(t, addr, &packet, &mut out);
    assert_eq!(&out[..8], &[0, 0, 0, 0, 0, 0, 0, 9]);
    u64::from_be_bytes(out[8..16].try_into().unwrap())
}

fn announce_packet(cid: u64, left: u64, port: u16, url: &str) -> Vec<u8> {
    let mut b = cid.to_be_bytes().to_vec();
    b.extend_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(&77u32.to_be_bytes());
    b.extend_from_slice(&hex::decode(HASH).unwrap());
    b.extend_from_slice(&[b'p'; 20]);
    b.extend_from_slice(&0u64.to_be_bytes());
    b.extend_from_slice(&left.to_be_bytes());
    b.extend_from_slice(&0u64.to_be_bytes());
    b.extend_from_slice(&2u32.to_be_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&port.to_be_bytes());
    for chunk in url.as_bytes().chunks(255) {
        b.push(2);
        b.push(chunk.len() as u8);
        b.extend_from_slice(chunk);
    }
    b
}

#[test]
fn udp_connect_announce_and_peers() {
    let (t, mut events) = tracker("");
    let seeder = from(1);
    let cid = connect(&t, seeder);
    let mut out = Vec::new();
    handle(&t, seeder, &announce_packet(cid, 0, 6881, ""), &mut out);
    assert_eq!(&out[..4], &1u32.to_be_bytes(), "{out:?}");
    let leecher = from(2);
    let cid = connect(&t, leecher);
    handle(&t, leecher, &announce_packet(cid, 10, 6882, ""), &mut out);
    assert_eq!(
        &out[12..20],
        &[0, 0, 0, 1, 0, 0, 0, 1],
        "one leecher, one seeder"
    );
    assert_eq!(
        &out[20..],
        &[127, 0, 0, 1, 0x1a, 0xe1],
        "the seeder, at its announced port"
    );
    assert_eq!(events.try_recv().unwrap().kind, "announce");
}

#[test]
fn udp_never_answers_unverified_sources() {
    let (t, _) = tracker("");
    let mut out = Vec::new();
    // A made-up id, and an id made for another address: dropped without a reply, so a
    // spoofed source gets nothing sent its way.
    handle(&t, from(1), &announce_packet(12345, 0, 6881, ""), &mut out);
    assert!(out.is_empty());
    let cid = connect(&t, from(2));
    handle(&t, from(1), &announce_packet(cid, 0, 6881, ""), &mut out);
    assert!(out.is_empty());
    // A malformed request with someone else's id gets no error either...
    handle(
        &t,
        from(1),
        &announce_packet(cid, 0, 6881, "")[..60],
        &mut out,
    );
    assert!(out.is_empty());
    // ...but with its own verified id the client hears what was wrong.
    handle(
        &t,
        from(2),
        &announce_packet(cid, 0, 6881, "")[..60],
        &mut out,
    );
    assert_eq!(&out[..4], &3u32.to_be_bytes());
    handle(&t, from(1), &[1, 2, 3], &mut out);
    assert!(out.is_empty(), "too short to answer");
    assert!(t
        .metrics
        .render(&t.gauges())
        .contains("reason=\"bad_connection_id\"} 3"));
}

#[test]
fn private_drops_need_a_valid_token() {
    let dir = std::env::temp_dir().join(format!("sd-tracker-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = SigningKey::from_seed([8; 32]);
    let pub_path = dir.join("gateway.pub");
    std::fs::write(&pub_path, key.public().to_spki_pem()).unwrap();
    let (t, mut events) = tracker(&format!(
        "[private]\ndrop = \"genesis\"\ngateway_keys = [\"{}\"]\n",
        pub_path.display()
    ));
    let issuer = TokenIssuer::new(key, "test");
    let (token, _) = issuer.issue(
        "j".into(),
        "0xabc".into(),
        "genesis",
        vec!["bulk".into()],
        Tier::Wallet,
        vec![],
        t.now(),
        600,
    );
    let request = |token| AnnounceRequest {
        protocol: "http",
        peer: from(3),
        info_hash: swarmdrop_manifest::InfoHash::from_hex(HASH).unwrap(),
        left: 5,
        event: AnnounceEvent::Started,
        numwant: None,
        token,
    };
    assert_eq!(
        t.announce(&request(None)).unwrap_err().code,
        "token_missing"
    );
    let refused = events.try_recv().unwrap();
    assert_eq!(
        (refused.kind, refused.reason),
        ("refused", Some("token_missing"))
    );
    let forged = token.replace("v4.public.e", "v4.public.f");
    assert!(t.announce(&request(Some(&forged))).is_err());
    let (other_drop, _) = issuer.issue(
        "j".into(),
        "0xabc".into(),
        "other",
        vec![],
        Tier::Wallet,
        vec![],
        t.now(),
        600,
    );
    assert_eq!(
        t.announce(&request(Some(&other_drop))).unwrap_err().code,
        "wrong_drop"
    );
    assert!(t.announce(&request(Some(&token))).is_ok());
    // Over UDP the token rides in BEP 41 URL data.
    let cid = connect(&t, from(4));
    let mut out = Vec::new();
    handle(
        &t,
        from(4),
        &announce_packet(cid, 5, 7000, &format!("/announce/{token}")),
        &mut out,
    );
    assert_eq!(
        &out[..4],
        &1u32.to_be_bytes(),
        "{}",
        String::from_utf8_lossy(&out)
    );
    handle(
        &t,
        from(4),
        &announce_packet(cid, 5, 7000, "/announce"),
        &mut out,
    );
    assert!(String::from_utf8_lossy(&out[8..]).contains("token missing"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unknown_hashes_and_full_swarms_are_refused() {
    let (t, _) = tracker("max_peers_per_swarm = 3\n[rate_limit]\nper_ip_burst = 100000\nper_ip_per_second = 100000.0\n");
    let mut request = AnnounceRequest {
        protocol: "http",
        peer: from(1),
        info_hash: swarmdrop_manifest::InfoHash([9; 20]),
        left: 1,
        event: AnnounceEvent::Started,
        numwant: Some(1000),
        token: None,
    };
    assert_eq!(t.announce(&request).unwrap_err().code, "unknown_infohash");
    request.info_hash = swarmdrop_manifest::InfoHash::from_hex(HASH).unwrap();
    let mut refused = 0;
    for port in 1..=10_000u16 {
        request.peer = SocketAddr::from(([127, 0, 0, 1], port));
        if let Err(r) = t.announce(&request) {
            assert_eq!(r.code, "swarm_full");
            refused += 1;
        }
    }
    assert_eq!(refused, 10_000 - 3);
    assert_eq!(t.gauges().peers, 3);
}

#[test]
fn a_full_event_queue_drops_and_counts() {
    let config = TrackerConfig::parse(&format!("known_infohashes = [\"{HASH}\"]"), "test").unwrap();
    let (tx, _rx) = mpsc::channel(1);
    let t = Tracker::new(config, Some(tx)).unwrap();
    for i in 1..=3 {
        let _ = t.announce(&AnnounceRequest {
            protocol: "http",
            peer: from(i),
            info_hash: swarmdrop_manifest::InfoHash::from_hex(HASH).unwrap(),
            left: 1,
            event: AnnounceEvent::Started,
            numwant: None,
            token: None,
        });
    }
    assert!(t
        .metrics
        .render(&t.gauges())
        .contains("swarmdrop_tracker_events_dropped_total 2"));
}
