//! The cross-device audit from the sidecar's side: this device's account (kept while its
//! vector holds), asking a peer for its own, comparing them, and narrowing a difference down
//! to records by range digests.
use crate::client::Client;
use crate::db::Db;
use crate::error::{Error, Result};
use hyper::Method;
use peersync_core::{Audit, Range};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// This device's account, reused while the vector it was taken at is still this device's and
/// it is younger than `max_age` (an account costs a pass over every tracked table).
pub struct Audits {
    cache: Mutex<Option<(Instant, Audit)>>,
    max_age: Duration,
}

impl Audits {
    pub fn new(max_age: Duration) -> Audits {
        Audits { cache: Mutex::new(None), max_age }
    }

    pub async fn current(&self, db: &Db) -> Result<Audit> {
        let cached = self.cache.lock().unwrap().clone();
        if let Some((at, a)) = cached {
            if at.elapsed() < self.max_age {
                let now = db.run(|c| Ok(peersync_core::vector(c)?)).await?;
                if now == a.vector {
                    return Ok(a);
                }
            }
        }
        let a = db.run(|c| Ok(peersync_core::audit(c)?)).await?;
        *self.cache.lock().unwrap() = Some((Instant::now(), a.clone()));
        Ok(a)
    }
}

/// Asks the peer at `url` for its account, compares it with ours and records the outcome;
/// returns the peer's device id and the outcome.
pub async fn with_peer(
    db: &Db,
    client: &Client,
    audits: &Audits,
    url: &str,
) -> Result<(String, peersync_core::Outcome)> {
    let theirs: Audit = client.call(url, Method::POST, "/sync/digest", Some(b"{}".to_vec())).await?;
    let ours = audits.current(db).await?;
    let peer = theirs.device_id.clone();
    let outcome = db.run(move |c| Ok(peersync_core::compare_audit(c, &ours, &theirs)?)).await?;
    Ok((peer, outcome))
}

/// A record that differs: its id, and its row hash here and there (None: no such row).
#[derive(Debug, Clone, PartialEq)]
pub struct Differs {
    pub record_id: String,
    pub here: Option<String>,
    pub there: Option<String>,
}

/// Most differing records a narrowing looks for.
pub const MAX_RECORDS: usize = 1000;

/// Narrows the difference in `table` between this device and the peer at `url` down to
/// records: compares range digests, descending only into the ranges that differ. Calls
/// `progress` with the number of ranges compared so far.
pub async fn narrow(
    db: &Db,
    client: &Client,
    url: &str,
    table: &str,
    progress: &dyn Fn(usize),
) -> Result<Vec<Differs>> {
    let mut todo = vec![String::new()];
    let (mut found, mut compared) = (Vec::new(), 0usize);
    while let Some(prefix) = todo.pop() {
        let (t, p) = (table.to_string(), prefix.clone());
        let ours: Range = db.run(move |c| Ok(peersync_core::digest_range(c, &t, &p)?)).await?;
        let body = serde_json::to_vec(&serde_json::json!({ "table": table, "prefix": prefix }))?;
        let theirs: Range = client.call(url, Method::POST, "/sync/digest", Some(body)).await?;
        if ours.vector != theirs.vector {
            return Err(Error::Cli(
                "the devices' changes moved while narrowing (someone wrote); run `peersync check` again".into(),
            ));
        }
        compared += 1;
        progress(compared);
        if let (Some(a), Some(b)) = (&ours.rows, &theirs.rows) {
            let ids: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for id in ids {
                if a.get(id) != b.get(id) {
                    found.push(Differs { record_id: id.clone(), here: a.get(id).cloned(), there: b.get(id).cloned() });
                }
            }
        } else {
            let subs: BTreeSet<&String> = ours.ranges.keys().chain(theirs.ranges.keys()).collect();
            todo.extend(subs.into_iter().filter(|s| ours.ranges.get(*s) != theirs.ranges.get(*s)).cloned());
        }
        if found.len() >= MAX_RECORDS {
            found.truncate(MAX_RECORDS);
            break;
        }
    }
    Ok(found)
}
