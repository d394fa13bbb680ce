//! One sync with one peer: say hello (vectors), push what it lacks, then pull what we lack, a page per request and per transaction.
use crate::client::{Client, PushReply, OLD_MAX_BODY};
use crate::coding::{self, Body};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::pages::PageSize;
use crate::pushed::record;
use crate::shutdown::Shutdown;
use ed25519_dalek::SigningKey;
use peersync_core::{Batch, Held, Standing, Vector};
use std::collections::BTreeSet;
use std::collections::VecDeque;
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
    /// Origins whose changes the peer holds back or refuses, and why (not sent again in this
    /// sync).
    pub held_there: Vec<Held>,
    /// Why pushing stopped short (the peer accepted nothing of a page and would be sent the
    /// same page again, or a change is larger than the peer takes): the sync then ends in
    /// this error, after pulling (see `sync`).
    pub stuck: Option<Error>,
    /// What the peer holds, as it said (what it holds back is not in it): what is recorded
    /// for `is_synced`, never the versions skipped for this sync.
    pub(crate) peer_vector: Vector,
}

pub struct Syncer {
    pub db: Db,
    pub client: Client,
    pub key: Arc<SigningKey>,
    pub metrics: Arc<Metrics>,
    /// Most changes per page (one request, one transaction); see [`PageSize`].
    pub page: i64,
    /// This device's audit account (see `audit.rs`).
    pub audits: Arc<crate::audit::Audits>,
}

/// How many changes the holder of `b` lacks from the holder of `a`.
fn missing(a: &Vector, b: &Vector) -> u64 {
    a.iter().map(|(d, v)| (v - b.get(d).copied().unwrap_or(0)).max(0) as u64).sum()
}

impl Syncer {
    /// Hello (exchange vectors), push what the peer lacks, pull what we lack. Stops between
    /// pages when `stop` triggers: the page in flight is finished, never cut.
    pub async fn sync(&self, url: &str, stop: &Shutdown, progress: &dyn Progress) -> Result<Report> {
        let key = self.key.clone();
        let hello = self.db.run(move |c| Ok(peersync_core::hello(c, &key)?)).await?;
        let mut reply = self.client.push(url, &hello).await?;
        progress.start(missing(&hello.vector, &reply.vector), missing(&reply.vector, &hello.vector));
        let mut report = Report { peer_device: reply.device_id.clone(), ..Report::default() };
        let peer = reply.device_id.clone();
        self.db
            .run(move |c| match peersync_core::standing(c, &peer)? {
                Standing::Trusted { .. } => Ok(()),
                Standing::Quarantined(why) | Standing::Retired(why) => Err(Error::Forbidden(why)),
                Standing::Unknown | Standing::Revoked => Err(Error::Forbidden(format!(
                    "peer device {peer} is not trusted here (revoked or never paired): none of our changes are sent to it. Remove its --peer, or `peersync trust` it again"
                ))),
            })
            .await?;
        // What the peer knows the other devices hold: this device compacts for them too.
        let (via, known) = (reply.device_id.clone(), std::mem::take(&mut reply.known));
        self.db.run(move |c| Ok(peersync_core::note_known(c, &via, &known)?)).await?;
        let mut pages = PageSize::new(self.page);
        report.peer_vector = reply.vector.clone();
        // A peer that says its body limit cuts pull replies by ours, too (older peers do not).
        let peer_max = reply.max_body.map(|m| usize::try_from(m).unwrap_or(usize::MAX));
        let theirs = match self
            .push_all(url, reply.vector.clone(), peer_max, &mut pages, &mut report, stop, progress)
            .await
        {
            // It lacks changes compacted here: it joins from this device's snapshot when it
            // pulls from here; what it holds for us is still pulled.
            Err(Error::Core(peersync_core::Error::Compacted(m))) => {
                report.stuck = Some(Error::Core(peersync_core::Error::Compacted(format!(
                    "peer {url} lacks changes compacted here; it joins from this device's snapshot when it syncs with this device ({m})"
                ))));
                reply.vector
            }
            r => r?,
        };
        let (p, v) = (report.peer_device.clone(), theirs);
        self.db.run(move |c| Ok(peersync_core::note_peer_vector(c, &p, &v)?)).await?;
        self.pull_all(url, peer_max.is_some(), &mut pages, &mut report, stop, progress).await?;
        if let Some(e) = report.stuck.take() {
            // What the peer would not take is reported as this sync's failure (status, metrics,
            // the log) and tried again after the backoff; what could be pulled was.
            return Err(e);
        }
        Metrics::add(&self.metrics.syncs, 1);
        Ok(report)
    }

