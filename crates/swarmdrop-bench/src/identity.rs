//! `swarmdrop bench identity`: the gateway's hot paths against the raw cryptography
//! under them, and decision latency for an honest client while another floods.
//!
//! - `vs_ed25519`: [`TokenVerifier::verify`] per second on one core ÷ ed25519-dalek
//!   `verify` per second on the same signed bytes (PAE and signature). Above 0.7 means
//!   parsing, the key lookup and the claim checks cost less than 30 % on top.
//! - `vs_secp256k1`: SIWE parse + full check (binding, times, EIP-191 hash, recovery,
//!   address) per second ÷ bare k256 public-key recoveries per second.
//! - Latency: a gateway on loopback; 127.0.0.1 floods `/auth/nonce` over several
//!   connections while 127.0.0.2 asks one request at a time; p50/p99 of the latter.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::Verifier as _;
use swarmdrop_identity::eth::{personal_message_hash, personal_sign, Address};
use swarmdrop_identity::paseto::pae;
use swarmdrop_identity::siwe::{Expected, SiweMessage};
use swarmdrop_identity::token::{Tier, TokenIssuer, TokenVerifier};
use swarmdrop_manifest::keys::SigningKey;
use swarmdrop_manifest::UtcTime;

use crate::loopback_http::Connection;
use crate::{round3, BenchError, BenchReport};

/// Options.
#[derive(Debug, Clone)]
pub struct IdentityBenchOptions {
    /// Seconds per throughput measurement.
    pub seconds: f64,
    /// Seconds of flood for the latency measurement.
    pub flood_seconds: f64,
    /// Concurrent flooding connections.
    pub flood_connections: usize,
}

/// Calls `f` repeatedly for about `seconds` and returns calls per second.
fn rate(seconds: f64, mut f: impl FnMut() -> bool) -> Result<f64, BenchError> {
    // Warm up, and refuse to report on a broken path.
    for _ in 0..100 {
        if !f() {
            return Err(BenchError::Usage("a benchmarked call failed".into()));
        }
    }
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        for _ in 0..64 {
            std::hint::black_box(f());
        }
        calls += 64;
    }
    Ok(calls as f64 / started.elapsed().as_secs_f64())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn token_rates(seconds: f64) -> Result<(f64, f64), BenchError> {
    let now = UtcTime::saturating_from_unix(1_800_000_000);
    let issuer = TokenIssuer::new(SigningKey::from_seed([5; 32]), "bench");
    let (token, claims) = issuer.issue(
        "0123456789abcdef0123456789abcdef".into(),
        Address([7; 20]).to_checksummed(),
        "genesis-mint",
        vec!["checkout".into(), "keyframe".into(), "bulk".into()],
        Tier::Wallet,
        vec![],
        now,
        600,
    );
    let verifier = TokenVerifier::new()
        .with_key(issuer.public())
        .for_drop("genesis-mint");
    let ours = rate(seconds, || {
        verifier.verify(&token, now, Some("keyframe")).is_ok()
    })?;

    // The same signed bytes for the raw baseline: PAE(header, message, footer, "").
    let body = token
        .strip_prefix("v4.public.")
        .and_then(|t| t.split('.').next())
        .unwrap_or_default();
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    let (message, signature) = decoded.split_at(decoded.len() - 64);
    let footer = format!("{{\"kid\":\"{}\"}}", issuer.kid());
    let signed = pae(&[b"v4.public.", message, footer.as_bytes(), b""]);
    let key = ed25519_dalek::VerifyingKey::from_bytes(&issuer.public().to_bytes())
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    let signature = ed25519_dalek::Signature::from_slice(signature)
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    let raw = rate(seconds, || key.verify(&signed, &signature).is_ok())?;
    assert_eq!(claims.drop, "genesis-mint");
    Ok((ours, raw))
}

fn siwe_rates(seconds: f64) -> Result<(f64, f64), BenchError> {
    let key = k256::ecdsa::SigningKey::from_slice(&[9u8; 32])
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    let now = UtcTime::saturating_from_unix(1_800_000_000);
    let message = SiweMessage {
        scheme: None,
        domain: "drop.example".into(),
        address: Address::from_verifying_key(key.verifying_key()),
        statement: Some("Sign in to the genesis drop.".into()),
        uri: "https://drop.example/login".into(),
        version: "1".into(),
        chain_id: 1,
        nonce: "a1b2c3d4e5f6a7b8".into(),
        issued_at: now,
        expiration_time: Some(now.plus_seconds(600)),
        not_before: None,
        request_id: None,
        resources: vec![],
    };
    let text = message.to_text();
    let signature =
        personal_sign(&key, text.as_bytes()).map_err(|e| BenchError::Usage(e.to_string()))?;
    let expected = Expected {
        domain: "drop.example",
        uri: "https://drop.example/login",
        chain_id: 1,
        skew_seconds: 60,
        max_age_seconds: Some(600),
    };
    let ours = rate(seconds, || {
        SiweMessage::parse(&text).is_ok_and(|m| m.check(&text, &signature, &expected, now).is_ok())
    })?;

    let (sig, recovery) = swarmdrop_identity::eth::parse_signature(&signature)
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    let hash = personal_message_hash(text.as_bytes());
    let raw = rate(seconds, || {
        k256::ecdsa::VerifyingKey::recover_from_prehash(&hash, &sig, recovery).is_ok()
    })?;
    Ok((ours, raw))
}

struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    honest_ok: f64,
    flood_requests: u64,
    flood_throttled: u64,
}

