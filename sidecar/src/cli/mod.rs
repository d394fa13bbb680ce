//! The command line: every command and its options (clap derive), and dispatch to the files that run them.

/// `println!` that returns the write error instead of panicking (stdout closed early, as by
/// `peersync conflicts list | head`): `main` ends quietly on a broken pipe.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($t)*)?;
    }};
}

/// `print!` that returns the write error instead of panicking (see `outln!`).
#[allow(unused_macros)]
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($t)*)?;
    }};
}

mod check;
mod inspect;
mod invite;
mod page;
mod pair;
mod peers;
mod recover;
mod run;
mod service;
mod setup;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "peersync",
    version,
    about = "Keeps SQLite databases in sync, peer to peer, over HTTP with signed requests."
)]
#[command(
    after_help = "Pair two devices:\n  a$ peersync init --db app.db --name laptop\n  a$ peersync track --db app.db notes\n  b$ peersync init --db app.db --name phone\n  a$ peersync pair --db app.db --listen 100.64.0.1:7447 --url http://100.64.0.1:8080\n  b$ peersync pair --db app.db --url http://100.64.0.2:8080 --schema <code shown on a>\n  a$ peersync serve --db app.db --listen 100.64.0.1:8080\n  b$ peersync serve --db app.db --listen 100.64.0.2:8080"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct DbArg {
    /// The app's SQLite database file.
    #[arg(long, env = "PEERSYNC_DB", value_name = "PATH")]
    pub db: PathBuf,
}

/// `--db` of a command with subcommands: accepted before or after the subcommand
/// (`peersync conflicts list --db app.db`).
#[derive(Args, Clone)]
pub struct GlobalDbArg {
    /// The app's SQLite database file.
    /// (clap cannot make a global argument required: [`GlobalDbArg::path`] checks it is there.)
    #[arg(long, env = "PEERSYNC_DB", value_name = "PATH", global = true)]
    pub db: Option<PathBuf>,
}

impl GlobalDbArg {
    /// The `--db` given, or the error clap gives for a missing required argument.
    pub fn path(self) -> crate::error::Result<PathBuf> {
        self.db.ok_or_else(|| {
            crate::error::Error::Cli(
                "the following required argument was not provided: --db <PATH> (or $PEERSYNC_DB)".into(),
            )
        })
    }
}

