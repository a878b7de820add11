//! `swarmdrop token verify`: check a gateway token offline, as an edge would.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use swarmdrop_identity::token::TokenVerifier;
use swarmdrop_manifest::keys::PublicKey;
use swarmdrop_manifest::UtcTime;
use swarmdrop_publish::pack::Clock;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Token {
    /// Verify a token with only the gateway's public key; exit 1 naming the reason code.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The token (v4.public.…).
    #[arg(value_name = "TOKEN")]
    token: String,
    /// The gateway's public key (SPKI PEM); repeat to accept several during a rotation.
    #[arg(long = "pubkey", value_name = "FILE", required = true)]
    pubkeys: Vec<PathBuf>,
    /// Accept only tokens for this drop.
    #[arg(long, value_name = "NAME")]
    drop: Option<String>,
    /// Require that the token grants this class.
    #[arg(long, value_name = "CLASS")]
    class: Option<String>,
    /// The body of GET /auth/revocations, saved to a file.
    #[arg(long, value_name = "FILE.json")]
    revocations: Option<PathBuf>,
    /// Reference time (RFC 3339); default: now.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// The TOKEN is a tracker pass (`tracker_pass`, the compact form for UDP tracker URLs).
    #[arg(long, conflicts_with = "class")]
    pass: bool,
    /// Print the claims as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(token: &Token) -> anyhow::Result<ExitCode> {
    let Token::Verify(args) = token;
    let mut verifier = TokenVerifier::new();
    for path in &args.pubkeys {
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        verifier = verifier.with_key(
            PublicKey::from_spki_pem(&pem).with_context(|| format!("{}", path.display()))?,
        );
    }
    if let Some(drop) = &args.drop {
        verifier = verifier.for_drop(drop);
    }
    if let Some(path) = &args.revocations {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let body: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let Some(list) = body["revoked"].as_array() else {
            bail!(
                "{}: no \"revoked\" list (expected the body of GET /auth/revocations)",
                path.display()
            );
        };
        verifier =
            verifier.with_revocations(list.iter().filter_map(|v| v.as_str().map(str::to_owned)));
    }
    let now = match &args.at {
        Some(text) => UtcTime::parse(text).context("--at")?,
        None => Clock::System.now(),
    };
    if args.pass {
        return match verifier.verify_tracker_pass(args.token.trim(), now) {
            Ok(pass) => {
                if args.json {
                    super::print_json(
                        &serde_json::json!({ "jti": pass.jti, "exp": pass.exp.to_string() }),
                    )?;
                } else {
                    println!(
                        "ok: tracker pass for session {} until {}",
                        pass.jti, pass.exp
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(rejection) => {
                eprintln!("error: pass refused: {}: {rejection}", rejection.code());
                Ok(ExitCode::FAILURE)
            }
        };
    }
    match verifier.verify_with_kid(args.token.trim(), now, args.class.as_deref()) {
        Ok((claims, kid)) => {
            if args.json {
                let mut value = serde_json::to_value(&claims)?;
                value["kid"] = serde_json::Value::String(kid);
                super::print_json(&value)?;
            } else {
                println!(
                    "ok: {} ({}) for drop {}, classes {}, until {}",
                    claims.sub,
                    claims.tier.as_str(),
                    claims.drop,
                    claims.classes.join(","),
                    claims.exp
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(rejection) => {
            eprintln!("error: token refused: {}: {rejection}", rejection.code());
            Ok(ExitCode::FAILURE)
        }
    }
}
