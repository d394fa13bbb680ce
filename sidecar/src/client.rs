//! Signed HTTP requests to peers: RFC 9421 signing, JSON in and out, timeouts, bounded replies, errors that name the peer.
use crate::coding::{self, Body};
use crate::error::{Error, Result};
use crate::httpsig::{self, RequestView};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use http_body_util::Full;
use hyper::{HeaderMap, Method, Request, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HttpClient};
use hyper_util::rt::TokioExecutor;
use peersync_core::{Batch, Vector};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a peer answers to a push: core's apply result plus who answered.
#[derive(Debug, Deserialize)]
pub struct PushReply {
    pub accepted: i64,
    #[serde(default)]
    pub deferred: i64,
    #[serde(default)]
    pub conflicts: Vec<serde_json::Value>,
    /// Changes the receiver refused: their origin is revoked there.
    #[serde(default)]
    pub refused: i64,
    /// The origins of those refused changes.
    #[serde(default)]
    pub refused_devices: Vec<String>,
    /// Origins whose changes the receiver holds back, and why.
    #[serde(default)]
    pub held: Vec<peersync_core::Held>,
    /// The receiver's vector after the batch.
    pub vector: Vector,
    /// The receiver's device id.
    pub device_id: String,
    /// What the receiver knows each other device holds (answering a hello only; absent from
    /// older peers): see core's `note_known`.
    #[serde(default)]
    pub known: std::collections::BTreeMap<String, Vector>,
    /// The largest body (decoded JSON) the receiver takes; absent from older peers.
    #[serde(default)]
    pub max_body: Option<u64>,
}

/// The body limit assumed for a peer that does not say its own (the default of older peers).
pub const OLD_MAX_BODY: usize = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub struct PullRequest {
    pub since: Vector,
    pub limit: i64,
    /// Origins the puller holds back: leave their changes out of the reply.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub skip: BTreeSet<String>,
    /// The most bytes of JSON the reply may hold (the puller's --max-body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

#[derive(Clone)]
pub struct Client {
    http: HttpClient<HttpConnector, Full<Bytes>>,
    key: Arc<SigningKey>,
    device_id: String,
    max_body: usize,
    timeout: Duration,
    /// Peers (base URLs) whose replies said they take zstd request bodies (RFC 7694).
    zstd_peers: Arc<Mutex<BTreeSet<String>>>,
}

/// Normalizes a peer URL: `http://host:port` (a path prefix is kept, no trailing slash).
pub fn normalize_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let uri: Uri = url.parse().map_err(|e| Error::BadRequest(format!("peer URL \"{url}\" is not a URL ({e})")))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(_)) => Ok(url.to_string()),
        (Some(s), _) if s != "http" => Err(Error::BadRequest(format!(
            "peer URL \"{url}\": only http:// is served by peersync (run it over a private network such as Tailscale)"
        ))),
        _ => Err(Error::BadRequest(format!("peer URL \"{url}\" must look like http://HOST:PORT"))),
    }
}