    /// A page of what the holder of `since` lacks (at most `limit` changes and, but for a
    /// single change, `budget` bytes of them) and its request body, zstd-compressed when the
    /// peer takes that, made on a blocking thread.
    fn outgoing(&self, since: Vector, limit: i64, budget: u64, zstd: bool) -> PageTask {
        let (db, key) = (self.db.clone(), self.key.clone());
        tokio::spawn(async move {
            db.run(move |c| {
                // Written from the log rows into the (compressing) body; the batch kept (to
                // count the reply, name a change) has no change data: a large value is held once.
                let mut w = coding::BodyWriter::new(zstd)?;
                let batch = peersync_core::outgoing_to(c, &key, &since, limit, Some(budget), &mut w)?;
                let body = w.finish()?;
                Ok((batch, body))
            })
            .await
        })
    }

    /// Pushes pages of what the holder of `theirs` lacks; returns the peer's final vector.
    ///
    /// Two pages are kept in flight: the next page is made, for the vector the peer will
    /// hold once the pages before it apply, and sent while they are still being applied (the
    /// peer applies a push after those it builds on). Each reply says what the peer holds;
    /// when that is not what was expected (it deferred or refused something), the pages still
    /// in flight are finished and pushing goes on from the peer's word.
    #[allow(clippy::too_many_arguments)]
    async fn push_all(
        &self,
        url: &str,
        mut theirs: Vector,
        peer_max: Option<usize>,
        pages: &mut PageSize,
        report: &mut Report,
        stop: &Shutdown,
        progress: &dyn Progress,
    ) -> Result<Vector> {
        let mut resent = false;
        // The vectors of pages the peer accepted nothing of.
        let mut tried: Vec<Vector> = Vec::new();
        let mut flight: VecDeque<InFlight> = VecDeque::new();
        // What the peer will hold once every page in flight applies, and whether there is
        // more to send beyond them.
        let mut predicted = theirs.clone();
        let mut more = true;
        // The next page being made: the vector it is made for, its limit, the task.
        let mut making: Option<(Vector, i64, PageTask)> = None;
        // Recording what the peer holds (for is_synced) runs beside the pushes.
        let mut noting: Option<JoinHandle<Result<()>>> = None;
        let mut last_reply = Instant::now();
        // Pages stay within the peer's body limit (JSON bytes); a single change may fill it.
        let max = peer_max.unwrap_or(OLD_MAX_BODY);
        let budget = crate::pages::byte_budget(max);
        let zstd = self.client.sends_zstd(url);
        let whose = format!("peer {url}");
        loop {
            if stop.is_triggered() {
                self.drain(&mut flight, &mut theirs, report, progress).await;
                return Err(Error::ShuttingDown);
            }
            // A large page goes alone: nothing is made or sent beside it (memory stays a small
            // multiple of the largest change).
            while more && flight.len() < IN_FLIGHT && !flight.iter().any(|f| f.large) {
                let (made_for, asked, page) = match making.take() {
                    Some((v, asked, made)) if v == predicted => (v, asked, made),
                    _ => (predicted.clone(), pages.get(), self.outgoing(predicted.clone(), pages.get(), budget, zstd)),
                };
                let (batch, body) = finished(page).await?;
                if body.json_len > max {
                    if let [e] = &batch.changes[..] {
                        // Never sent: the peer would refuse it. The pages before it finish;
                        // the sync fails naming it (and retries after the backoff).
                        self.drain(&mut flight, &mut theirs, report, progress).await;
                        report.stuck = Some(crate::pages::change_too_large(e, body.json_len, max, &whose));
                        more = false;
                        making = None;
                        break;
                    }
                    if pages.too_large() {
                        making = None;
                        continue;
                    }
                }
                more = batch.has_more && !batch.changes.is_empty();
                if batch.changes.is_empty() {
                    break;
                }
                let mut after = made_for.clone();
                for e in &batch.changes {
                    let v = after.entry(e.device_id.to_string()).or_insert(0);
                    *v = (*v).max(e.version);
                }
                let large = body.json_len > LARGE_PAGE;
                let (client, to) = (self.client.clone(), url.to_string());
                let reply = tokio::spawn(async move { client.push_body(&to, body).await });
                flight.push_back(InFlight {
                    large,
                    batch,
                    asked,
                    made_for,
                    after: after.clone(),
                    sent_at: Instant::now(),
                    reply,
                });
                predicted = after;
                if more && !large {
                    let ahead = pages.ahead();
                    making = Some((predicted.clone(), ahead, self.outgoing(predicted.clone(), ahead, budget, zstd)));
                }
            }
            let Some(page) = flight.pop_front() else { break };
            let reply = match finished(page.reply).await {
                Err(Error::Peer { status: 413, message, .. }) if page.batch.changes.len() == 1 => {
                    self.drain(&mut flight, &mut theirs, report, progress).await;
                    let e = &page.batch.changes[0];
                    report.stuck = Some(Error::ChangeTooLarge(format!(
                        "change {}:{} (table {}) was refused by peer {url} as too large ({message}): raise --max-body on peer {url}",
                        e.device_id,
                        e.version,
                        peersync_core::shown(&e.table_name)
                    )));
                    break;
                }
                Err(Error::Peer { status: 413, .. }) if pages.too_large() => {
                    tracing::info!(
                        peer = url,
                        limit = pages.get(),
                        "peer refused a page as too large; sending smaller pages"
                    );
                    self.drain(&mut flight, &mut theirs, report, progress).await;
                    (predicted, more, making) = (theirs.clone(), true, None);
                    continue;
                }
                Err(e @ Error::Peer { status: 422, .. }) if !resent => {
                    // The peer found a change that does not hash right: seal again and resend once.
                    tracing::warn!(peer = url, error = %e, "peer refused a change; resealing and pushing again");
                    resent = true;
                    self.drain(&mut flight, &mut theirs, report, progress).await;
                    self.db.run(|c| Ok(peersync_core::seal(c)?)).await?;
                    (predicted, more, making) = (theirs.clone(), true, None);
                    continue;
                }
                Err(e) => {
                    self.drain(&mut flight, &mut theirs, report, progress).await;
                    return Err(e);
                }
                Ok(r) => r,
            };
            // The time this page took the peer, not counting the wait for the one before it.
            pages.took(page.batch.changes.len(), page.asked, page.sent_at.max(last_reply).elapsed());
            last_reply = Instant::now();
            let (nothing, deferred, n) = (reply.accepted == 0, reply.deferred, page.batch.changes.len());
            record(&page.batch, reply, &mut theirs, report, progress, &self.metrics);
            if nothing {
                // A page the peer took nothing of, made for what it holds (or for a vector an
                // earlier such page was made for): the next page would be the same. Never sent
                // again in this sync; the peer's later pages are not waited for either.
                if theirs == page.made_for || tried.contains(&theirs) {
                    self.drain(&mut flight, &mut theirs, report, progress).await;
                    report.stuck = Some(Error::Peer {
                        url: url.to_string(),
                        status: 200,
                        message: format!(
                            "accepted nothing of a page of {n} changes (deferred {deferred}); not sent again until the next attempt"
                        ),
                    });
                    break;
                }
                tried.push(page.made_for.clone());
            }
            if page.after.iter().any(|(d, v)| theirs.get(d).copied().unwrap_or(0) < *v) {
                // The peer did not take all of it (it deferred or refused some), so the pages
                // after it would not apply: finish them, go on from what the peer holds.
                self.drain(&mut flight, &mut theirs, report, progress).await;
                (predicted, more, making) = (theirs.clone(), true, None);
            }
            if let Some(h) = noting.take() {
                finished(h).await?;
            }
            if !more && flight.is_empty() {
                break; // `sync` records the final vector
            }
            let (db, p, held) = (self.db.clone(), report.peer_device.clone(), report.peer_vector.clone());
            noting =
                Some(tokio::spawn(
                    async move { db.run(move |c| Ok(peersync_core::note_peer_vector(c, &p, &held)?)).await },
                ));
        }
        if let Some(h) = noting.take() {
            finished(h).await?;
        }
        Ok(std::mem::take(&mut report.peer_vector))
    }

