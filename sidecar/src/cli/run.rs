//! Commands that talk to peers: serve (HTTP server + scheduled syncs) and sync (one sync with a progress bar).
use super::{DbArg, KeyArg};
use crate::audit::Audits;
use crate::auth::{self, Gate, Server};
use crate::client::{normalize_url, Client};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys;
use crate::metrics::Metrics;
use crate::nonces::NonceCache;
use crate::routes::{AppState, Limits, DEFAULT_MAX_BODY};
use crate::scheduler::{self, Schedule};
use crate::server::{self, ServerLimits};
use crate::shutdown::Shutdown;
use crate::sync::{Progress, Syncer};
use clap::Args;
use ed25519_dalek::SigningKey;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(super) fn secs(s: &str) -> std::result::Result<Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("\"{s}\" is not a number of seconds"))?;
    if !(0.0..=1e7).contains(&v) {
        return Err(format!("{v} seconds is out of range"));
    }
    Ok(Duration::from_secs_f64(v))
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    db: DbArg,
    #[command(flatten)]
    key: KeyArg,
    /// Address to serve peers on (a Tailscale address such as 100.x.y.z:8080 on a tailnet).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: String,
    /// A peer to sync with during this run only (http://HOST:PORT); repeat for several. The
    /// peers kept in the database (`peersync peers`, pairing) are synced with too, and
    /// followed as they are added and removed (re-read every 2 s).
    #[arg(long = "peer", value_name = "URL")]
    peers: Vec<String>,
    /// Sync with every peer at least this often, in seconds (also soon after local writes).
    #[arg(long, default_value = "300", value_parser = secs, value_name = "SECS")]
    interval: Duration,
    /// Most changes per page (one request, one write transaction). Pages start at 500 and
    /// grow while a page takes under 250 ms, shrink when one takes over 1 s.
    #[arg(long, default_value_t = 10_000)]
    page: i64,
    /// Largest request (and reply) body accepted, in bytes, as sent and once decoded (zstd);
    /// larger gets 413. Peers are told it and cut their pages to fit; one change larger than
    /// it cannot be sent here.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY, value_name = "BYTES")]
    max_body: usize,
    /// A client must send its request headers within this many seconds.
    #[arg(long, default_value = "10", value_parser = secs, value_name = "SECS")]
    header_timeout: Duration,
    /// A client must send its whole body within this many seconds (408 otherwise).
    #[arg(long, default_value = "60", value_parser = secs, value_name = "SECS")]
    body_timeout: Duration,
    /// Most connections served at once. When all are taken, the oldest connection that has not
    /// yet carried a signed request from a trusted device is closed to make room.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// Most connections from one source address at once (a new one past it closes that
    /// source's oldest connection that has not yet carried a trusted device's signed request).
    #[arg(long, default_value_t = 64)]
    max_connections_per_source: usize,
    /// Compare this device's content with each peer's (digests of every tracked table, a pass
    /// over each) after a sync, at most this often, in seconds.
    #[arg(long, default_value = "600", value_parser = secs, value_name = "SECS")]
    audit_interval: Duration,
    /// Compact the log this often, in seconds (0: never): remove the changes every trusted
    /// device holds and nothing here needs (see README "Bounded history").
    #[arg(long, default_value = "300", value_parser = secs, value_name = "SECS")]
    compact_interval: Duration,
    /// How often to look for local writes, in seconds.
    #[arg(long, default_value = "0.02", value_parser = secs, value_name = "SECS")]
    poll: Duration,
    /// First retry delay after a failed sync, in seconds (doubles per failure, with jitter).
    #[arg(long, default_value = "1", value_parser = secs, value_name = "SECS")]
    retry_base: Duration,
    /// Longest retry delay, in seconds.
    #[arg(long, default_value = "300", value_parser = secs, value_name = "SECS")]
    retry_max: Duration,
    /// Give up on a peer's reply after this many seconds.
    #[arg(long, default_value = "120", value_parser = secs, value_name = "SECS")]
    request_timeout: Duration,
    /// Another name peers reach this server by (`host` or `host:port`, e.g. a MagicDNS name);
    /// repeat for several. Signed requests must name this server: its --listen address (and
    /// `localhost` for a loopback one) or one of these.
    #[arg(long = "authority", value_name = "NAME")]
    authorities: Vec<String>,
    /// How far ahead of this device's clock a received change may be stamped, in seconds
    /// (default 86400, a day); later ones wait. Kept in the database.
    #[arg(long, value_parser = secs, value_name = "SECS")]
    max_clock_skew: Option<Duration>,
    /// Each device's changes this device takes at once, in MiB (default 256); past it, that
    /// device's changes wait while the allowance grows back (a single larger change is taken
    /// once the allowance is full). Kept in the database.
    #[arg(long, value_name = "MIB", requires = "origin_mib_per_hour")]
    origin_burst_mib: Option<f64>,
    /// How fast each device's allowance grows back, in MiB per hour (default 512).
    #[arg(long, value_name = "MIB", requires = "origin_burst_mib")]
    origin_mib_per_hour: Option<f64>,
    /// Also serve the page for people (see `peersync ui`) on this loopback address (default
    /// 127.0.0.1:0, a free port); prints a link with a one-time token on stdout.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:0")]
    ui: Option<String>,
}

