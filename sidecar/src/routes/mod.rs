//! The HTTP API: shared state, routing, authentication gate, body reading (size cap, timeout), JSON replies and errors.
mod conflicts;
mod digest;
mod info;
pub mod order;
pub mod recover;
pub mod snapshot;
mod sync;

use crate::auth::{self, Caller, Gate};
use crate::coding;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type Reply = Response<Full<Bytes>>;

/// The default --max-body: 1 GiB of JSON. SQLite's default longest value is 10^9 bytes, so the
/// JSON of any change it can capture (a blob's hex included) fits in one body with room for
/// the rest of the batch; only trusted devices' signed requests get their body read at all.
pub const DEFAULT_MAX_BODY: usize = 1 << 30;

/// Limits on what one request may take.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The most bytes a body may have, as sent and once its Content-Encoding is decoded.
    pub max_body: usize,
    pub body_timeout: Duration,
}

pub struct AppState {
    pub db: Db,
    pub device_id: String,
    pub key: Arc<SigningKey>,
    pub metrics: Arc<Metrics>,
    pub gate: Gate,
    pub limits: Limits,
    pub listen: String,
    pub pushes: Arc<order::PushOrder>,
    /// This device's audit account, shared with the sync loops.
    pub audits: Arc<crate::audit::Audits>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Route {
    Health,
    Metrics,
    Status,
    Push,
    Pull,
    Digest,
    Recover,
    Snapshot,
    SnapshotChunk,
    Conflicts,
    Conflict(i64),
    Resolve(i64),
}

fn route(method: &Method, path: &str) -> Result<Route> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let id = |s: &str| s.parse::<i64>().map_err(|_| Error::NotFound(format!("no conflict \"{s}\": ids are integers")));
    let (want, r) = match segs.as_slice() {
        ["health"] => (Method::GET, Route::Health),
        ["metrics"] => (Method::GET, Route::Metrics),
        ["status"] => (Method::GET, Route::Status),
        ["sync", "push"] => (Method::POST, Route::Push),
        ["sync", "pull"] => (Method::POST, Route::Pull),
        ["sync", "digest"] => (Method::POST, Route::Digest),
        ["sync", "recover"] => (Method::POST, Route::Recover),
        ["sync", "snapshot"] => (Method::POST, Route::Snapshot),
        ["sync", "snapshot", "chunk"] => (Method::POST, Route::SnapshotChunk),
        ["conflicts"] => (Method::GET, Route::Conflicts),
        ["conflicts", n] => (Method::GET, Route::Conflict(id(n)?)),
        ["conflicts", n, "resolve"] => (Method::POST, Route::Resolve(id(n)?)),
        _ => return Err(Error::NotFound(format!("no such endpoint: {path}"))),
    };
    if *method != want {
        return Err(Error::MethodNotAllowed(format!("{path} takes {want}, not {method}")));
    }
    Ok(r)
}

pub fn json(status: StatusCode, v: &serde_json::Value) -> Reply {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .expect("valid response")
}

