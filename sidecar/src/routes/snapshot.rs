//! POST /sync/snapshot and /sync/snapshot/chunk: a trusted device that lacks changes this
//! device compacted away fetches a snapshot (core's `take_snapshot`) in chunks, resumably.
//!
//! Snapshot files live beside the database in `<db>.snapshots/` (owner-only), named by a
//! random id, and are removed [`KEEP`] after they were taken (at most two are kept). `{}` takes a new one; `{"resume":
//! id}` answers for that one if it is still kept (else a new one). A chunk is `{"id", "offset"}`
//! and answers at most [`CHUNK`] bytes of the file from `offset`, as `application/octet-stream`.
use super::{json, AppState, Reply};
use crate::error::{Error, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a snapshot file is kept for its fetcher to finish or resume.
pub const KEEP: Duration = Duration::from_secs(30 * 60);

/// The most bytes one chunk reply holds.
pub const CHUNK: u64 = 8 << 20;

/// What `POST /sync/snapshot` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub id: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    /// The source device and the vector the snapshot was taken at.
    pub device_id: String,
    pub vector: peersync_core::Vector,
    pub rows: i64,
    pub changes: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Take {
    #[serde(default)]
    resume: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Chunk {
    id: String,
    offset: u64,
}

/// One snapshot is taken at a time (they are large and read the whole database).
static TAKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn dir(db: &Path) -> PathBuf {
    let mut d = db.as_os_str().to_owned();
    d.push(".snapshots");
    PathBuf::from(d)
}

/// A snapshot id as this module makes them: 32 lowercase hex characters (never a path).
fn checked_id(id: &str) -> Result<&str> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(id)
    } else {
        Err(Error::BadRequest("snapshot: the id must be 32 lowercase hex characters".into()))
    }
}

pub async fn take(state: &Arc<AppState>, body: Bytes) -> Result<Reply> {
    let req: Take = if body.is_empty() {
        Take { resume: None }
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Error::BadRequest(format!("the snapshot body must be {{}} or {{\"resume\": id}}: {e}")))?
    };
    let dir = dir(state.db.path());
    let _one = TAKING.lock().await;
    if let Some(id) = req.resume.as_deref() {
        let id = checked_id(id)?.to_string();
        let d = dir.clone();
        if let Some(info) = tokio::task::spawn_blocking(move || read_info(&d, &id)).await.map_err(join)?? {
            return Ok(json(StatusCode::OK, &serde_json::to_value(info)?));
        }
    }
    let info = state
        .db
        .run(move |c| {
            prune(&dir)?;
            let mut raw = [0u8; 16];
            getrandom::fill(&mut raw).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
            let id = hex::encode(raw);
            let path = dir.join(format!("{id}.db"));
            let path_text =
                path.to_str().ok_or_else(|| Error::Internal("the database path is not UTF-8".into()))?.to_string();
            let snap = peersync_core::take_snapshot(c, &path_text)?;
            let (size, sha256) = hash_file(&path)?;
            let info = SnapshotInfo {
                id: id.clone(),
                size,
                sha256,
                device_id: snap.device_id,
                vector: snap.vector,
                rows: snap.rows,
                changes: snap.changes,
            };
            std::fs::write(dir.join(format!("{id}.json")), serde_json::to_vec(&info)?)?;
            Ok(info)
        })
        .await?;
    tracing::info!(id = %info.id, bytes = info.size, rows = info.rows, changes = info.changes, "took a snapshot for a device that lacks compacted changes");
    Ok(json(StatusCode::OK, &serde_json::to_value(info)?))
}

pub async fn chunk(state: &Arc<AppState>, body: Bytes) -> Result<Reply> {
    let req: Chunk = serde_json::from_slice(&body)
        .map_err(|e| Error::BadRequest(format!("the chunk body must be {{\"id\": id, \"offset\": n}}: {e}")))?;
    let id = checked_id(&req.id)?.to_string();
    let dir = dir(state.db.path());
    let most = CHUNK.min(state.limits.max_body as u64 / 2).max(1);
    let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
        let path = dir.join(format!("{id}.db"));
        let mut f = std::fs::File::open(&path).map_err(|_| {
            Error::NotFound(format!("no snapshot {id} here (kept {} min): ask for a new one", KEEP.as_secs() / 60))
        })?;
        let size = f.metadata()?.len();
        if req.offset > size {
            return Err(Error::BadRequest(format!(
                "snapshot {id} has {size} bytes; offset {} is past its end",
                req.offset
            )));
        }
        f.seek(SeekFrom::Start(req.offset))?;
        let mut buf = Vec::with_capacity(most.min(size - req.offset) as usize);
        f.take(most).read_to_end(&mut buf)?;
        Ok(buf)
    })
    .await
    .map_err(join)??;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .body(Full::new(Bytes::from(bytes)))
        .expect("valid response"))
}

fn join(e: tokio::task::JoinError) -> Error {
    Error::Internal(format!("snapshot task failed: {e}"))
}

/// The kept snapshot `id`'s description, if it is still kept.
fn read_info(dir: &Path, id: &str) -> Result<Option<SnapshotInfo>> {
    match (std::fs::read(dir.join(format!("{id}.json"))), dir.join(format!("{id}.db")).exists()) {
        (Ok(text), true) => Ok(Some(serde_json::from_slice(&text)?)),
        _ => Ok(None),
    }
}

/// Makes the directory (owner-only) and, before a new snapshot is taken there, removes the
/// snapshots older than [`KEEP`] and all but the newest of the others: at most two are ever
/// kept, however often they are asked for.
fn prune(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let mut kept = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let modified = entry.metadata()?.modified()?;
        if modified.elapsed().unwrap_or_default() > KEEP {
            let _ = std::fs::remove_file(entry.path());
        } else if entry.path().extension().is_some_and(|e| e == "db") {
            kept.push((modified, entry.path()));
        }
    }
    kept.sort();
    for (_, db) in kept.iter().rev().skip(1) {
        let _ = std::fs::remove_file(db);
        let _ = std::fs::remove_file(db.with_extension("json"));
    }
    Ok(())
}

/// The size and lowercase hex SHA-256 of the file at `path`.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, hex::encode(h.finalize())))
}