#[derive(Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub db: DbArg,
    #[command(flatten)]
    pub key: KeyArg,
    /// The peer to sync with (http://HOST:PORT).
    #[arg(long, value_name = "URL")]
    pub peer: String,
    /// Most changes per page (see `serve --help`).
    #[arg(long, default_value_t = 10_000)]
    pub page: i64,
    /// Give up on a peer's reply after this many seconds.
    #[arg(long, default_value = "120", value_parser = secs, value_name = "SECS")]
    pub request_timeout: Duration,
    /// Largest reply body accepted from the peer, in bytes (see `serve --help`); pull replies
    /// are cut to fit.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY, value_name = "BYTES")]
    pub max_body: usize,
}

/// Opens the database and this device's key, checked against each other.
/// The database, this device's id, its key, and the key file's path.
pub(super) fn identity(db: &DbArg, key: &KeyArg) -> Result<(Db, String, SigningKey, PathBuf)> {
    let db = Db::new(&db.db)?;
    let conn = crate::db::open(db.path(), false)?;
    let me = peersync_core::device_id(&conn)?;
    let row = peersync_core::device(&conn, &me)?
        .ok_or_else(|| Error::Cli("this device's row is missing from sync_devices".into()))?;
    let path = keys::resolve(key.key.as_deref(), &me)?;
    crate::instance::check(&conn, db.path(), &path)?;
    let signing = keys::load_for(&path, row.public_key.as_deref())?;
    crate::instance::note(&conn, db.path(), &path);
    Ok((db, me, signing, path))
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

pub fn serve(a: ServeArgs) -> Result<()> {
    if let Some(addr) = &a.ui {
        crate::ui::loopback(addr)?;
    }
    let (db, me, key, key_path) = identity(&a.db, &a.key)?;
    let _serving = crate::serving::claim(db.path(), &a.listen)?;
    let peers = a.peers.iter().map(|p| normalize_url(p)).collect::<Result<Vec<_>>>()?;
    {
        let conn = crate::db::open(db.path(), false)?;
        if let Some(skew) = a.max_clock_skew {
            peersync_core::set_max_clock_skew(&conn, skew.as_secs() as i64)?;
        }
        if let (Some(burst), Some(rate)) = (a.origin_burst_mib, a.origin_mib_per_hour) {
            peersync_core::set_origin_quota(&conn, burst * 1048576.0, rate * 1048576.0)?;
        }
    }
    let mut nonce_file = key_path.into_os_string();
    nonce_file.push(".nonces");
    let nonces = NonceCache::open(Path::new(&nonce_file), auth::now_secs())?;
    if a.page < 1 {
        return Err(Error::Cli("--page must be at least 1".into()));
    }
    if a.max_body < 1024 {
        return Err(Error::Cli("--max-body must be at least 1024 bytes".into()));
    }
    let key = Arc::new(key);
    let metrics = Arc::new(Metrics::default());
    let audits = Arc::new(Audits::new(a.audit_interval));
    let rt = runtime()?;
    rt.block_on(async move {
        let shutdown = Shutdown::default();
        shutdown.on_signals()?;
        let listener = tokio::net::TcpListener::bind(&a.listen).await.map_err(|e| {
            Error::Cli(format!("cannot listen on {}: {e} (in use, or not an address of this machine?)", a.listen))
        })?;
        let server = Server::new(&me, listener.local_addr()?, &a.authorities);
        if listener.local_addr()?.ip().is_unspecified() && a.authorities.is_empty() {
            tracing::warn!(listen = %a.listen, "serving every address with no --authority: signed requests naming any host on this port are accepted; give --authority NAME to bind signatures to this server's names");
        }
        let state = Arc::new(AppState {
            db: db.clone(),
            device_id: me.clone(),
            key: key.clone(),
            metrics: metrics.clone(),
            gate: Gate { server, nonces: Mutex::new(nonces) },
            limits: Limits { max_body: a.max_body, body_timeout: a.body_timeout },
            listen: a.listen.clone(),
            pushes: Default::default(),
            audits: audits.clone(),
        });
        let client = Client::new(key.clone(), me.clone(), a.max_body, a.request_timeout);
        let compactor = crate::compactor::run(db.clone(), metrics.clone(), a.compact_interval, shutdown.clone());
        let syncer = Arc::new(Syncer { db, client, key, metrics, page: a.page, audits });
        let schedule = Schedule {
            interval: a.interval,
            poll: a.poll,
            debounce: Duration::from_millis(5),
            audit_every: a.audit_interval,
            backoff_base: a.retry_base,
            backoff_max: a.retry_max,
        };
        tracing::info!(device = %me, listen = %a.listen, peers = ?peers, "peersync serving");
        let wake = scheduler::Wake::default();
        let mut tasks = scheduler::start(syncer, peers, schedule, wake.clone(), shutdown.clone());
        tasks.push(tokio::spawn(compactor));
        if let Some(addr) = &a.ui {
            let (listener, page, url) =
                crate::ui::bind(addr, state.db.clone(), crate::ui::SyncNow::Wake(wake), shutdown.clone()).await?;
            tracing::info!(page = %page_addr(&url), "serving the page for people");
            super::page::announce(&url)?;
            tasks.push(tokio::spawn(crate::ui::serve(listener, page)));
        }
        let limits = ServerLimits {
            max_connections: a.max_connections.max(1),
            per_source: a.max_connections_per_source.max(1),
            header_timeout: a.header_timeout,
            grace: Duration::from_secs(30),
        };
        server::serve(listener, state, limits, shutdown.clone()).await;
        for t in tasks {
            let _ = t.await;
        }
        tracing::info!("stopped");
        Ok(())
    })
}

/// The page's URL without its token (for the log).
fn page_addr(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, to_send: u64, to_receive: u64) {
        self.0.set_length(to_send + to_receive);
        self.0.set_message(format!("{to_send} to send, {to_receive} to receive"));
    }
    fn sent(&self, n: u64) {
        self.0.inc(n);
    }
    fn received(&self, n: u64) {
        self.0.inc(n);
    }
}

