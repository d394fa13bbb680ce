//! `peersync pair`: shows a one-time code and serves a pairing endpoint until a device pairs
//! with it, or (`peersync pair CODE`) pairs with the device showing CODE. See `pairing.rs`.
use super::run::runtime;
use crate::client::normalize_url;
use crate::db;
use crate::error::{Error, Result};
use crate::keys;
use crate::pairing::{Code, Finish, Keys, Pake, Payload, PeerUrl, Side, Start, Started};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Largest pairing request or reply body (a payload with many tables' definitions).
const MAX_BODY: usize = 4 << 20;

#[derive(Args)]
pub struct PairArgs {
    #[command(flatten)]
    db: super::DbArg,
    #[command(flatten)]
    key: super::KeyArg,
    /// The code another device shows (`peersync pair` there). Without it, this device shows a
    /// code and waits for another to pair with it.
    code: Option<String>,
    /// Where this device's `peersync serve` is reached by the other devices (http://HOST:PORT).
    /// Showing a code: default http://<--listen host>:8080.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Showing a code: the address to serve the pairing endpoint on (this device's Tailscale
    /// address on a tailnet); the code names it.
    #[arg(long, default_value = "127.0.0.1:7447", value_name = "ADDR")]
    listen: String,
    /// Showing a code: it expires after this many seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    expires: u64,
    /// Showing a code: it dies after this many failed attempts.
    #[arg(long, default_value_t = 5)]
    attempts: u32,
    /// Joining: create the inviter's tracked tables that do not exist here (from its
    /// definitions), then track them.
    #[arg(long)]
    schema: bool,
}

fn own_payload(db: &Path, key: &super::KeyArg, url: Option<String>, inviter: bool) -> Result<Payload> {
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
fn adopt(db: &Path, other: &Payload) -> Result<()> {
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
        None => invite(a),
    }
}

// ---- the inviter ----

struct Invite {
    code: Code,
    expires: Instant,
    attempts: u32,
    started: u32,
    failed: u32,
    used: bool,
    sessions: HashMap<String, (Keys, Vec<u8>)>,
}

enum Outcome {
    Paired(String),
    Died(String),
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r
}

fn error(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    reply(status, serde_json::json!({ "error": msg }))
}

struct Ctx {
    state: Mutex<Invite>,
    db: PathBuf,
    mine: String,
    done: mpsc::UnboundedSender<Outcome>,
}

async fn handle(ctx: Arc<Ctx>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "request too large"),
    };
    match (method, path.as_str()) {
        (Method::POST, "/pair/start") => start(&ctx, &body),
        (Method::POST, "/pair/finish") => finish(&ctx, &body),
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// Refuses when the code is used, expired or out of attempts.
fn closed(inv: &Invite) -> Option<Response<Full<Bytes>>> {
    if inv.used {
        Some(error(StatusCode::GONE, "this pairing code was used already"))
    } else if Instant::now() >= inv.expires {
        Some(error(StatusCode::GONE, "this pairing code expired"))
    } else if inv.failed >= inv.attempts {
        Some(error(StatusCode::GONE, "this pairing code died after too many failed attempts"))
    } else {
        None
    }
}

fn start(ctx: &Ctx, body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(Start { msg }) = serde_json::from_slice::<Start>(body) else {
        return error(StatusCode::BAD_REQUEST, "malformed start");
    };
    let Ok(theirs) = hex::decode(&msg) else {
        return error(StatusCode::BAD_REQUEST, "malformed start");
    };
    let mut inv = ctx.state.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = closed(&inv) {
        return r;
    }
    if inv.started >= inv.attempts {
        return error(StatusCode::TOO_MANY_REQUESTS, "too many attempts with this pairing code");
    }
    inv.started += 1;
    let (pake, mine) = Pake::start(Side::Inviter, &inv.code.secret);
    let keys = match pake.finish(&theirs, &mine, &theirs) {
        Ok(k) => k,
        Err(_) => return error(StatusCode::BAD_REQUEST, "malformed start"),
    };
    let mut id = [0u8; 16];
    if getrandom::fill(&mut id).is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
    }
    let session = hex::encode(id);
    inv.sessions.insert(session.clone(), (keys, mine.clone()));
    reply(StatusCode::OK, serde_json::to_value(Started { session, msg: hex::encode(mine) }).unwrap_or_default())
}