    /// Waits for the pages still in flight, counting what the peer took of them.
    async fn drain(
        &self,
        flight: &mut VecDeque<InFlight>,
        theirs: &mut Vector,
        report: &mut Report,
        progress: &dyn Progress,
    ) {
        while let Some(page) = flight.pop_front() {
            if let Ok(reply) = finished(page.reply).await {
                record(&page.batch, reply, theirs, report, progress, &self.metrics);
            }
        }
    }

    /// Pulls pages of what we lack, applying each in its own transaction.
    #[allow(clippy::too_many_arguments)]
    async fn pull_all(
        &self,
        url: &str,
        cuts_by_bytes: bool,
        pages: &mut PageSize,
        report: &mut Report,
        stop: &Shutdown,
        progress: &dyn Progress,
    ) -> Result<()> {
        // Origins this device holds back (no key for them yet, a clock far ahead) or refuses
        // (revoked here): not asked for again in this sync, so the rest flows.
        let mut skip: BTreeSet<String> = BTreeSet::new();
        let mut bootstrapped = false;
        loop {
            if stop.is_triggered() {
                return Err(Error::ShuttingDown);
            }
            let ours = self.db.run(|c| Ok(peersync_core::vector(c)?)).await?;
            let (asked, asked_at) = (pages.get(), Instant::now());
            let batch = match self.client.pull(url, &ours, asked, &skip, cuts_by_bytes).await {
                // A peer that cuts pages by our limit refuses only a change too large alone.
                Err(Error::Peer { status: 413, message, .. }) if cuts_by_bytes => {
                    return Err(Error::ChangeTooLarge(format!("pulling from {url}: {message}")))
                }
                Err(Error::Peer { status: 413, .. }) if pages.too_large() => continue,
                // The peer compacted changes this device lacks: join from its snapshot, once.
                Err(Error::Peer { status: 410, .. }) if !bootstrapped => {
                    let joined = self.bootstrap(url, stop).await?;
                    report.received += joined.rows;
                    bootstrapped = true;
                    continue;
                }
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
            let applied = self.db.run(move |c| Ok(peersync_core::apply(c, &batch)?)).await?;
            pages.took(n as usize, asked, asked_at.elapsed());
            report.received += applied.accepted;
            report.conflicts += applied.conflicts.len();
            Metrics::add(&self.metrics.changes_received, applied.accepted as u64);
            Metrics::add(&self.metrics.conflicts, applied.conflicts.len() as u64);
            progress.received(n);
            let newly_held = applied.held.iter().filter(|h| skip.insert(h.device_id.clone())).count()
                + applied.refused_devices.iter().filter(|d| skip.insert(d.to_string())).count();
            // (`sync_status` lists them under `waiting`.)
            for h in &applied.held {
                tracing::warn!(peer = url, origin = %h.device_id, version = h.version, reason = %h.reason, "{}", h.detail);
            }
            if !more {
                return Ok(());
            }
            if applied.accepted == 0 && newly_held == 0 {
                return Err(Error::Peer {
                    url: url.to_string(),
                    status: 200,
                    message: "sent a page with nothing new".into(),
                });
            }
        }
    }
}

impl Syncer {
    /// Records how a sync with `url` went, where `peersync status` and `/metrics` read it.
    pub async fn note(&self, url: &str, outcome: std::result::Result<&Report, &Error>) {
        let url = url.to_string();
        let (device, error, refused, held) = match outcome {
            Ok(r) => (Some(r.peer_device.clone()), None, false, r.held_there.clone()),
            Err(e) => (None, Some(e.to_string()), refuses(e), Vec::new()),
        };
        let noted = self
            .db
            .run(move |c| {
                let link = match (&device, &error) {
                    (Some(d), None) => peersync_core::Link::Ok { device: d, held: &held },
                    (_, e) => peersync_core::Link::Failed {
                        device: device.as_deref(),
                        error: e.as_deref().unwrap_or(""),
                        refused,
                    },
                };
                Ok(peersync_core::note_link(c, &url, link)?)
            })
            .await;
        if let Err(e) = noted {
            self.metrics.error(e.kind());
            tracing::warn!(error = %e, "could not record how the sync went (peersync status may be out of date)");
        }
    }

