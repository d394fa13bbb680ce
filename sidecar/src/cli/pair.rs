//! `peersync pair`: its options, what each side tells and does with what it is told, and
//! (`peersync pair CODE`) the joiner; the inviter is `invite.rs`. The protocol: `pairing.rs`.
use super::run::runtime;
use crate::client::normalize_url;
use crate::db;
use crate::error::Result;
use crate::joining::{self, Taken};
use crate::pairing::{Code, Payload};
use clap::Args;
use std::path::Path;

pub(super) use crate::joining::MAX_BODY;

#[derive(Args)]
pub struct PairArgs {
    #[command(flatten)]
    pub(super) db: super::DbArg,
    #[command(flatten)]
    pub(super) key: super::KeyArg,
    /// The code another device shows (`peersync pair` there). Without it, this device shows a
    /// code and waits for another to pair with it.
    pub(super) code: Option<String>,
    /// Where this device's `peersync serve` is reached by the other devices (http://HOST:PORT).
    /// Showing a code: default http://<--listen host>:8080.
    #[arg(long, value_name = "URL")]
    pub(super) url: Option<String>,
    /// Showing a code: the address to serve the pairing endpoint on (this device's Tailscale
    /// address on a tailnet); the code names it.
    #[arg(long, default_value = "127.0.0.1:7447", value_name = "ADDR")]
    pub(super) listen: String,
    /// Showing a code: it expires after this many seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub(super) expires: u64,
    /// Showing a code: it dies after this many failed attempts.
    #[arg(long, default_value_t = 5)]
    pub(super) attempts: u32,
    /// Joining: create the inviter's tracked tables that do not exist here (from its
    /// definitions), then track them.
    #[arg(long)]
    pub(super) schema: bool,
}

pub(super) fn own_payload(db: &Path, key: &super::KeyArg, url: Option<String>, inviter: bool) -> Result<Payload> {
    let (_, _, signing, _) = super::run::identity(&super::DbArg { db: db.to_path_buf() }, key)?;
    joining::payload(&db::open(db, false)?, &signing, url, inviter)
}

/// Trusts the other device and adds it (and, joining, the inviter's peers) as peers.
pub(super) fn adopt(db: &Path, other: &Payload) -> Result<()> {
    joining::adopt(&db::open(db, false)?, other)
}

pub fn pair(a: PairArgs) -> Result<()> {
    match a.code.clone() {
        Some(code) => join(a, &code),
        None => super::invite::invite(a),
    }
}

fn join(a: PairArgs, code: &str) -> Result<()> {
    let code = Code::parse(code)?;
    let url = a.url.as_deref().map(normalize_url).transpose()?;
    let mine = serde_json::to_string(&own_payload(&a.db.db, &a.key, url, false)?)?;
    let theirs = runtime()?.block_on(joining::exchange(&code, &mine))?;
    adopt(&a.db.db, &theirs)?;
    outln!("paired with {}{}", theirs.device_id, theirs.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default());
    let conn = db::open(&a.db.db, false)?;
    let mut missing = Vec::new();
    for t in joining::take_tables(&conn, &theirs, a.schema)? {
        match t {
            Taken::Created(name) => outln!("created table {name}"),
            Taken::Missing(name) => missing.push(name),
            Taken::Tracked { table, strategy } => outln!("tracking {table} (strategy {strategy} on the other device)"),
        }
    }
    if !missing.is_empty() {
        outln!(
            "the other device tracks tables that do not exist here: {} (create them and `peersync track` each, or pair again with --schema)",
            missing.join(", ")
        );
    }
    Ok(())
}
