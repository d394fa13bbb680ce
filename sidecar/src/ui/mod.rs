//! The page for people (`peersync ui`, `serve --ui`): a server on a loopback address only,
//! its routes and replies, server-sent status events and *sync now*.
mod body;
mod conflicts;
pub mod html;
pub mod session;
mod status;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::shutdown::Shutdown;
use crate::sync::Syncer;
use body::UiBody;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use session::{Refusal, Sessions};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How *sync now* syncs: wake `serve`'s loops, or (in `peersync ui`) one sync with each peer.
pub enum SyncNow {
    Wake(crate::scheduler::Wake),
    Once(Arc<Syncer>),
}

pub struct Ui {
    pub db: Db,
    /// `127.0.0.1:PORT`: the only `Host` accepted.
    host: String,
    /// `http://127.0.0.1:PORT`: the only `Origin` accepted.
    origin: String,
    sessions: Sessions,
    sync_now: SyncNow,
    stop: Shutdown,
}

/// The page's address: `listen` must be an IP address of loopback (127.0.0.0/8 or ::1).
pub fn loopback(listen: &str) -> Result<SocketAddr> {
    let addr: SocketAddr = listen.parse().map_err(|_| {
        Error::Cli(format!(
            "the page's address must be IP:PORT on loopback (127.0.0.1:PORT or [::1]:PORT), not \"{listen}\""
        ))
    })?;
    if !addr.ip().is_loopback() {
        return Err(Error::Cli(format!(
            "the page only listens on loopback (127.0.0.0/8 or ::1), never on {}: anyone reaching that address could settle your conflicts",
            addr.ip()
        )));
    }
    Ok(addr)
}

/// Binds the page's address (loopback only) and makes its state; returns the listener, the
/// state and the URL to open (with the one-time token).
pub async fn bind(listen: &str, db: Db, sync_now: SyncNow, stop: Shutdown) -> Result<(TcpListener, Arc<Ui>, String)> {
    let addr = loopback(listen)?;
    let listener =
        TcpListener::bind(addr).await.map_err(|e| Error::Cli(format!("cannot listen on {addr} for the page: {e}")))?;
    let host = listener.local_addr()?.to_string();
    let (sessions, token) = Sessions::new().map_err(Error::Internal)?;
    let origin = format!("http://{host}");
    let url = format!("{origin}/?token={token}");
    Ok((listener, Arc::new(Ui { db, host, origin, sessions, sync_now, stop }), url))
}

/// Serves the page until `ui.stop` triggers.
pub async fn serve(listener: TcpListener, ui: Arc<Ui>) {
    loop {
        let Some((stream, _)) = crate::server::accept(&listener, &ui.stop, "page: accept failed").await else { return };
        let ui = ui.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let ui = ui.clone();
                async move { Ok::<_, Infallible>(handle(&ui, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .max_buf_size(crate::routes::MAX_HEADER_BYTES)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "page: connection closed with an error");
            }
        });
    }
}

type Reply = Response<UiBody>;

/// Headers every reply carries: no caching, no framing, only this page's own scripts and styles.
fn reply(status: StatusCode, kind: &str, body: UiBody) -> Reply {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, kind)
        .header(CACHE_CONTROL, "no-store")
        .header("X-Content-Type-Options", "nosniff")
        .header("X-Frame-Options", "DENY")
        .header("Referrer-Policy", "same-origin")
        .header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        .body(body)
        .expect("valid response")
}

fn html(status: StatusCode, page: String) -> Reply {
    reply(status, "text/html; charset=utf-8", UiBody::full(page))
}

