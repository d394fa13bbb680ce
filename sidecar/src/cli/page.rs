//! `peersync ui`: the page for people on its own (without serving peers); *sync now* syncs
//! once with each configured peer.
use super::run::{identity, runtime};
use super::{DbArg, KeyArg};
use crate::audit::Audits;
use crate::client::Client;
use crate::error::Result;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::sync::Syncer;
use crate::ui::{self, SyncNow};
use clap::Args;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct UiArgs {
    #[command(flatten)]
    db: DbArg,
    #[command(flatten)]
    key: KeyArg,
    /// The page's address: loopback only (127.0.0.0/8 or [::1]); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    listen: String,
}

pub fn run(a: UiArgs) -> Result<()> {
    ui::loopback(&a.listen)?;
    let (db, me, key, _) = identity(&a.db, &a.key)?;
    let key = Arc::new(key);
    let client = Client::new(key.clone(), me, 64 << 20, Duration::from_secs(120));
    let syncer = Arc::new(Syncer {
        db: db.clone(),
        client,
        key,
        metrics: Arc::new(Metrics::default()),
        page: 10_000,
        audits: Arc::new(Audits::new(Duration::from_secs(600))),
    });
    runtime()?.block_on(async move {
        let stop = Shutdown::default();
        stop.on_signals()?;
        let (listener, state, url) = ui::bind(&a.listen, db, SyncNow::Once(syncer), stop).await?;
        announce(&url)?;
        ui::serve(listener, state).await;
        Ok(())
    })
}

/// Prints the page's URL (with its one-time token) on stdout.
pub fn announce(url: &str) -> Result<()> {
    outln!("open the page: {url}");
    outln!("(the link works once, in one browser: it becomes that browser's session)");
    use std::io::Write as _;
    std::io::stdout().flush()?;
    Ok(())
}