#[derive(Args, Clone)]
pub struct KeyArg {
    /// This device's private key (PKCS#8 PEM, mode 0600). Default: ~/.config/peersync/<device id>.pem
    /// (or $PEERSYNC_KEY_DIR/<device id>.pem, $XDG_CONFIG_HOME/peersync/<device id>.pem).
    #[arg(long, env = "PEERSYNC_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Set up sync in a database: sync tables, device id, key pair. Prints what the other device needs to trust this one.
    Init {
        #[command(flatten)]
        db: DbArg,
        /// A name for this device (shown to the other devices).
        #[arg(long)]
        name: String,
        #[command(flatten)]
        key: KeyArg,
        /// Use the key already in the key file for this database (only if it is not another
        /// device's key); without it, an existing key file is never taken over.
        #[arg(long)]
        adopt_key: bool,
        /// This database is a copy of another device's: give it a device id and key pair of its
        /// own, keeping its data (the original's id becomes another device here). Pair it after.
        #[arg(long, conflicts_with = "adopt_key")]
        new_identity: bool,
    },
    /// Print this device's id and public key (what `peersync trust` needs on the other device).
    Id {
        #[command(flatten)]
        db: DbArg,
    },
    /// Authorize another device: its changes and requests are accepted from now on.
    Trust {
        #[command(flatten)]
        db: DbArg,
        /// The other device's id (from `peersync id` there).
        device_id: String,
        /// The other device's public key (64 hex characters, from `peersync id` there).
        public_key: String,
        /// A name for it.
        #[arg(long)]
        name: Option<String>,
        /// Only accept its requests from this address (e.g. its Tailscale IP).
        #[arg(long, value_name = "IP", conflicts_with = "no_tailscale_ip")]
        tailscale_ip: Option<String>,
        /// Accept its requests from any address again (clears --tailscale-ip).
        #[arg(long)]
        no_tailscale_ip: bool,
    },
    /// Withdraw a device's authorization: its requests and its changes (also relayed) are refused.
    Revoke {
        #[command(flatten)]
        db: DbArg,
        device_id: String,
    },
    /// Lift the quarantine of a device that sent a forked chain (after checking it), so sync with it resumes.
    Release {
        #[command(flatten)]
        db: DbArg,
        device_id: String,
    },
    /// List the devices this database knows.
    Devices {
        #[command(flatten)]
        db: DbArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start syncing a table (installs capture triggers; existing rows sync too).
    Track {
        #[command(flatten)]
        db: DbArg,
        table: String,
        /// How conflicts are settled: timestamp_wins (default), manual, local_wins, remote_wins.
        #[arg(long)]
        strategy: Option<String>,
    },
    /// Serve peers over HTTP and sync with the given peers on a timer and after local writes.
    Serve(Box<run::ServeArgs>),
    /// Serve the page for people on a loopback address: settle conflicts and watch sync in a
    /// browser. Prints a link with a one-time token.
    Ui(page::UiArgs),
    /// Sync once with one peer (push what it lacks, pull what we lack), with a progress bar on a terminal.
    Sync(run::SyncArgs),
    /// Sync with a peer, then compare both devices' rows (table digests) and list the records that differ.
    /// Exits 0 when the same, 1 when they differ, 2 when they could not be compared.
    Check(check::CheckArgs),
    /// On a device restored from an old backup: take back its own changes the peers still hold,
    /// keep what it wrote since the restore under a new identity, and end its quarantine on the peers.
    Recover(recover::RecoverArgs),
    /// Show this database's sync status: device, tables, log, conflicts, peers.
    Status {
        #[command(flatten)]
        db: DbArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List, show and resolve conflicts.
    Conflicts {
        #[command(flatten)]
        db: GlobalDbArg,
        #[command(subcommand)]
        action: Option<ConflictAction>,
    },
    /// Pair with another device by a one-time code: without CODE, show a code (and its QR code)
    /// and wait; with CODE (shown on the other device), pair with it. Both then trust and sync
    /// with each other, and the joiner learns the tracked tables.
    Pair(pair::PairArgs),
    /// The peers this device syncs with, kept in the database (a running `serve` follows changes).
    Peers {
        #[command(flatten)]
        db: GlobalDbArg,
        #[command(subcommand)]
        action: PeerAction,
    },
    /// Run `peersync serve` as a service: a systemd user unit (Linux) or a launchd agent (macOS).
    Service {
        #[command(subcommand)]
        action: service::ServiceAction,
    },
    /// Compact the log now: remove the changes every trusted device holds and nothing here
    /// needs (a running `serve` does this every --compact-interval).
    Compact {
        #[command(flatten)]
        db: DbArg,
    },
    /// Check every change's hash and chain in the log.
    Verify {
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Subcommand)]
pub enum PeerAction {
    /// Sync with the peer at URL (http://HOST:PORT) from now on.
    Add { url: String },
    /// Stop syncing with the peer at URL.
    Remove { url: String },
    /// List the configured peers and how syncing with each goes.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Find the trusted devices on the tailnet (`tailscale status --json`) and print their URLs.
    Discover {
        /// Add them as peers.
        #[arg(long)]
        add: bool,
        /// The port their `peersync serve` listens on.
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

/// A conflict's state, as `--status` takes it.
#[derive(ValueEnum, Clone, Copy)]
pub enum ConflictStatus {
    Pending,
    Resolved,
    Ignored,
}

impl ConflictStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictStatus::Pending => "pending",
            ConflictStatus::Resolved => "resolved",
            ConflictStatus::Ignored => "ignored",
        }
    }
}

#[derive(Subcommand)]
pub enum ConflictAction {
    /// List conflicts (pending ones unless --all or --status).
    List {
        /// Only the conflicts in this state.
        #[arg(long, value_enum)]
        status: Option<ConflictStatus>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show one conflict with both sides' data.
    Show { id: i64 },
    /// Settle a pending conflict: CHOICE is local, remote, ignore, or a JSON object of column values.
    Resolve { id: i64, choice: String },
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> crate::error::Result<()> {
    match cli.command {
        Command::Init { db, name, key, adopt_key, new_identity } => {
            if new_identity {
                setup::new_identity(&db.db, &name, key.key.as_deref())
            } else {
                setup::init(&db.db, &name, key.key.as_deref(), adopt_key)
            }
        }
        Command::Id { db } => setup::id(&db.db),
        Command::Trust { db, device_id, public_key, name, tailscale_ip, no_tailscale_ip } => {
            let ip = if no_tailscale_ip { Some("") } else { tailscale_ip.as_deref() };
            setup::trust(&db.db, &device_id, &public_key, name.as_deref(), ip)
        }
        Command::Revoke { db, device_id } => setup::revoke(&db.db, &device_id),
        Command::Release { db, device_id } => setup::release(&db.db, &device_id),
        Command::Devices { db, json } => setup::devices(&db.db, json),
        Command::Track { db, table, strategy } => setup::track(&db.db, &table, strategy.as_deref()),
        Command::Serve(a) => run::serve(*a),
        Command::Ui(a) => page::run(a),
        Command::Sync(a) => run::sync(a),
        Command::Check(a) => check::check(a),
        Command::Recover(a) => recover::recover(a),
        Command::Status { db, json } => inspect::status(&db.db, json),
        Command::Conflicts { db, action } => inspect::conflicts(&db.path()?, action),
        Command::Verify { db } => inspect::verify(&db.db),
        Command::Compact { db } => inspect::compact(&db.db),
        Command::Service { action } => service::run(action),
        Command::Pair(a) => pair::pair(a),
        Command::Peers { db, action } => {
            let db = db.path()?;
            match action {
                PeerAction::Add { url } => peers::add(&db, &url),
                PeerAction::Remove { url } => peers::remove(&db, &url),
                PeerAction::List { json } => peers::list(&db, json),
                PeerAction::Discover { add, port } => peers::discover(&db, add, port),
            }
        }
    }
}
