//! Bounded history in the background: `serve` compacts the log (core's `compact`) every
//! `--compact-interval`, one short transaction at a time, so app writes never wait long.
use crate::db::Db;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use std::sync::Arc;
use std::time::Duration;

/// Runs until `stop` triggers: a pass every `every` (none when zero), the first one `every`
/// after start.
pub async fn run(db: Db, metrics: Arc<Metrics>, every: Duration, stop: Shutdown) {
    if every.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = pass(&db, &metrics, &stop).await {
            metrics.error("compaction");
            tracing::error!(error = %e, "compaction failed; the log is as it was before the failed step, and the next pass tries again");
        }
    }
}

/// One pass: steps until nothing more can be compacted or `stop` triggers; a pause between
/// steps lets writers in.
async fn pass(db: &Db, metrics: &Metrics, stop: &Shutdown) -> crate::error::Result<()> {
    let mut removed = 0;
    loop {
        let step = db.run(|c| Ok(peersync_core::compact(c, Some(1))?)).await?;
        removed += step.removed;
        Metrics::add(&metrics.compacted, step.removed.max(0) as u64);
        if step.done || stop.is_triggered() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if removed > 0 {
        tracing::info!(removed, "compacted the log: changes every trusted device holds and nothing here needs");
    }
    Ok(())
}