impl Client {
    pub fn new(key: Arc<SigningKey>, device_id: String, max_body: usize, timeout: Duration) -> Client {
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(Duration::from_secs(5)));
        conn.set_nodelay(true);
        let http = HttpClient::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(conn);
        Client { http, key, device_id, max_body, timeout, zstd_peers: Default::default() }
    }

    /// The largest reply body (decoded JSON) this client takes: its --max-body.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Whether `base` said it takes zstd request bodies.
    pub fn sends_zstd(&self, base: &str) -> bool {
        self.zstd_peers.lock().unwrap_or_else(|p| p.into_inner()).contains(base)
    }

    /// Sends one signed request; returns the reply body of a 2xx answer. A JSON body goes
    /// zstd-compressed when the peer said it takes that.
    pub async fn request(&self, base: &str, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Bytes> {
        let body = match body {
            Some(b) if b.len() >= coding::MIN_COMPRESSED && self.sends_zstd(base) => {
                Some(Body { json_len: b.len(), bytes: coding::compress(&b)?, zstd: true })
            }
            Some(b) => Some(Body { json_len: b.len(), bytes: b, zstd: false }),
            None => None,
        };
        self.send(base, method, path, body).await
    }

    /// [`Client::request`] of a body already made (see [`coding::json_body`]).
    pub async fn send(&self, base: &str, method: Method, path: &str, body: Option<Body>) -> Result<Bytes> {
        let url = format!("{base}{path}");
        let uri: Uri = url.parse().map_err(|e| Error::BadRequest(format!("bad URL {url}: {e}")))?;
        let authority = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
        let pq = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
        let mut headers = HeaderMap::new();
        headers.insert(
            hyper::header::HOST,
            authority.parse().map_err(|_| Error::BadRequest(format!("bad host in {url}")))?,
        );
        let view = RequestView {
            method: method.as_str(),
            scheme: "http",
            authority: &authority,
            path_and_query: &pq,
            headers: &headers,
        };
        let signed = httpsig::sign(
            &view,
            body.as_ref().map(|b| &b.bytes[..]),
            &self.key,
            &self.device_id,
            crate::auth::now_secs(),
            &httpsig::new_nonce(),
        )
        .map_err(Error::Internal)?;
        let mut req = Request::builder().method(method).uri(uri).header(hyper::header::HOST, &authority);
        for (k, v) in signed {
            req = req.header(k, v);
        }
        if let Some(b) = &body {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
            if b.zstd {
                req = req.header(hyper::header::CONTENT_ENCODING, coding::ZSTD);
            }
        }
        req = req.header(hyper::header::ACCEPT_ENCODING, coding::accept_value());
        let req = req
            .body(Full::new(Bytes::from(body.map(|b| b.bytes).unwrap_or_default())))
            .map_err(|e| Error::Internal(format!("cannot build request: {e}")))?;
        let unreachable = |m: String| Error::Unreachable { url: base.to_string(), message: m };
        let work = async {
            let resp = self.http.request(req).await.map_err(|e| unreachable(describe(&e)))?;
            let status = resp.status();
            let (parts, body) = resp.into_parts();
            let declared = parts
                .headers
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body = crate::routes::read_limited(body, declared, self.max_body)
                .await
                .map_err(|e| unreachable(format!("reading the reply failed: {e}")))?
                .ok_or_else(|| too_large_reply(base, self.max_body))?;
            Ok::<_, Error>((status, parts.headers, body))
        };
        let (status, headers, body) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| unreachable(format!("no complete reply within {} s", self.timeout.as_secs())))??;
        {
            let mut peers = self.zstd_peers.lock().unwrap_or_else(|p| p.into_inner());
            if coding::accepts_zstd(&headers) {
                peers.insert(base.to_string());
            } else {
                peers.remove(base);
            }
        }
        let body = coding::decode(&headers, body, self.max_body).map_err(|e| match e {
            Error::DecodedTooLarge(_) => too_large_reply(base, self.max_body),
            e => Error::Peer { url: base.to_string(), status: status.as_u16(), message: format!("reply: {e}") },
        })?;
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
        Err(Error::Peer { url: base.to_string(), status: status.as_u16(), message })
    }

    pub async fn call<T: DeserializeOwned>(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T> {
        let bytes = self.request(base, method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Peer {
            url: base.to_string(),
            status: 200,
            message: format!("unexpected reply to {path}: {e}"),
        })
    }

    pub async fn push(&self, base: &str, batch: &Batch) -> Result<PushReply> {
        self.push_body(base, coding::json_body(batch, self.sends_zstd(base))?).await
    }

    /// [`Client::push`] of a batch already made into a body ([`coding::json_body`]).
    pub async fn push_body(&self, base: &str, body: Body) -> Result<PushReply> {
        let bytes = self.send(base, Method::POST, "/sync/push", Some(body)).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Peer {
            url: base.to_string(),
            status: 200,
            message: format!("unexpected reply to /sync/push: {e}"),
        })
    }

    /// A page of what the holder of `since` lacks, at most `limit` changes and, when the peer
    /// cuts pages by bytes (`by_bytes`: it said its own limit; an older one refuses the
    /// field), at most this client's --max-body of JSON.
    pub async fn pull(
        &self,
        base: &str,
        since: &Vector,
        limit: i64,
        skip: &BTreeSet<String>,
        by_bytes: bool,
    ) -> Result<Batch> {
        let max_bytes = by_bytes.then_some(self.max_body as u64);
        let body = serde_json::to_vec(&PullRequest { since: since.clone(), limit, skip: skip.clone(), max_bytes })?;
        let bytes = self.request(base, Method::POST, "/sync/pull", Some(body)).await?;
        peersync_core::parse_batch(
            std::str::from_utf8(&bytes).map_err(|_| Error::BadRequest("reply is not UTF-8".into()))?,
        )
        .map_err(|e| Error::Peer { url: base.to_string(), status: 200, message: e.to_string() })
    }
}

/// A reply larger than this client takes.
fn too_large_reply(base: &str, max: usize) -> Error {
    Error::ChangeTooLarge(format!(
        "the reply of peer {base} is larger than this device accepts ({max} bytes): raise --max-body here"
    ))
}

/// The innermost cause of a client error (e.g. "Connection refused").
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        msg = s.to_string();
        cur = s.source();
    }
    msg
}
