//! `swarmdrop inspect`: what a .torrent, TUF metadata file or DSSE envelope says.
//! It reads; it does not verify (that is `swarmdrop verify`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use swarmdrop_manifest::dsse::Envelope;
use swarmdrop_manifest::torrent::Metainfo;

const MAX_INSPECT_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A .torrent, a TUF metadata file (root/targets/snapshot/timestamp) or a DSSE envelope.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

fn describe(bytes: &[u8]) -> anyhow::Result<Value> {
    if bytes.first() == Some(&b'd') {
        let meta = Metainfo::parse(bytes).context("reading it as a .torrent")?;
        let mut value = serde_json::to_value(&meta)?;
        value["kind"] = json!("torrent");
        value["infohash"] = json!(meta.info_hash.to_hex());
        value["magnet"] = json!(meta.magnet());
        if let Some(object) = value.as_object_mut() {
            object.remove("info_hash");
        }
        return Ok(value);
    }
    let parsed: Value =
        serde_json::from_slice(bytes).context("not a .torrent (bencode) and not JSON")?;
    if let Some(signed) = parsed.get("signed") {
        let keyids: Vec<&Value> = parsed["signatures"]
            .as_array()
            .map(|s| s.iter().map(|s| &s["keyid"]).collect())
            .unwrap_or_default();
        return Ok(json!({
            "kind": "tuf",
            "role": signed["_type"],
            "version": signed["version"],
            "expires": signed["expires"],
            "spec_version": signed["spec_version"],
            "signature_keyids": keyids,
            "signed": signed,
        }));
    }
    if parsed.get("payloadType").is_some() {
        let envelope = Envelope::parse(bytes)?;
        let payload = envelope.payload_bytes()?;
        let statement: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
        return Ok(json!({
            "kind": "dsse",
            "payload_type": envelope.payload_type,
            "signature_keyids": envelope.signatures.iter().map(|s| s.keyid.0.clone()).collect::<Vec<_>>(),
            "statement": statement,
        }));
    }
    bail!("JSON, but neither TUF metadata (no \"signed\") nor a DSSE envelope (no \"payloadType\")")
}

/// The strings of a JSON array, comma-separated.
fn joined(list: &Value) -> String {
    let items: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        .collect();
    items.join(", ")
}

fn print_human(value: &Value) {
    let s = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    match value["kind"].as_str() {
        Some("torrent") => {
            println!("torrent    {}", s(&value["name"]));
            println!("infohash   {}", s(&value["infohash"]));
            println!(
                "length     {} bytes in {} pieces of {}",
                value["length"], value["piece_count"], value["piece_length"]
            );
            if let Some(files) = value["files"].as_array().filter(|f| f.len() > 1) {
                for file in files {
                    println!("  file     {} ({} bytes)", s(&file["path"]), file["length"]);
                }
            }
            for tier in value["announce_list"].as_array().into_iter().flatten() {
                println!("tracker    {}", joined(tier));
            }
            for url in value["url_list"].as_array().into_iter().flatten() {
                println!("webseed    {}", s(url));
            }
            println!("private    {}", value["private"]);
            println!("magnet     {}", s(&value["magnet"]));
        }
        Some("tuf") => {
            println!(
                "TUF {} metadata, version {}, expires {}",
                s(&value["role"]),
                value["version"],
                s(&value["expires"])
            );
            println!("signed by  {}", joined(&value["signature_keyids"]));
            let signed = &value["signed"];
            for (role, keys) in signed["roles"].as_object().into_iter().flatten() {
                println!(
                    "role       {role}: threshold {} of {}",
                    keys["threshold"],
                    keys["keyids"].as_array().map_or(0, Vec::len)
                );
            }
            for (name, meta) in signed["meta"].as_object().into_iter().flatten() {
                println!("pins       {name} version {}", meta["version"]);
            }
            for (path, target) in signed["targets"].as_object().into_iter().flatten() {
                let custom = &target["custom"];
                let infohash = custom["p2p"]["infohash"].as_str().unwrap_or("-");
                println!(
                    "target     {path:<40} {:>12}  {:<10} {infohash}",
                    target["length"].to_string(),
                    s(&custom["class"])
                );
            }
            println!("(not verified: use `swarmdrop verify`)");
        }
        Some("dsse") => {
            let statement = &value["statement"];
            println!("DSSE envelope, payload {}", s(&value["payload_type"]));
            println!("signed by  {}", joined(&value["signature_keyids"]));
            println!(
                "statement  {} / {}",
                s(&statement["_type"]),
                s(&statement["predicateType"])
            );
            println!(
                "subjects   {}",
                statement["subject"].as_array().map_or(0, Vec::len)
            );
            let run = &statement["predicate"]["runDetails"];
            println!("builder    {}", s(&run["builder"]["id"]));
            println!(
                "ran        {} to {}",
                s(&run["metadata"]["startedOn"]),
                s(&run["metadata"]["finishedOn"])
            );
            println!("(not verified: use `swarmdrop verify`)");
        }
        _ => println!("{value}"),
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let bytes = swarmdrop_publish::read_capped(&args.file, MAX_INSPECT_BYTES)?;
    let value = describe(&bytes).with_context(|| format!("{}", args.file.display()))?;
    if args.json {
        super::print_json(&value)?;
    } else {
        print_human(&value);
    }
    Ok(ExitCode::SUCCESS)
}