    /// Compares this device's content with the peer's at `url` (see `audit.rs`); a divergence
    /// is logged as an error and recorded for `peersync status` and `/metrics`.
    pub async fn audit(&self, url: &str) {
        match crate::audit::with_peer(&self.db, &self.client, &self.audits, url).await {
            Ok((_, peersync_core::Outcome::Diverged { tables, .. })) => {
                Metrics::add(&self.metrics.audits, 1);
                self.metrics.error("divergence");
                tracing::error!(peer = %url, tables = ?tables, "DIVERGENCE: this device and the peer hold the same changes but different rows; run `peersync check --peer {url}` to find the records");
            }
            Ok((_, peersync_core::Outcome::Same { tables, skipped })) => {
                Metrics::add(&self.metrics.audits, 1);
                tracing::debug!(peer = %url, same = ?tables, skipped = ?skipped, "audit: same content");
            }
            Ok((_, peersync_core::Outcome::NotComparable { reason })) => {
                tracing::debug!(peer = %url, reason, "audit: not comparable now");
            }
            Err(e) => {
                self.metrics.error("audit");
                tracing::warn!(peer = %url, error = %e, "audit failed");
            }
        }
    }
}

/// Whether `e` is a device refusing the other (the peer refused us, or we refused it), not a
/// network failure or a fault.
fn refuses(e: &Error) -> bool {
    match e {
        Error::Peer { status, .. } => (400..500).contains(status),
        Error::Forbidden(_) | Error::Unauthenticated(_) => true,
        Error::Core(c) => matches!(c, peersync_core::Error::Unauthorized(_) | peersync_core::Error::Fork(_)),
        _ => false,
    }
}

/// A page being made on a blocking thread: the batch and its request body.
type PageTask = JoinHandle<Result<(Batch, Body)>>;

/// Pages a push keeps in flight: one being applied by the peer, the next one arriving.
const IN_FLIGHT: usize = 2;

/// A page whose body (JSON) is larger than this is pushed alone, not beside another.
const LARGE_PAGE: usize = 16 << 20;

/// A page pushed and not answered yet.
struct InFlight {
    /// Its body is over [`LARGE_PAGE`].
    large: bool,
    batch: Batch,
    /// The most changes it was asked to hold.
    asked: i64,
    /// The vector it was made for, and the one the peer holds if it takes all of it.
    made_for: Vector,
    after: Vector,
    sent_at: Instant,
    reply: JoinHandle<Result<PushReply>>,
}

/// The outcome of a spawned task (making a page, pushing one, noting a vector).
async fn finished<T>(h: JoinHandle<Result<T>>) -> Result<T> {
    h.await.map_err(|e| Error::Internal(format!("task failed: {e}")))?
}
