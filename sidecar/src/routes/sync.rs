//! POST /sync/push (apply a peer's batch) and POST /sync/pull (serve a page of what a peer lacks).
use super::order::Turn;
use super::{json, AppState, Reply};
use crate::coding;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use bytes::Bytes;
use hyper::StatusCode;
use peersync_core::{DEFAULT_LIMIT, MAX_LIMIT};
use std::sync::Arc;

pub async fn push(state: &Arc<AppState>, caller: String, body: Bytes, turn: Option<Turn>) -> Result<Reply> {
    let text = std::str::from_utf8(&body).map_err(|_| Error::BadRequest("the batch is not UTF-8 JSON".into()))?;
    let batch = peersync_core::parse_batch(text)?;
    drop(body); // the batch holds it all now: a large change is not held twice while it applies
    if batch.device_id != caller {
        return Err(Error::Forbidden(format!(
            "the batch says it comes from device {} but the request is signed by {caller}",
            batch.device_id
        )));
    }
    let n = batch.changes.len();
    if let Some(turn) = &turn {
        turn.wait(&batch).await;
    }
    let (applied, known) = state
        .db
        .run(move |c| {
            let applied = peersync_core::apply(c, &batch)?;
            // A hello (no changes) is told what this device knows the others hold.
            let known = if n == 0 { Some(peersync_core::known_vectors(c)?) } else { None };
            Ok((applied, known))
        })
        .await?;
    if let Some(turn) = &turn {
        turn.applied(&applied.vector);
    }
    Metrics::add(&state.metrics.changes_received, applied.accepted as u64);
    Metrics::add(&state.metrics.conflicts, applied.conflicts.len() as u64);
    if n > 0 {
        tracing::info!(from = %caller, changes = n, accepted = applied.accepted, duplicates = applied.duplicates, conflicts = applied.conflicts.len(), "push applied");
    }
    let mut v = serde_json::to_value(&applied)?;
    v["device_id"] = state.device_id.clone().into();
    // The largest body this device takes (decoded JSON): senders cut their pages by it.
    v["max_body"] = state.limits.max_body.into();
    if let Some(known) = known {
        v["known"] = serde_json::to_value(known)?;
    }
    Ok(json(StatusCode::OK, &v))
}

pub async fn pull(state: &Arc<AppState>, caller: String, body: Bytes, zstd: bool) -> Result<Reply> {
    let req: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        Error::BadRequest(format!("the pull body must be JSON {{\"since\": vector, \"limit\": n}}: {e}"))
    })?;
    crate::routes::only_fields(&req, &["since", "limit", "skip", "max_bytes"], "the pull body")?;
    let since = req.get("since").cloned().unwrap_or(serde_json::json!({}));
    let since = peersync_core::parse_vector("pull", &since.to_string())?;
    // Origins the caller holds back: pages leave them out (the caller's vector is recorded as
    // it is; only the pages are made as if it held them).
    let skip: Vec<String> = match req.get("skip") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone())
            .ok()
            .filter(|s: &Vec<String>| s.len() <= 10_000 && s.iter().all(|d| peersync_core::is_device_id(d)))
            .ok_or_else(|| Error::BadRequest("pull: skip must be a list of device ids".into()))?,
    };
    let mut page_since = since.clone();
    for d in skip {
        page_since.insert(d, i64::MAX);
    }
    let limit = match req.get("limit") {
        None | Some(serde_json::Value::Null) => DEFAULT_LIMIT,
        Some(v) => v
            .as_i64()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| Error::BadRequest(format!("pull: limit must be an integer between 1 and {MAX_LIMIT}")))?,
    };
    // The reply's JSON stays within this device's --max-body and the puller's `max_bytes`.
    let theirs = match req.get("max_bytes") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|n| *n >= 1)
                .ok_or_else(|| Error::BadRequest("pull: max_bytes must be a positive integer".into()))?,
        ),
    };
    let own = state.limits.max_body;
    let max = theirs.map_or(own, |t| own.min(usize::try_from(t).unwrap_or(usize::MAX)));
    let whose = if max < own {
        format!("the pulling device {caller}")
    } else {
        format!("this device {} ({})", state.device_id, state.listen)
    };
    drop(body);
    let mut limit = limit;
    loop {
        let (key, who, since, page_since) = (state.key.clone(), caller.clone(), since.clone(), page_since.clone());
        let budget = crate::pages::byte_budget(max);
        let made = state
            .db
            .run(move |c| {
                peersync_core::note_peer_vector(c, &who, &since)?;
                // Written from the log rows into the (compressing) body: a large value is held once.
                let mut w = coding::BodyWriter::new(zstd)?;
                let batch = peersync_core::outgoing_to(c, &key, &page_since, limit, Some(budget), &mut w)?;
                peersync_core::note_exchange(c, &who)?;
                let body = w.finish()?;
                Ok((batch, body))
            })
            .await?;
        let (batch, out) = made;
        if out.json_len > max {
            if batch.changes.len() > 1 {
                limit = (batch.changes.len() as i64 / 2).max(1);
                continue;
            }
            if let Some(e) = batch.changes.first() {
                return Err(crate::pages::change_too_large(e, out.json_len, max, &whose));
            }
        }
        Metrics::add(&state.metrics.changes_sent, batch.changes.len() as u64);
        let mut reply =
            hyper::Response::builder().status(StatusCode::OK).header(hyper::header::CONTENT_TYPE, "application/json");
        if out.zstd {
            reply = reply.header(hyper::header::CONTENT_ENCODING, coding::ZSTD);
        }
        return Ok(reply.body(http_body_util::Full::new(Bytes::from(out.bytes))).expect("valid response"));
    }
}