fn finish(ctx: &Ctx, body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(f) = serde_json::from_slice::<Finish>(body) else {
        return error(StatusCode::BAD_REQUEST, "malformed finish");
    };
    let mut inv = ctx.state.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = closed(&inv) {
        return r;
    }
    // A session serves one finish, right or wrong.
    let Some((keys, _)) = inv.sessions.remove(&f.session) else {
        return error(StatusCode::FORBIDDEN, "unknown or finished pairing session");
    };
    if !keys.check(Side::Joiner, f.payload.as_bytes(), &f.tag) {
        inv.failed += 1;
        let left = inv.attempts.saturating_sub(inv.failed);
        eprintln!("a device tried a wrong pairing code ({left} attempts left)");
        if left == 0 {
            let _ = ctx.done.send(Outcome::Died("the pairing code died after too many failed attempts".into()));
        }
        return error(StatusCode::FORBIDDEN, "wrong pairing code");
    }
    let joiner: Payload = match serde_json::from_str(&f.payload) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("malformed payload: {e}")),
    };
    if let Err(e) = adopt(&ctx.db, &joiner) {
        return error(StatusCode::BAD_REQUEST, &format!("cannot pair: {e}"));
    }
    inv.used = true;
    let who = format!("{}{}", joiner.device_id, joiner.name.map(|n| format!(" ({n})")).unwrap_or_default());
    let _ = ctx.done.send(Outcome::Paired(who));
    let tag = keys.tag(Side::Inviter, ctx.mine.as_bytes());
    reply(StatusCode::OK, serde_json::json!({ "session": f.session, "payload": ctx.mine, "tag": tag }))
}

fn show(code: &Code) {
    let shown = code.shown();
    println!("pairing code: {shown}");
    if let Ok(qr) = qrcode::QrCode::new(shown.as_bytes()) {
        use qrcode::render::unicode::Dense1x2;
        let img =
            qr.render::<Dense1x2>().dark_color(Dense1x2::Light).light_color(Dense1x2::Dark).quiet_zone(true).build();
        println!("{img}");
    }
    println!("On the other device, run:  peersync pair --db PATH {shown}");
}

fn invite(a: PairArgs) -> Result<()> {
    let host = a.listen.rsplit_once(':').map(|(h, _)| h).unwrap_or(&a.listen).to_string();
    let url = normalize_url(&a.url.clone().unwrap_or_else(|| format!("http://{host}:8080")))?;
    let mine = serde_json::to_string(&own_payload(&a.db.db, &a.key, Some(url), true)?)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&a.listen)
            .await
            .map_err(|e| Error::Cli(format!("cannot listen on {} for pairing: {e}", a.listen)))?;
        let addr = listener.local_addr()?;
        if addr.ip().is_unspecified() {
            return Err(Error::Cli(format!(
                "--listen {}: the code must name an address the other device reaches; give this device's own (e.g. its Tailscale address)",
                a.listen
            )));
        }
        let code = Code::new(&addr.to_string())?;
        show(&code);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let expires = Duration::from_secs(a.expires);
        let ctx = Arc::new(Ctx {
            state: Mutex::new(Invite {
                code,
                expires: Instant::now() + expires,
                attempts: a.attempts.max(1),
                started: 0,
                failed: 0,
                used: false,
                sessions: HashMap::new(),
            }),
            db: a.db.db.clone(),
            mine,
            done: tx,
        });
        let accept = {
            let ctx = ctx.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let ctx = ctx.clone();
                            async move { Ok::<_, std::convert::Infallible>(handle(ctx, req).await) }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .header_read_timeout(Duration::from_secs(10))
                            .timer(hyper_util::rt::TokioTimer::new())
                            .serve_connection(TokioIo::new(stream), svc);
                        let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
                    });
                }
            }
        };
        let outcome = tokio::select! {
            o = rx.recv() => o.unwrap_or(Outcome::Died("pairing stopped".into())),
            _ = tokio::time::sleep(expires) => Outcome::Died("the pairing code expired unused".into()),
            _ = tokio::signal::ctrl_c() => Outcome::Died("pairing cancelled".into()),
            _ = accept => Outcome::Died("pairing stopped".into()),
        };
        match outcome {
            Outcome::Paired(who) => {
                // Let the reply reach the joiner before the endpoint goes.
                tokio::time::sleep(Duration::from_millis(300)).await;
                println!("paired with {who}; a running `peersync serve` syncs with it within seconds");
                Ok(())
            }
            Outcome::Died(why) => Err(Error::Cli(why)),
        }
    })
}

