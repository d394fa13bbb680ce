//! `peersync pair` without a code: shows a one-time code and serves the pairing endpoint
//! (`/pair/start`, `/pair/finish`) until a device pairs, the code expires or it dies.
use super::pair::{adopt, own_payload, PairArgs, MAX_BODY};
use super::run::runtime;
use crate::client::normalize_url;
use crate::error::{Error, Result};
use crate::pairing::{Code, Finish, Keys, Pake, Payload, Side, Start, Started};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A code's state: its attempts (each start uses one; each wrong tag fails one) and sessions.
struct Invite {
    code: Code,
    expires: Instant,
    attempts: u32,
    started: u32,
    failed: u32,
    used: bool,
    /// Started sessions waiting for their finish, by id.
    sessions: HashMap<String, Keys>,
}

/// How the wait ends: paired with (who), or the code died (why).
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
    inv.sessions.insert(session.clone(), keys);
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
    let Some(keys) = inv.sessions.remove(&f.session) else {
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

fn show(code: &Code) -> Result<()> {
    let shown = code.shown();
    outln!("pairing code: {shown}");
    if let Ok(qr) = qrcode::QrCode::new(shown.as_bytes()) {
        use qrcode::render::unicode::Dense1x2;
        let img =
            qr.render::<Dense1x2>().dark_color(Dense1x2::Light).light_color(Dense1x2::Dark).quiet_zone(true).build();
        outln!("{img}");
    }
    outln!("On the other device, run:  peersync pair --db PATH {shown}");
    Ok(())
}

pub(super) fn invite(a: PairArgs) -> Result<()> {
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
        show(&code)?;
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
                tokio::time::sleep(Duration::from_secs(1)).await;
                outln!("paired with {who}; a running `peersync serve` syncs with it within seconds");
                Ok(())
            }
            Outcome::Died(why) => Err(Error::Cli(why)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::keys;

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
