//! GET /status (core's status plus the sidecar's peers) and GET /metrics (Prometheus text).
use super::{json, AppState, Reply};
use crate::error::Result;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use std::sync::Arc;

pub async fn status(state: &Arc<AppState>) -> Result<Reply> {
    let mut v = state.db.run(|c| Ok(peersync_core::status(c)?)).await?;
    let peers: Vec<serde_json::Value> = state
        .metrics
        .peers()
        .into_iter()
        .map(|(url, p)| {
            serde_json::json!({
                "url": url, "device_id": p.device_id, "last_success": p.last_success,
                "last_attempt": p.last_attempt, "last_error": p.last_error, "consecutive_failures": p.failures,
                "held": p.held,
            })
        })
        .collect();
    v["sidecar"] = serde_json::json!({ "listen": state.listen, "sync_peers": peers });
    Ok(json(StatusCode::OK, &v))
}

pub async fn metrics(state: &Arc<AppState>) -> Result<Reply> {
    let (pending, waiting, schema, status) = state
        .db
        .run(|c| {
            let waiting = peersync_core::waiting(c)?.into_iter().map(|w| (w.origin, w.reason)).collect::<Vec<_>>();
            let schema = peersync_core::schema_waiting(c)?
                .into_iter()
                .map(|w| (w.table, w.reason, w.changes))
                .collect::<Vec<_>>();
            Ok((peersync_core::pending_conflicts(c)?, waiting, schema, peersync_core::status(c)?))
        })
        .await?;
    let nonces = state.gate.nonces.lock().unwrap().len();
    let mut text = state.metrics.render(pending, nonces, &waiting, &schema);
    crate::metrics::render_health(&mut text, &status);
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(text)))
        .expect("valid response"))
}
