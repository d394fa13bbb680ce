//! One sync with one peer: say hello (vectors), push what it lacks, then pull what we lack, a page per request and per transaction.
use crate::client::Client;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::outbox;
use crate::pages::PageSize;
use crate::shutdown::Shutdown;
use ed25519_dalek::SigningKey;
use peersync_core::{Batch, Vector};
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinHandle;

/// Where a sync is, for a progress bar.
pub trait Progress: Send + Sync {
    fn start(&self, _to_send: u64, _to_receive: u64) {}
    fn sent(&self, _n: u64) {}
    fn received(&self, _n: u64) {}
}
impl Progress for () {}

#[derive(Debug, Default)]
pub struct Report {
    pub peer_device: String,
    pub sent: i64,
    pub received: i64,
    pub conflicts: usize,
}

pub struct Syncer {
    pub db: Db,
    pub client: Client,
    pub key: Arc<SigningKey>,
    pub metrics: Arc<Metrics>,
    /// Most changes per page (one request, one transaction); see [`PageSize`].
    pub page: i64,
}

/// How many changes the holder of `b` lacks from the holder of `a`.
fn missing(a: &Vector, b: &Vector) -> u64 {
    a.iter()
        .map(|(d, v)| (v - b.get(d).copied().unwrap_or(0)).max(0) as u64)
        .sum()
}

impl Syncer {
    /// Hello (exchange vectors), push what the peer lacks, pull what we lack. Stops between
    /// pages when `stop` triggers: the page in flight is finished, never cut.
    pub async fn sync(
        &self,
        url: &str,
        stop: &Shutdown,
        progress: &dyn Progress,
    ) -> Result<Report> {
        let hello = self.db.run(outbox::hello).await?;
        let reply = self.client.push(url, &hello).await?;
        progress.start(
            missing(&hello.vector, &reply.vector),
            missing(&reply.vector, &hello.vector),
        );
        let mut report = Report {
            peer_device: reply.device_id.clone(),
            ..Report::default()
        };
        let peer = reply.device_id.clone();
        self.db
            .run(move |c| {
                match peersync_core::devices::get(c, &peer)? {
                    Some(d) if d.is_authorized => {}
                    _ => {
                        return Err(Error::Forbidden(format!(
                            "peer device {peer} is not trusted here (revoked or never paired): none of our changes are sent to it. Remove its --peer, or `peersync trust` it again"
                        )))
                    }
                }
                Ok(peersync_core::quarantine::check_sender(c, &peer)?)
            })
            .await?;
        let mut pages = PageSize::new(self.page);
        let theirs = self
            .push_all(url, reply.vector, &mut pages, &mut report, stop, progress)
            .await?;
        let (p, v) = (report.peer_device.clone(), theirs);
        self.db.run(move |c| note_vector(c, &p, &v)).await?;
        self.pull_all(url, &mut pages, &mut report, stop, progress)
            .await?;
        Metrics::add(&self.metrics.syncs, 1);
        Ok(report)
    }

    /// A page of what the holder of `since` lacks and its request body, made on a blocking thread.
    fn outgoing(&self, since: Vector, limit: i64) -> JoinHandle<Result<(Batch, Vec<u8>)>> {
        let (db, key) = (self.db.clone(), self.key.clone());
        tokio::spawn(async move {
            db.run(move |c| {
                let batch = outbox::outgoing(c, &key, &since, limit)?;
                let body = serde_json::to_vec(&batch)?;
                Ok((batch, body))
            })
            .await
        })
    }