fn see_other(to: &str) -> Reply {
    let mut r = reply(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", UiBody::full(String::new()));
    r.headers_mut().insert(LOCATION, to.parse().expect("valid location"));
    r
}

fn refused(r: Refusal) -> Reply {
    let (status, why) = match r {
        Refusal::NoSession => (
            StatusCode::UNAUTHORIZED,
            "No session: open the link that <code>peersync ui</code> (or <code>serve --ui</code>) printed.",
        ),
        Refusal::Forbidden(why) => (StatusCode::FORBIDDEN, why),
    };
    html(status, html::page("Not allowed", html::Nav::None, &format!("<h1>Not allowed</h1><p>{why}</p>")))
}

fn error_page(e: &Error) -> Reply {
    let status = match e.status() {
        s if s.is_server_error() => s,
        StatusCode::NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    let body = format!(
        "<h1>That did not work</h1><p class=\"error\">{}</p><p><a href=\"/\">Back to the conflicts</a></p>",
        html::esc(&e.to_string())
    );
    html(status, html::page("Error", html::Nav::None, &body))
}

const CSS: &str = include_str!("../../ui/page.css");
const JS: &str = include_str!("../../ui/page.js");

async fn handle(ui: &Arc<Ui>, req: Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    if let Err(r) = session::check_host(&parts.headers, &ui.host) {
        return refused(r);
    }
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let get = parts.method == Method::GET;
    match (get, path.as_str()) {
        (true, "/page.css") => return reply(StatusCode::OK, "text/css; charset=utf-8", UiBody::full(CSS.into())),
        (true, "/page.js") => return reply(StatusCode::OK, "text/javascript; charset=utf-8", UiBody::full(JS.into())),
        _ => {}
    }
    if get && path == "/" {
        if let Some(token) = html::field(&html::form(&query), "token") {
            return match ui.sessions.exchange(token) {
                Ok((sid, _)) => {
                    let mut r = see_other("/");
                    r.headers_mut().insert(SET_COOKIE, session::cookie(&sid).parse().expect("valid cookie"));
                    r
                }
                Err(r) => refused(r),
            };
        }
    }
    let csrf = match ui.sessions.session(&parts.headers) {
        Ok(c) => c,
        Err(r) => return refused(r),
    };
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let conflict_id =
        |s: &str| s.parse::<i64>().map_err(|_| Error::NotFound(format!("no conflict \"{}\"", peersync_core::shown(s))));
    let out: Result<Reply> = if get {
        match segs.as_slice() {
            [] => conflicts::pending(ui, &query, &csrf).await.map(|p| html(StatusCode::OK, p)),
            ["history"] => conflicts::history(ui).await.map(|p| html(StatusCode::OK, p)),
            ["status"] => status::page_html(ui, &csrf, &query).await.map(|p| html(StatusCode::OK, p)),
            ["events"] => Ok(events(ui.clone())),
            ["conflicts", n, "edit"] => match conflict_id(n) {
                Ok(id) => conflicts::edit_form(ui, id, &query, &csrf).await.map(|p| html(StatusCode::OK, p)),
                Err(e) => Err(e),
            },
            _ => Err(Error::NotFound(format!("no page {}", peersync_core::shown(&path)))),
        }
    } else if parts.method == Method::POST {
        let fields = match read_form(body).await {
            Ok(f) => f,
            Err(e) => return error_page(&e),
        };
        let given =
            html::field(&fields, "csrf").or_else(|| parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()));
        if let Err(r) = session::check_post(&parts.headers, &ui.origin, &csrf, given) {
            tracing::warn!(%path, "page: refused a request that is not from the page");
            return refused(r);
        }
        match segs.as_slice() {
            ["conflicts", n] => match conflict_id(n) {
                Ok(id) => conflicts::resolve(ui, id, &fields).await.map(|()| see_other(&format!("/?done={id}"))),
                Err(e) => Err(e),
            },
            ["conflicts", n, "edit"] => match conflict_id(n) {
                Ok(id) => conflicts::resolve_edited(ui, id, &fields).await.map(|()| see_other(&format!("/?done={id}"))),
                Err(e) => Err(e),
            },
            ["sync"] => {
                sync_now(ui);
                Ok(see_other("/status?synced=1"))
            }
            _ => Err(Error::NotFound(format!("no form {}", peersync_core::shown(&path)))),
        }
    } else {
        Err(Error::MethodNotAllowed(format!("the page takes GET and POST, not {}", parts.method)))
    };
    out.unwrap_or_else(|e| error_page(&e))
}

/// A form body (at most 1 MiB, within 30 s).
async fn read_form(body: Incoming) -> Result<Vec<(String, String)>> {
    const MAX: usize = 1 << 20;
    let collected = tokio::time::timeout(Duration::from_secs(30), Limited::new(body, MAX).collect())
        .await
        .map_err(|_| Error::Timeout("the form did not arrive within 30 s".into()))?
        .map_err(|e| Error::BadRequest(format!("could not read the form: {e}")))?;
    let bytes: Bytes = collected.to_bytes();
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::BadRequest("the form is not UTF-8".into()))?;
    Ok(html::form(text))
}

/// *Sync now*: wakes `serve`'s loops, or syncs once with each configured peer.
fn sync_now(ui: &Arc<Ui>) {
    match &ui.sync_now {
        SyncNow::Wake(w) => w.now(),
        SyncNow::Once(syncer) => {
            let (syncer, stop) = (syncer.clone(), ui.stop.clone());
            tokio::spawn(async move {
                let peers = match syncer.db.run(|c| Ok(peersync_core::configured_peers(c)?)).await {
                    Ok(p) => p,
                    Err(e) => return tracing::warn!(error = %e, "sync now: cannot read the peers"),
                };
                for p in peers {
                    let r = syncer.sync(&p.url, &stop, &()).await;
                    if let Err(e) = &r {
                        tracing::warn!(peer = %p.url, error = %e, "sync now failed");
                    }
                    syncer.note(&p.url, r.as_ref()).await;
                }
            });
        }
    }
}

/// GET /events: the status page's live part, sent as a server-sent event when it changes
/// (looked at every 2 s; a comment every 2 s otherwise keeps the connection alive).
fn events(ui: Arc<Ui>) -> Reply {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let mut last = String::new();
        loop {
            let msg = match status::live(&ui).await {
                Ok(h) if h != last => {
                    let data: String = h.lines().map(|l| format!("data: {l}\n")).collect();
                    last = h;
                    format!("event: status\n{data}\n")
                }
                Ok(_) => ": unchanged\n\n".to_string(),
                Err(e) => format!("event: failed\ndata: {}\n\n", html::esc(&e.to_string()).replace('\n', " ")),
            };
            if tx.send(Bytes::from(msg)).await.is_err() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = ui.stop.wait() => return,
            }
        }
    });
    reply(StatusCode::OK, "text/event-stream", UiBody::Events(rx))
}
