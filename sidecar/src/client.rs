//! Signed HTTP requests to peers: RFC 9421 signing, JSON in and out, timeouts, bounded replies, errors that name the peer.
use crate::error::{Error, Result};
use crate::httpsig::{self, RequestView};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{HeaderMap, Method, Request, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HttpClient};
use hyper_util::rt::TokioExecutor;
use peersync_core::{Batch, Vector};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
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
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PullRequest {
    pub since: Vector,
    pub limit: i64,
    /// Origins the puller holds back: leave their changes out of the reply.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub skip: BTreeSet<String>,
}

#[derive(Clone)]
pub struct Client {
    http: HttpClient<HttpConnector, Full<Bytes>>,
    key: Arc<SigningKey>,
    device_id: String,
    max_body: usize,
    timeout: Duration,
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
        Client { http, key, device_id, max_body, timeout }
    }

    /// Sends one signed request; returns the reply body of a 2xx answer.
    pub async fn request(&self, base: &str, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Bytes> {
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
            body.as_deref(),
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
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::Internal(format!("cannot build request: {e}")))?;
        let unreachable = |m: String| Error::Unreachable { url: base.to_string(), message: m };
        let work = async {
            let resp = self.http.request(req).await.map_err(|e| unreachable(describe(&e)))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), self.max_body)
                .collect()
                .await
                .map_err(|e| unreachable(format!("reading the reply failed: {e}")))?
                .to_bytes();
            Ok::<_, Error>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| unreachable(format!("no complete reply within {} s", self.timeout.as_secs())))??;
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
        self.push_body(base, serde_json::to_vec(batch)?).await
    }

    /// [`Client::push`] of a batch already serialized.
    pub async fn push_body(&self, base: &str, body: Vec<u8>) -> Result<PushReply> {
        self.call(base, Method::POST, "/sync/push", Some(body)).await
    }

    pub async fn pull(&self, base: &str, since: &Vector, limit: i64, skip: &BTreeSet<String>) -> Result<Batch> {
        let body = serde_json::to_vec(&PullRequest { since: since.clone(), limit, skip: skip.clone() })?;
        let bytes = self.request(base, Method::POST, "/sync/pull", Some(body)).await?;
        peersync_core::parse_batch(
            std::str::from_utf8(&bytes).map_err(|_| Error::BadRequest("reply is not UTF-8".into()))?,
        )
        .map_err(|e| Error::Peer { url: base.to_string(), status: 200, message: e.to_string() })
    }
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
