//! `peersync pair`: its options, what each side tells and does with what it is told, and
//! (`peersync pair CODE`) the joiner; the inviter is `invite.rs`. The protocol: `pairing.rs`.
use super::run::runtime;
use crate::client::normalize_url;
use crate::db;
use crate::error::{Error, Result};
use crate::keys;
use crate::pairing::{Code, Finish, Pake, Payload, PeerUrl, Side, Started};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioExecutor;
use std::path::Path;
use std::time::Duration;

/// Largest pairing request or reply body (a payload with many tables' definitions).
pub(super) const MAX_BODY: usize = 4 << 20;

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
    let (_, me, signing, _) = super::run::identity(&super::DbArg { db: db.to_path_buf() }, key)?;
    let conn = db::open(db, false)?;
    let row = peersync_core::device(&conn, &me)?.ok_or_else(|| Error::Cli("this device's row is missing".into()))?;
    let (peers, tables) = if inviter {
        let peers = peersync_core::configured_peers(&conn)?
            .into_iter()
            .map(|p| PeerUrl { url: p.url, device_id: p.device_id })
            .collect();
        (peers, peersync_core::tracked_tables(&conn)?)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(Payload { device_id: me, public_key: keys::public_hex(&signing), name: row.device_name, url, peers, tables })
}

/// Trusts the other device and adds it (and, joining, the inviter's peers) as peers.
pub(super) fn adopt(db: &Path, other: &Payload) -> Result<()> {
    let conn = db::open(db, false)?;
    let me = peersync_core::device_id(&conn)?;
    if other.device_id == me {
        return Err(Error::Cli("a device cannot pair with itself".into()));
    }
    peersync_core::trust(&conn, &other.device_id, &other.public_key, other.name.as_deref(), None)?;
    if let Some(url) = &other.url {
        let url = normalize_url(url)?;
        peersync_core::add_peer(&conn, &url, "pair", Some(&other.device_id))?;
    }
    for p in &other.peers {
        if p.device_id.as_deref() == Some(me.as_str()) {
            continue;
        }
        match normalize_url(&p.url) {
            Ok(url) => {
                if let Err(e) = peersync_core::add_peer(&conn, &url, "pair", p.device_id.as_deref()) {
                    tracing::warn!(peer = %url, error = %e, "skipping a peer the inviter listed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "skipping a peer the inviter listed"),
        }
    }
    Ok(())
}

pub fn pair(a: PairArgs) -> Result<()> {
    match a.code.clone() {
        Some(code) => join(a, &code),
        None => super::invite::invite(a),
    }
}

async fn post<T: serde::de::DeserializeOwned>(base: &str, path: &str, body: String) -> Result<T> {
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let unreachable = |m: String| Error::Unreachable { url: base.to_string(), message: m };
    let req = Request::post(format!("{base}{path}"))
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Error::Cli(format!("bad pairing address: {e}")))?;
    let work = async {
        let resp = http.request(req).await.map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| unreachable(format!("reading the reply failed: {e}")))?
            .to_bytes();
        Ok::<_, Error>((status, body))
    };
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .map_err(|_| unreachable("no reply within 30 s".into()))??;
    if !status.is_success() {
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| status.to_string());
        return Err(Error::Cli(format!("pairing failed: {msg}")));
    }
    serde_json::from_slice(&body).map_err(|e| Error::Cli(format!("pairing failed: malformed reply: {e}")))
}

fn join(a: PairArgs, code: &str) -> Result<()> {
    let code = Code::parse(code)?;
    let url = a.url.as_deref().map(normalize_url).transpose()?;
    let mine = serde_json::to_string(&own_payload(&a.db.db, &a.key, url, false)?)?;
    let base = format!("http://{}", code.addr);
    let rt = runtime()?;
    let gone = |e: Error| {
        match e {
        Error::Unreachable { message, .. } => Error::Cli(format!(
            "pairing failed: cannot reach the pairing endpoint at {} ({message}): the code expired, was used or died, or `peersync pair` stopped on the other device",
            code.addr
        )),
        e => e,
    }
    };
    let theirs = rt.block_on(async {
        let (pake, msg_b) = Pake::start(Side::Joiner, &code.secret);
        let started: Started =
            post(&base, "/pair/start", serde_json::json!({ "msg": hex::encode(&msg_b) }).to_string()).await?;
        let msg_a = hex::decode(&started.msg).map_err(|_| Error::Cli("pairing failed: malformed reply".into()))?;
        let keys = pake.finish(&msg_a, &msg_a, &msg_b)?;
        let tag = keys.tag(Side::Joiner, mine.as_bytes());
        let finish = Finish { session: started.session.clone(), payload: mine.clone(), tag };
        let done: Finish = post(&base, "/pair/finish", serde_json::to_string(&finish)?).await?;
        if !keys.check(Side::Inviter, done.payload.as_bytes(), &done.tag) {
            return Err(Error::Cli("pairing failed: the other device did not prove it knows the code".into()));
        }
        let theirs: Payload = serde_json::from_str(&done.payload)
            .map_err(|e| Error::Cli(format!("pairing failed: malformed payload: {e}")))?;
        Ok::<_, Error>(theirs)
    });
    let theirs = theirs.map_err(gone)?;
    adopt(&a.db.db, &theirs)?;
    outln!("paired with {}{}", theirs.device_id, theirs.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default());
    let conn = db::open(&a.db.db, false)?;
    let mut missing = Vec::new();
    for t in &theirs.tables {
        let exists = peersync_core::table_exists(&conn, &t.name)?;
        if !exists && a.schema {
            peersync_core::create_table(&conn, &t.name, &t.sql)?;
            outln!("created table {}", t.name);
        } else if !exists {
            missing.push(t.name.clone());
            continue;
        }
        // No strategy given: the inviter's setting arrives with the first sync.
        peersync_core::track(&conn, &t.name, None)?;
        outln!("tracking {} (strategy {} on the other device)", t.name, t.strategy);
    }
    if !missing.is_empty() {
        outln!(
            "the other device tracks tables that do not exist here: {} (create them and `peersync track` each, or pair again with --schema)",
            missing.join(", ")
        );
    }
    Ok(())
}