pub fn sync(a: SyncArgs) -> Result<()> {
    let (db, me, key, _) = identity(&a.db, &a.key)?;
    let url = normalize_url(&a.peer)?;
    if a.page < 1 {
        return Err(Error::Cli("--page must be at least 1".into()));
    }
    let key = Arc::new(key);
    let metrics = Arc::new(Metrics::default());
    if a.max_body < 1024 {
        return Err(Error::Cli("--max-body must be at least 1024 bytes".into()));
    }
    let client = Client::new(key.clone(), me, a.max_body, a.request_timeout);
    let audits = Arc::new(Audits::new(Duration::ZERO));
    let syncer = Syncer { db, client, key, metrics, page: a.page, audits };
    let bar = ProgressBar::with_draw_target(
        Some(0),
        if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
    );
    let style = ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} changes  {msg}")
        .map_err(|e| Error::Internal(e.to_string()))?;
    bar.set_style(style.progress_chars("=> "));
    let bar = Bar(bar);
    let rt = runtime()?;
    let report = rt.block_on(async {
        let shutdown = Shutdown::default();
        shutdown.on_signals()?;
        let r = syncer.sync(&url, &shutdown, &bar).await;
        syncer.note(&url, r.as_ref()).await;
        r
    });
    bar.0.finish_and_clear();
    let r = report.map_err(|e| Error::Cli(format!("sync with {url} failed: {e}")))?;
    outln!(
        "synced with {} ({}): sent {}, received {}, conflicts {}",
        url,
        r.peer_device,
        r.sent,
        r.received,
        r.conflicts
    );
    Ok(())
}