async fn flood_latency(
    options: &IdentityBenchOptions,
    keys_dir: &std::path::Path,
) -> Result<Latency, BenchError> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |source: std::io::Error| BenchError::Io { what, source }
    };
    swarmdrop_publish::keyset::generate(keys_dir, 1, 1, true)?;
    let config = swarmdrop_gateway::GatewayConfig::parse(
        &format!(
            "domain = \"drop.example\"\nuri = \"https://drop.example/login\"\ndrop = \"genesis-mint\"\nsigning_key = \"{}\"\n[rate_limit]\nper_ip_per_second = 100.0\nper_ip_burst = 50\n",
            keys_dir.join("timestamp.key").display()
        ),
        "bench",
    )
    .map_err(|e| BenchError::Usage(e.to_string()))?;
    let gateway = Arc::new(
        swarmdrop_gateway::Gateway::new(config).map_err(|e| BenchError::Usage(e.to_string()))?,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(io("binding the gateway"))?;
    let server: SocketAddr = listener.local_addr().map_err(io("bound address"))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(swarmdrop_gateway::serve(gateway, listener, async {
        let _ = stop_rx.await;
    }));

    let stop = Arc::new(AtomicBool::new(false));
    let (requests, throttled) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut flooders = Vec::new();
    for _ in 0..options.flood_connections {
        let (stop, requests, throttled) = (stop.clone(), requests.clone(), throttled.clone());
        let source: SocketAddr = "127.0.0.1:0"
            .parse()
            .map_err(|_| BenchError::Usage("address".into()))?;
        flooders.push(tokio::spawn(async move {
            let Ok(mut connection) = Connection::open(source, server).await else {
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                match connection.get("/auth/nonce").await {
                    Ok(429) => throttled.fetch_add(1, Ordering::Relaxed),
                    Ok(_) => 0,
                    Err(_) => return,
                };
                requests.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let honest_source: SocketAddr = "127.0.0.2:0"
        .parse()
        .map_err(|_| BenchError::Usage("address".into()))?;
    let mut honest = Connection::open(honest_source, server)
        .await
        .map_err(io("connecting from 127.0.0.2"))?;
    let mut samples = Vec::new();
    let mut ok = 0u64;
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < options.flood_seconds {
        let t = Instant::now();
        let status = honest
            .get("/auth/nonce")
            .await
            .map_err(io("honest request"))?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
        ok += u64::from(status == 200);
        // An honest client asks at a human pace, well inside its own quota.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for flooder in flooders {
        let _ = flooder.await;
    }
    let _ = stop_tx.send(());
    let _ = serving.await;
    samples.sort_by(f64::total_cmp);
    Ok(Latency {
        p50_ms: percentile(&samples, 0.5),
        p99_ms: percentile(&samples, 0.99),
        honest_ok: ok as f64 / samples.len().max(1) as f64,
        flood_requests: requests.load(Ordering::Relaxed),
        flood_throttled: throttled.load(Ordering::Relaxed),
    })
}

/// Runs the benchmark; `log` receives progress lines.
pub fn run_identity_bench(
    options: &IdentityBenchOptions,
    log: &dyn Fn(&str),
) -> Result<BenchReport, BenchError> {
    log("token verification vs raw ed25519-dalek verify (one core)");
    let (token_ours, token_raw) = token_rates(options.seconds)?;
    log("SIWE verification vs raw secp256k1 recovery (one core)");
    let (siwe_ours, siwe_raw) = siwe_rates(options.seconds)?;
    log(&format!(
        "flood from 127.0.0.1 over {} connections while 127.0.0.2 is served",
        options.flood_connections
    ));
    let keys = tempfile::tempdir().map_err(|source| BenchError::Io {
        what: "temporary directory".into(),
        source,
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| BenchError::Io {
            what: "async runtime".into(),
            source,
        })?;
    let latency = runtime.block_on(flood_latency(options, keys.path()))?;
    let figures = BTreeMap::from([
        ("token_verifies_per_s".to_owned(), token_ours.round()),
        ("ed25519_verifies_per_s".to_owned(), token_raw.round()),
        ("siwe_verifies_per_s".to_owned(), siwe_ours.round()),
        ("secp256k1_recoveries_per_s".to_owned(), siwe_raw.round()),
        ("honest_p50_ms".to_owned(), round3(latency.p50_ms)),
        ("honest_p99_ms".to_owned(), round3(latency.p99_ms)),
        (
            "honest_served_fraction".to_owned(),
            round3(latency.honest_ok),
        ),
        ("flood_requests".to_owned(), latency.flood_requests as f64),
        ("flood_throttled".to_owned(), latency.flood_throttled as f64),
    ]);
    Ok(BenchReport {
        name: "identity".into(),
        figures,
        ratios: BTreeMap::from([
            ("vs_ed25519".to_owned(), round3(token_ours / token_raw.max(1.0))),
            ("vs_secp256k1".to_owned(), round3(siwe_ours / siwe_raw.max(1.0))),
        ]),
        targets: BTreeMap::from([("vs_ed25519".to_owned(), ">= 0.7".to_owned()), ("vs_secp256k1".to_owned(), ">= 0.8".to_owned())]),
        notes: vec![
            "vs_ed25519: TokenVerifier::verify (strict Ed25519, footer and claims parsing, checks) per second / ed25519-dalek verify of the same PAE bytes".into(),
            "vs_secp256k1: SIWE parse and full check per second / k256 recover_from_prehash of the same hash".into(),
            "honest_*: a client on 127.0.0.2 asking /auth/nonce every 20 ms while 127.0.0.1 floods; decisions include the HTTP round trip on loopback".into(),
        ],
    })
}