    /// Pushes pages of what the holder of `theirs` lacks; returns the peer's final vector.
    /// While a page is in flight the next one is made, for the vector the peer will have if
    /// it takes the whole page; it is used only if the peer's reply says exactly that.
    async fn push_all(
        &self,
        url: &str,
        mut theirs: Vector,
        pages: &mut PageSize,
        report: &mut Report,
        stop: &Shutdown,
        progress: &dyn Progress,
    ) -> Result<Vector> {
        let mut resent = false;
        // The next page: the vector it was made for, the limit it was made with, the task.
        let mut next: Option<(Vector, i64, JoinHandle<Result<(Batch, Vec<u8>)>>)> = None;
        // Recording what the peer holds (for is_synced) runs beside the next push.
        let mut noting: Option<JoinHandle<Result<()>>> = None;
        loop {
            if stop.is_triggered() {
                return Err(Error::ShuttingDown);
            }
            let (asked, page) = match next.take() {
                Some((predicted, asked, made)) if predicted == theirs => (asked, made),
                _ => (pages.get(), self.outgoing(theirs.clone(), pages.get())),
            };
            let (batch, body) = finished(page).await?;
            if batch.changes.is_empty() {
                break;
            }
            if batch.has_more {
                let mut predicted = theirs.clone();
                for e in &batch.changes {
                    let v = predicted.entry(e.device_id.clone()).or_insert(0);
                    *v = (*v).max(e.version);
                }
                next = Some((predicted.clone(), pages.get(), self.outgoing(predicted, pages.get())));
            }
            let sent_at = Instant::now();
            let reply = match self.client.push_body(url, body).await {
                Err(Error::Peer { status: 413, .. }) if pages.too_large() => {
                    next = None;
                    tracing::info!(
                        peer = url,
                        limit = pages.get(),
                        "peer refused a page as too large; sending smaller pages"
                    );
                    continue;
                }
                Err(e @ Error::Peer { status: 422, .. }) if !resent => {
                    // The peer found a change that does not hash right: seal again and resend once.
                    tracing::warn!(peer = url, error = %e, "peer refused a change; resealing and pushing again");
                    resent = true;
                    next = None;
                    self.db.run(|c| Ok(peersync_core::seal(c)?)).await?;
                    continue;
                }
                r => r?,
            };
            pages.took(batch.changes.len(), asked, sent_at.elapsed());
            report.sent += reply.accepted;
            report.conflicts += reply.conflicts.len();
            Metrics::add(&self.metrics.changes_sent, reply.accepted as u64);
            progress.sent(batch.changes.len() as u64);
            if reply.accepted == 0 && reply.refused == 0 && reply.vector == theirs {
                let message = format!(
                    "accepted nothing of a page of {} changes (deferred {})",
                    batch.changes.len(),
                    reply.deferred
                );
                return Err(Error::Peer {
                    url: url.to_string(),
                    status: 200,
                    message,
                });
            }
            theirs = reply.vector;
            // The peer revoked these devices: their changes stay here, not sent to it again.
            for dev in &reply.refused_devices {
                if let Some(&v) = batch.vector.get(dev) {
                    theirs.insert(dev.clone(), v);
                }
            }
            if let Some(h) = noting.take() {
                finished(h).await?;
            }
            if !batch.has_more {
                break; // `sync` records the final vector
            }
            let (db, p, held) = (self.db.clone(), report.peer_device.clone(), theirs.clone());
            noting = Some(tokio::spawn(async move { db.run(move |c| note_vector(c, &p, &held)).await }));
        }
        if let Some(h) = noting.take() {
            finished(h).await?;
        }
        Ok(theirs)
    }

    /// Pulls pages of what we lack, applying each in its own transaction.
    async fn pull_all(
        &self,
        url: &str,
        pages: &mut PageSize,
        report: &mut Report,
        stop: &Shutdown,
        progress: &dyn Progress,
    ) -> Result<()> {
        loop {
            if stop.is_triggered() {
                return Err(Error::ShuttingDown);
            }
            let ours = self.db.run(|c| Ok(peersync_core::vector(c)?)).await?;
            let (asked, asked_at) = (pages.get(), Instant::now());
            let batch = match self.client.pull(url, &ours, asked).await {
                Err(Error::Peer { status: 413, .. }) if pages.too_large() => continue,
                r => r?,
            };
            if batch.device_id != report.peer_device {
                return Err(Error::Peer {
                    url: url.to_string(),
                    status: 200,
                    message: "answered as another device".into(),
                });
            }
            let (n, more) = (batch.changes.len() as u64, batch.has_more);
            if n == 0 {
                return Ok(());
            }
            let applied = self
                .db
                .run(move |c| Ok(peersync_core::apply(c, &batch)?))
                .await?;
            pages.took(n as usize, asked, asked_at.elapsed());
            report.received += applied.accepted;
            report.conflicts += applied.conflicts.len();
            Metrics::add(&self.metrics.changes_received, applied.accepted as u64);
            Metrics::add(&self.metrics.conflicts, applied.conflicts.len() as u64);
            progress.received(n);
            if !more {
                return Ok(());
            }
            if applied.accepted == 0 {
                return Err(Error::Peer {
                    url: url.to_string(),
                    status: 200,
                    message: "sent a page with nothing new".into(),
                });
            }
        }
    }
}

/// The outcome of a spawned database task.
async fn finished<T>(h: JoinHandle<Result<T>>) -> Result<T> {
    h.await.map_err(|e| Error::Internal(format!("database task failed: {e}")))?
}

/// Records what `peer` holds (core marks `is_synced` from it), in one short transaction.
pub fn note_vector(c: &rusqlite::Connection, peer: &str, v: &Vector) -> Result<()> {
    Ok(peersync_core::tx::write(c, |c| {
        peersync_core::peers::note_vector(c, peer, v)
    })?)
}
