//! `peersync check --peer URL`: sync, compare this device's content with the peer's, and
//! narrow any difference down to records. Exits 0 (same), 1 (diverged) or 2 (could not compare).
use super::run::{identity, runtime, SyncArgs};
use crate::audit::{self, Audits};
use crate::client::{normalize_url, Client};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::sync::Syncer;
use clap::Args;
use peersync_core::Outcome;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    sync: SyncArgs,
    /// Compare without syncing first (the devices must already hold the same changes).
    #[arg(long)]
    no_sync: bool,
}

/// Exit status of a check that could not compare the devices.
const CANNOT: u8 = 2;

pub fn check(a: CheckArgs) -> Result<()> {
    let cannot = |e: Error| Error::Exit(CANNOT, e.to_string());
    let (db, me, key, _) = identity(&a.sync.db, &a.sync.key).map_err(cannot)?;
    let url = normalize_url(&a.sync.peer).map_err(cannot)?;
    let key = Arc::new(key);
    let client = Client::new(key.clone(), me, a.sync.max_body, a.sync.request_timeout);
    let syncer = Syncer {
        db,
        client,
        key,
        metrics: Arc::new(Metrics::default()),
        page: a.sync.page,
        audits: Arc::new(Audits::new(Duration::ZERO)),
    };
    runtime()?.block_on(async {
        if !a.no_sync {
            let stop = Shutdown::default();
            let r = syncer.sync(&url, &stop, &()).await;
            syncer.note(&url, r.as_ref()).await;
            let r = r.map_err(|e| Error::Exit(CANNOT, format!("sync with {url} failed: {e}")))?;
            eprintln!("synced with {url} ({}): sent {}, received {}", r.peer_device, r.sent, r.received);
        }
        let (peer, outcome) =
            audit::with_peer(&syncer.db, &syncer.client, &syncer.audits, &url).await.map_err(cannot)?;
        match outcome {
            Outcome::Same { tables, skipped } => {
                outln!("same: {} table(s) hold the same rows here and at {url}: {}", tables.len(), tables.join(", "));
                for t in skipped {
                    outln!("not compared: {t} (a conflict waits for a person, or it is not tracked on both)");
                }
                Ok(())
            }
            Outcome::NotComparable { reason } => Err(Error::Exit(CANNOT, format!("cannot compare with {url}: {reason}"))),
            Outcome::Diverged { tables, .. } => {
                let mut total = 0;
                for t in &tables {
                    let progress = |n: usize| eprint!("\rnarrowing {t}: {n} range(s) compared");
                    let found = audit::narrow(&syncer.db, &syncer.client, &url, t, &progress).await.map_err(cannot)?;
                    eprintln!();
                    outln!("DIVERGED: table {t}: {} record(s) differ:", found.len());
                    for d in &found {
                        let side = |h: &Option<String>| h.as_deref().map_or("no row".to_string(), |h| format!("row {}", &h[..12]));
                        outln!("  {}  here: {}  there: {}", d.record_id, side(&d.here), side(&d.there));
                    }
                    let (peer, table) = (peer.clone(), t.clone());
                    let ids: Vec<String> = found.iter().map(|d| d.record_id.clone()).collect();
                    syncer
                        .db
                        .run(move |c| Ok(peersync_core::note_divergent_records(c, &peer, &table, &ids)?))
                        .await?;
                    total += found.len();
                }
                Err(Error::Exit(
                    1,
                    format!(
                        "this device and {url} hold the same changes but {total} record(s) in {} differ. Look at both sides' rows; \
                         to settle one, write the right values on either device (the write syncs)",
                        tables.join(", ")
                    ),
                ))
            }
        }
    })
}