// ---- the joiner ----

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
    println!(
        "paired with {}{}",
        theirs.device_id,
        theirs.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
    );
    let conn = db::open(&a.db.db, false)?;
    let mut missing = Vec::new();
    for t in &theirs.tables {
        let exists = peersync_core::table_exists(&conn, &t.name)?;
        if !exists && a.schema {
            peersync_core::create_table(&conn, &t.name, &t.sql)?;
            println!("created table {}", t.name);
        } else if !exists {
            missing.push(t.name.clone());
            continue;
        }
        // No strategy given: the inviter's setting arrives with the first sync.
        peersync_core::track(&conn, &t.name, None)?;
        println!("tracking {} (strategy {} on the other device)", t.name, t.strategy);
    }
    if !missing.is_empty() {
        println!(
            "the other device tracks tables that do not exist here: {} (create them and `peersync track` each, or pair again with --schema)",
            missing.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An inviter's state on a fresh database, with `attempts` and its outcome channel.
    fn inviter(name: &str, attempts: u32) -> (Arc<Ctx>, mpsc::UnboundedReceiver<Outcome>) {
        let dir = std::env::temp_dir().join(format!("peersync-pair-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.db");
        let conn = db::open(&path, true).unwrap();
        peersync_core::init(&conn).unwrap();
        peersync_core::set_identity(&conn, Some("a"), &keys::public_hex(&keys::generate().unwrap())).unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Invite {
            code: Code { secret: "abcdefgh".into(), addr: "127.0.0.1:1".into() },
            expires: Instant::now() + Duration::from_secs(60),
            attempts,
            started: 0,
            failed: 0,
            used: false,
            sessions: HashMap::new(),
        };
        (Arc::new(Ctx { state: Mutex::new(state), db: path, mine: "{}".into(), done: tx }), rx)
    }

    fn joiner_payload() -> String {
        let key = keys::generate().unwrap();
        serde_json::to_string(&Payload {
            device_id: "0123456789abcdef0123456789abcdef".into(),
            public_key: keys::public_hex(&key),
            name: Some("b".into()),
            url: Some("http://127.0.0.2:8080".into()),
            peers: Vec::new(),
            tables: Vec::new(),
        })
        .unwrap()
    }

    /// Runs the joiner's side against `ctx` with `secret`: the start and finish bodies sent,
    /// and the finish reply's status.
    fn attempt(ctx: &Ctx, secret: &str) -> (String, StatusCode) {
        let (pake, msg_b) = Pake::start(Side::Joiner, secret);
        let r = start(ctx, serde_json::json!({ "msg": hex::encode(&msg_b) }).to_string().as_bytes());
        assert_eq!(r.status(), StatusCode::OK);
        let body = futures_body(r);
        let started: Started = serde_json::from_slice(&body).unwrap();
        let msg_a = hex::decode(&started.msg).unwrap();
        let keys = pake.finish(&msg_a, &msg_a, &msg_b).unwrap();
        let payload = joiner_payload();
        let tag = keys.tag(Side::Joiner, payload.as_bytes());
        let finish_body = serde_json::to_string(&Finish { session: started.session, payload, tag }).unwrap();
        let status = finish(ctx, finish_body.as_bytes()).status();
        (finish_body, status)
    }

    fn futures_body(r: Response<Full<Bytes>>) -> Bytes {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(r.into_body().collect()).unwrap().to_bytes()
    }

    #[test]
    fn a_used_code_and_a_replayed_finish_are_refused() {
        let (ctx, mut rx) = inviter("replay", 5);
        let (finish_body, status) = attempt(&ctx, "abcdefgh");
        assert_eq!(status, StatusCode::OK);
        assert!(matches!(rx.try_recv(), Ok(Outcome::Paired(_))));
        // The same finish again, and a new start with the right code: the code is used.
        assert_eq!(finish(&ctx, finish_body.as_bytes()).status(), StatusCode::GONE);
        let (_, msg) = Pake::start(Side::Joiner, "abcdefgh");
        let r = start(&ctx, serde_json::json!({ "msg": hex::encode(msg) }).to_string().as_bytes());
        assert_eq!(r.status(), StatusCode::GONE);
    }

    #[test]
    fn wrong_codes_use_up_the_attempts_then_the_code_dies() {
        let (ctx, mut rx) = inviter("wrong", 2);
        let (finish_body, status) = attempt(&ctx, "abcdefgj");
        assert_eq!(status, StatusCode::FORBIDDEN);
        // A session serves one finish: replaying it is not another guess.
        assert_eq!(finish(&ctx, finish_body.as_bytes()).status(), StatusCode::FORBIDDEN);
        assert_eq!(ctx.state.lock().unwrap().failed, 1);
        assert!(rx.try_recv().is_err());
        assert_eq!(attempt(&ctx, "abcdefgk").1, StatusCode::FORBIDDEN);
        assert!(matches!(rx.try_recv(), Ok(Outcome::Died(_))));
        // Dead: even the right code is refused, and nothing was trusted.
        let (_, msg) = Pake::start(Side::Joiner, "abcdefgh");
        let r = start(&ctx, serde_json::json!({ "msg": hex::encode(msg) }).to_string().as_bytes());
        assert_eq!(r.status(), StatusCode::GONE);
        let conn = db::open(&ctx.db, false).unwrap();
        assert!(peersync_core::configured_peers(&conn).unwrap().is_empty());
        assert_eq!(peersync_core::devices(&conn).unwrap().len(), 1);
    }

    #[test]
    fn an_expired_code_is_refused() {
        let (ctx, _rx) = inviter("expired", 5);
        ctx.state.lock().unwrap().expires = Instant::now();
        let (_, msg) = Pake::start(Side::Joiner, "abcdefgh");
        let r = start(&ctx, serde_json::json!({ "msg": hex::encode(msg) }).to_string().as_bytes());
        assert_eq!(r.status(), StatusCode::GONE);
    }
}
