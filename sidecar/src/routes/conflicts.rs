//! GET /conflicts, GET /conflicts/{id}, POST /conflicts/{id}/resolve.
use super::{json, AppState, Reply};
use crate::error::{Error, Result};
use bytes::Bytes;
use hyper::StatusCode;
use std::sync::Arc;

pub async fn list(state: &Arc<AppState>, query: Option<&str>) -> Result<Reply> {
    let status = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("status="))
        .map(str::to_string)
        .filter(|s| s != "all");
    if let Some(s) = &status {
        if !["pending", "resolved", "ignored"].contains(&s.as_str()) {
            return Err(Error::BadRequest(format!("status must be pending, resolved, ignored or all, not \"{s}\"")));
        }
    }
    let v = state.db.run(move |c| Ok(peersync_core::conflicts(c, status.as_deref())?)).await?;
    Ok(json(StatusCode::OK, &serde_json::to_value(v)?))
}

pub async fn show(state: &Arc<AppState>, id: i64) -> Result<Reply> {
    let c = state.db.run(move |c| Ok(peersync_core::conflict(c, id)?)).await?;
    let c = c.ok_or_else(|| Error::NotFound(format!("no conflict with id {id}")))?;
    Ok(json(StatusCode::OK, &serde_json::to_value(c)?))
}

pub async fn resolve(state: &Arc<AppState>, id: i64, body: Bytes) -> Result<Reply> {
    let req: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        Error::BadRequest(format!("the body must be {{\"choice\": \"local\"|\"remote\"|\"ignore\"|{{row}}}}: {e}"))
    })?;
    crate::routes::only_fields(&req, &["choice"], "the resolve body")?;
    let choice = match req.get("choice") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v @ serde_json::Value::Object(_)) => v.to_string(),
        _ => {
            return Err(Error::BadRequest(
                "choice must be \"local\", \"remote\", \"ignore\" or a JSON object of column values".into(),
            ))
        }
    };
    let choice = peersync_core::Choice::parse(&choice)?;
    let out = state
        .db
        .run(move |c| {
            if peersync_core::conflict(c, id)?.is_none() {
                return Err(Error::NotFound(format!("no conflict with id {id}")));
            }
            let status = peersync_core::resolve(c, id, choice)?;
            Ok((status, peersync_core::conflict(c, id)?))
        })
        .await?;
    tracing::info!(conflict = id, status = %out.0, "conflict resolved");
    Ok(json(StatusCode::OK, &serde_json::json!({ "id": id, "status": out.0, "conflict": out.1 })))
}