/// A JSON request body must be an object with no fields but `allowed`.
pub fn only_fields(body: &serde_json::Value, allowed: &[&str], what: &str) -> Result<()> {
    let obj = body.as_object().ok_or_else(|| Error::BadRequest(format!("{what} must be a JSON object")))?;
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(Error::BadRequest(format!(
            "{what} has an unknown field {:?} (expected: {})",
            peersync_core::shown(k),
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

pub fn error_reply(e: &Error) -> Reply {
    let status = e.status();
    let message = if status == StatusCode::INSUFFICIENT_STORAGE {
        format!("{e}: no space left for this device's database; nothing was applied. Free some space there; the sender retries")
    } else {
        e.to_string()
    };
    let mut r = json(status, &serde_json::json!({ "error": message }));
    if matches!(status, StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT) {
        r.headers_mut().insert(hyper::header::CONNECTION, "close".parse().unwrap());
    }
    r
}

/// Largest request head (request line and header fields) accepted, in bytes (431 past it).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Serves one request; never fails (errors become JSON replies). `trusted` is set once the
/// connection carried a request signed by a trusted device (see `server.rs`).
pub async fn handle(state: Arc<AppState>, peer: SocketAddr, req: Request<Incoming>, trusted: &AtomicBool) -> Reply {
    let started = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let zstd = coding::accepts_zstd(req.headers());
    Metrics::add(&state.metrics.requests, 1);
    let reply = match dispatch(&state, peer, req, trusted, zstd).await {
        Ok(r) => r,
        Err(e) => {
            state.metrics.error(e.kind());
            if e.status().is_server_error() {
                tracing::error!(%peer, %method, %path, error = %e, "request failed");
            } else {
                tracing::warn!(%peer, %method, %path, status = e.status().as_u16(), error = %e, "request refused");
            }
            error_reply(&e)
        }
    };
    let reply = encoded(reply, zstd).await;
    tracing::debug!(%peer, %method, %path, status = reply.status().as_u16(), ms = started.elapsed().as_millis() as u64, "served");
    reply
}

/// The reply as sent: says (RFC 7694) that zstd request bodies are accepted, and is itself
/// zstd-compressed when the request accepted that and it is not small (or already encoded).
async fn encoded(reply: Reply, zstd: bool) -> Reply {
    let (mut parts, body) = reply.into_parts();
    parts.headers.insert(hyper::header::ACCEPT_ENCODING, coding::accept_value());
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(never) => match never {},
    };
    if !zstd || parts.headers.contains_key(hyper::header::CONTENT_ENCODING) || bytes.len() < coding::MIN_COMPRESSED {
        return Response::from_parts(parts, Full::new(bytes));
    }
    let packed = if bytes.len() > 1 << 20 {
        let b = bytes.clone();
        tokio::task::spawn_blocking(move || coding::compress(&b)).await.ok().and_then(|r| r.ok())
    } else {
        coding::compress(&bytes).ok()
    };
    match packed {
        Some(p) => {
            parts
                .headers
                .insert(hyper::header::CONTENT_ENCODING, hyper::header::HeaderValue::from_static(coding::ZSTD));
            parts.headers.remove(hyper::header::CONTENT_LENGTH);
            Response::from_parts(parts, Full::new(Bytes::from(p)))
        }
        None => Response::from_parts(parts, Full::new(bytes)),
    }
}

async fn dispatch(
    state: &Arc<AppState>,
    peer: SocketAddr,
    req: Request<Incoming>,
    trusted: &AtomicBool,
    zstd: bool,
) -> Result<Reply> {
    let (parts, body) = req.into_parts();
    let head: usize = parts.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if head + parts.uri.to_string().len() > MAX_HEADER_BYTES {
        return Err(Error::HeadersTooLarge(MAX_HEADER_BYTES));
    }
    let r = route(&parts.method, parts.uri.path())?;
    if r == Route::Health {
        return Ok(json(StatusCode::OK, &serde_json::json!({ "ok": true })));
    }
    let allow_local = matches!(r, Route::Metrics | Route::Status);
    let db = state.db.clone();
    // A restored device, quarantined or already recovered, may still ask how to recover.
    let recovering = r == Route::Recover;
    let verified = auth::verify_headers(&parts, peer, allow_local, &state.gate, |id| async move {
        db.run(move |c| match recovering {
            true => Ok(peersync_core::recovery_standing(c, &id)?),
            false => Ok(peersync_core::standing(c, &id)?),
        })
        .await
    })
    .await?;
    if matches!(verified.caller, Caller::Device(_)) {
        trusted.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    // Counted from now, so that a later push from the same peer waits for this one.
    let turn = match (&r, &verified.caller) {
        (Route::Push, Caller::Device(d)) => Some(state.pushes.enter(d)),
        _ => None,
    };
    let body = read_body(body, &parts.headers, &state.limits).await?;
    // The digest is over the content as sent (RFC 9530): checked before decoding it.
    verified.check_body(&body)?;
    let body = coding::decode(&parts.headers, body, state.limits.max_body)?;
    let caller = verified.caller;
    match r {
        Route::Health => unreachable!(),
        Route::Metrics => info::metrics(state).await,
        Route::Status => info::status(state).await,
        Route::Push => sync::push(state, device(&caller)?, body, turn).await,
        Route::Pull => sync::pull(state, device(&caller)?, body, zstd).await,
        Route::Digest => {
            device(&caller)?;
            digest::digest(state, body).await
        }
        Route::Recover => recover::recover(state, device(&caller)?, body).await,
        Route::Snapshot => {
            device(&caller)?;
            snapshot::take(state, body).await
        }
        Route::SnapshotChunk => {
            device(&caller)?;
            snapshot::chunk(state, body).await
        }
        Route::Conflicts => conflicts::list(state, parts.uri.query()).await,
        Route::Conflict(id) => conflicts::show(state, id).await,
        Route::Resolve(id) => {
            device(&caller)?;
            conflicts::resolve(state, id, body).await
        }
    }
}

fn device(c: &Caller) -> Result<String> {
    match c {
        Caller::Device(d) => Ok(d.clone()),
        Caller::LocalMonitor => Err(Error::Unauthenticated("this endpoint needs a signed request".into())),
    }
}

/// Reads the whole body (as sent, before any Content-Encoding is decoded), refusing more than
/// `max_body` bytes (413) or a sender slower than `body_timeout` (408).
async fn read_body(body: Incoming, headers: &hyper::HeaderMap, limits: &Limits) -> Result<Bytes> {
    let declared =
        headers.get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return Err(Error::TooLarge(limits.max_body));
    }
    let read = read_limited(body, declared, limits.max_body);
    match tokio::time::timeout(limits.body_timeout, read).await {
        Err(_) => {
            Err(Error::Timeout(format!("the request body did not arrive within {} s", limits.body_timeout.as_secs())))
        }
        Ok(Ok(Some(b))) => Ok(b),
        Ok(Ok(None)) => Err(Error::TooLarge(limits.max_body)),
        Ok(Err(e)) => Err(Error::BadRequest(format!("could not read the request body: {e}"))),
    }
}

/// Reads a body into one buffer (sized by `declared`, so a large body is not copied as it
/// grows past chunk after chunk); None past `max` bytes.
pub async fn read_limited<B>(
    mut body: B,
    declared: Option<u64>,
    max: usize,
) -> std::result::Result<Option<Bytes>, B::Error>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(max as u64) as usize);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if buf.len() + data.len() > max {
                return Ok(None);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Some(Bytes::from(buf)))
}
