//! POST /sync/recover: a device restored from a backup, signing with its old key, asks what this
//! device holds of its chain (`{"probe": [versions]}`) and hands over its succession
//! (`{"succession": {...}}`): its new identity is trusted here in the old one's place.
use super::{json, AppState, Reply};
use crate::error::{Error, Result};
use bytes::Bytes;
use hyper::StatusCode;
use peersync_core::{Succession, SuccessionOutcome};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    #[serde(default)]
    pub probe: Vec<i64>,
    #[serde(default)]
    pub succession: Option<Succession>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RecoverReply {
    /// This device's id.
    pub device_id: String,
    /// What it holds of the caller's chain.
    pub probe: peersync_core::Probe,
    /// `taken` or `known` when a succession came with the request.
    pub succession: Option<String>,
}

pub async fn recover(state: &Arc<AppState>, caller: String, body: Bytes) -> Result<Reply> {
    let req: RecoverRequest = serde_json::from_slice(&body).map_err(|e| {
        Error::BadRequest(format!("the recover body must be {{\"probe\": [versions], \"succession\": {{...}}}}: {e}"))
    })?;
    if let Some(s) = &req.succession {
        if s.from != caller {
            return Err(Error::Forbidden(format!(
                "the succession is of device {}, but the request is signed by device {caller}: a device hands over only its own",
                s.from
            )));
        }
    }
    let successor = req.succession.as_ref().map(|s| s.to.clone()).unwrap_or_default();
    let (probe, outcome) = state
        .db
        .run(move |c| {
            let outcome = req.succession.as_ref().map(|s| peersync_core::take_succession(c, s)).transpose()?;
            Ok((peersync_core::probe(c, &caller, &req.probe)?, outcome))
        })
        .await?;
    let succession = match outcome {
        None => None,
        Some(SuccessionOutcome::Taken) => {
            tracing::warn!(
                "device {} was recovered from a backup: it goes on here as device {} (its quarantine, if any, ended)",
                probe.origin,
                successor
            );
            Some("taken".to_string())
        }
        Some(SuccessionOutcome::Known) => Some("known".to_string()),
        Some(SuccessionOutcome::Ignored(why)) => return Err(Error::Conflict(why)),
    };
    let reply = RecoverReply { device_id: state.device_id.clone(), probe, succession };
    Ok(json(StatusCode::OK, &serde_json::to_value(reply)?))
}
