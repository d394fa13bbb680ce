//! The joiner's side of pairing, without a terminal: what a device tells, the exchange with
//! the inviter's endpoint over HTTP, and what it does with the answer (`peersync pair CODE`
//! and the phone's library both use it; the protocol itself is `pairing.rs`).
use crate::client::normalize_url;
use crate::error::{Error, Result};
use crate::keys;
use crate::pairing::{Code, Finish, Pake, Payload, PeerUrl, Side, Started};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioExecutor;
use rusqlite::Connection;
use std::time::Duration;

/// Largest pairing request or reply body (a payload with many tables' definitions).
pub const MAX_BODY: usize = 4 << 20;

/// What this device tells the other: who it is and, as the inviter, its peers and tables.
pub fn payload(conn: &Connection, signing: &SigningKey, url: Option<String>, inviter: bool) -> Result<Payload> {
    let me = peersync_core::device_id(conn)?;
    let row = peersync_core::device(conn, &me)?.ok_or_else(|| Error::Cli("this device's row is missing".into()))?;
    let (peers, tables) = if inviter {
        let peers = peersync_core::configured_peers(conn)?
            .into_iter()
            .map(|p| PeerUrl { url: p.url, device_id: p.device_id })
            .collect();
        (peers, peersync_core::tracked_tables(conn)?)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(Payload { device_id: me, public_key: keys::public_hex(signing), name: row.device_name, url, peers, tables })
}

/// Trusts the other device and adds it (and, joining, the inviter's peers) as peers.
pub fn adopt(conn: &Connection, other: &Payload) -> Result<()> {
    let me = peersync_core::device_id(conn)?;
    if other.device_id == me {
        return Err(Error::Cli("a device cannot pair with itself".into()));
    }
    peersync_core::trust(conn, &other.device_id, &other.public_key, other.name.as_deref(), None)?;
    if let Some(url) = &other.url {
        let url = normalize_url(url)?;
        peersync_core::add_peer(conn, &url, "pair", Some(&other.device_id))?;
    }
    for p in &other.peers {
        if p.device_id.as_deref() == Some(me.as_str()) {
            continue;
        }
        match normalize_url(&p.url) {
            Ok(url) => {
                if let Err(e) = peersync_core::add_peer(conn, &url, "pair", p.device_id.as_deref()) {
                    tracing::warn!(peer = %url, error = %e, "skipping a peer the inviter listed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "skipping a peer the inviter listed"),
        }
    }
    Ok(())
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

/// The exchange with the inviter's pairing endpoint named by `code`: sends `mine` (this
/// device's [`Payload`] as JSON) once both sides proved they hold the code; returns the
/// inviter's payload. Nothing is written here: the caller [`adopt`]s it.
pub async fn exchange(code: &Code, mine: &str) -> Result<Payload> {
    let base = format!("http://{}", code.addr);
    let done = async {
        let (pake, msg_b) = Pake::start(Side::Joiner, &code.secret);
        let started: Started =
            post(&base, "/pair/start", serde_json::json!({ "msg": hex::encode(&msg_b) }).to_string()).await?;
        let msg_a = hex::decode(&started.msg).map_err(|_| Error::Cli("pairing failed: malformed reply".into()))?;
        let keys = pake.finish(&msg_a, &msg_a, &msg_b)?;
        let tag = keys.tag(Side::Joiner, mine.as_bytes());
        let finish = Finish { session: started.session.clone(), payload: mine.to_string(), tag };
        let done: Finish = post(&base, "/pair/finish", serde_json::to_string(&finish)?).await?;
        if !keys.check(Side::Inviter, done.payload.as_bytes(), &done.tag) {
            return Err(Error::Cli("pairing failed: the other device did not prove it knows the code".into()));
        }
        serde_json::from_str::<Payload>(&done.payload)
            .map_err(|e| Error::Cli(format!("pairing failed: malformed payload: {e}")))
    };
    done.await.map_err(|e| match e {
        Error::Unreachable { message, .. } => Error::Cli(format!(
            "pairing failed: cannot reach the pairing endpoint at {} ({message}): the code expired, was used or died, or `peersync pair` stopped on the other device",
            code.addr
        )),
        e => e,
    })
}

/// What became of one of the inviter's tracked tables here.
pub enum Taken {
    /// Created here from the inviter's definition, then tracked.
    Created(String),
    /// Tracked (it existed here); the inviter's strategy arrives with the first sync.
    Tracked { table: String, strategy: String },
    /// It does not exist here (and `create` was not asked): not tracked.
    Missing(String),
}

/// Tracks the inviter's tracked tables that exist here, creating the others first if `create`.
pub fn take_tables(conn: &Connection, theirs: &Payload, create: bool) -> Result<Vec<Taken>> {
    let mut out = Vec::new();
    for t in &theirs.tables {
        let exists = peersync_core::table_exists(conn, &t.name)?;
        if !exists && create {
            peersync_core::create_table(conn, &t.name, &t.sql)?;
            out.push(Taken::Created(t.name.clone()));
        } else if !exists {
            out.push(Taken::Missing(t.name.clone()));
            continue;
        }
        // No strategy given: the inviter's setting arrives with the first sync.
        peersync_core::track(conn, &t.name, None)?;
        out.push(Taken::Tracked { table: t.name.clone(), strategy: t.strategy.clone() });
    }
    Ok(out)
}
