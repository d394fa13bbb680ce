//! Joining by snapshot: when a peer answers a pull with 410 (it compacted changes this device
//! lacks), fetch its snapshot in chunks into `<db>.bootstrap-<id>.part`, check its SHA-256, and
//! hand it to core's `bootstrap`. A cut download resumes from the part file at the next sync.
use crate::error::{Error, Result};
use crate::routes::snapshot::{hash_file, SnapshotInfo};
use crate::shutdown::Shutdown;
use crate::sync::Syncer;
use hyper::Method;
use std::io::Write;
use std::path::{Path, PathBuf};

fn part_path(db: &Path, id: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(format!(".bootstrap-{id}.part"));
    PathBuf::from(p)
}

/// The id of a download left by an earlier attempt, if one is there.
fn left_over(db: &Path) -> Option<String> {
    let dir = db.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let prefix = format!("{}.bootstrap-", db.file_name()?.to_str()?);
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        name.strip_prefix(&prefix)?.strip_suffix(".part").map(str::to_string)
    })
}

impl Syncer {
    /// Replaces this device's tracked rows and log with a snapshot of the peer at `url`.
    pub async fn bootstrap(&self, url: &str, stop: &Shutdown) -> Result<peersync_core::Snapshot> {
        let db = self.db.path().to_path_buf();
        let resume = left_over(&db);
        let body = match &resume {
            Some(id) => serde_json::json!({ "resume": id }),
            None => serde_json::json!({}),
        };
        let info: SnapshotInfo =
            self.client.call(url, Method::POST, "/sync/snapshot", Some(serde_json::to_vec(&body)?)).await?;
        if let Some(old) = resume.filter(|id| *id != info.id) {
            let _ = std::fs::remove_file(part_path(&db, &old));
        }
        let part = part_path(&db, &info.id);
        tracing::info!(peer = url, id = %info.id, bytes = info.size, rows = info.rows, "this device lacks changes the peer compacted away: joining from its snapshot");
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&part)?;
        let mut have = file.metadata()?.len();
        if have > info.size {
            file.set_len(0)?;
            have = 0;
        }
        if have > 0 {
            tracing::info!(peer = url, id = %info.id, from = have, "resuming the snapshot download where it was cut");
        }
        while have < info.size {
            if stop.is_triggered() {
                return Err(Error::ShuttingDown);
            }
            let req = serde_json::to_vec(&serde_json::json!({ "id": info.id, "offset": have }))?;
            let chunk = self.client.request(url, Method::POST, "/sync/snapshot/chunk", Some(req)).await?;
            if chunk.is_empty() {
                return Err(Error::Peer {
                    url: url.to_string(),
                    status: 200,
                    message: format!("snapshot {} ended at {have} of {} bytes", info.id, info.size),
                });
            }
            file.write_all(&chunk)?;
            have += chunk.len() as u64;
        }
        file.sync_all()?;
        drop(file);
        let check = part.clone();
        let (size, sha) = tokio::task::spawn_blocking(move || hash_file(&check))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        if size != info.size || sha != info.sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(Error::Peer {
                url: url.to_string(),
                status: 200,
                message: format!(
                    "snapshot {} arrived altered (SHA-256 {sha}, expected {}); fetched again at the next sync",
                    info.id, info.sha256
                ),
            });
        }
        tracing::info!(peer = url, id = %info.id, bytes = info.size, "fetched the snapshot; replacing this device's tracked rows and log with it");
        let path = part.to_str().ok_or_else(|| Error::Internal("the database path is not UTF-8".into()))?.to_string();
        let done = self.db.run(move |c| Ok(peersync_core::bootstrap(c, &path)?)).await;
        let _ = std::fs::remove_file(&part);
        let done = done?;
        tracing::info!(peer = url, rows = done.rows, changes = done.changes, "joined from the peer's snapshot");
        Ok(done)
    }
}
