//! POST /sync/digest: this device's audit account (`{}`), or one range of a table's records
//! (`{"table": t, "prefix": hex}`) for a peer narrowing a difference down.
use super::{json, AppState, Reply};
use crate::error::{Error, Result};
use bytes::Bytes;
use hyper::StatusCode;
use std::sync::Arc;

pub async fn digest(state: &Arc<AppState>, body: Bytes) -> Result<Reply> {
    let req: serde_json::Value = if body.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Error::BadRequest(format!("the digest body must be JSON {{}} or {{\"table\": name, \"prefix\": hex}}: {e}"))
        })?
    };
    crate::routes::only_fields(&req, &["table", "prefix"], "the digest body")?;
    let text = |k: &str| -> Result<Option<String>> {
        match req.get(k) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Error::BadRequest(format!("digest: {k} must be a string"))),
        }
    };
    let v = match (text("table")?, text("prefix")?) {
        (None, None) => serde_json::to_value(state.audits.current(&state.db).await?)?,
        (Some(table), prefix) => {
            let prefix = prefix.unwrap_or_default();
            let range = state.db.run(move |c| Ok(peersync_core::digest_range(c, &table, &prefix)?)).await?;
            serde_json::to_value(range)?
        }
        (None, Some(_)) => return Err(Error::BadRequest("digest: a prefix needs a table".into())),
    };
    Ok(json(StatusCode::OK, &v))
}
