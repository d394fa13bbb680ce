//! `peersync recover`: a device restored from an old backup asks its peers what they hold of its
//! chain, takes back its own changes they still hold, keeps what it wrote since the restore on a
//! new identity, and hands the peers its succession so they end its quarantine.
use super::run::{identity, runtime};
use super::{DbArg, KeyArg};
use crate::client::{normalize_url, Client};
use crate::error::{Error, Result};
use crate::keys;
use crate::routes::recover::{RecoverReply, RecoverRequest};
use clap::Args;
use hyper::Method;
use peersync_core::{Agreement, ChainSearch, Succession};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct RecoverArgs {
    #[command(flatten)]
    db: DbArg,
    #[command(flatten)]
    key: KeyArg,
    /// A peer to ask (http://HOST:PORT; repeatable). Default: every peer this database syncs
    /// with (`peersync peers list`).
    #[arg(long = "peer", value_name = "URL")]
    peers: Vec<String>,
    /// The new identity's name (default: this device's name).
    #[arg(long)]
    name: Option<String>,
    /// Recover even when no peer holds a change of this device that this copy lacks (it does
    /// not look restored from a backup).
    #[arg(long)]
    force: bool,
    /// Give up on a peer's reply after this many seconds.
    #[arg(long, default_value = "30", value_parser = super::run::secs, value_name = "SECS")]
    request_timeout: Duration,
}

pub fn recover(a: RecoverArgs) -> Result<()> {
    if let Some(who) = crate::serving::who(&a.db.db) {
        return Err(Error::Cli(format!(
            "a sidecar serves this database now ({who}); stop it, run `peersync recover`, then start it again"
        )));
    }
    let (db, me, old_key, old_key_path) = identity(&a.db, &a.key)?;
    let conn = crate::db::open(db.path(), false)?;
    let urls = match a.peers.is_empty() {
        false => a.peers.iter().map(|u| normalize_url(u)).collect::<Result<Vec<_>>>()?,
        true => peersync_core::configured_peers(&conn)?.into_iter().map(|p| p.url).collect(),
    };
    if urls.is_empty() {
        return Err(Error::Cli(
            "no peer to ask: pass --peer http://HOST:PORT (a device that holds this one's changes), or add peers with `peersync peers add`".into(),
        ));
    }
    let pending = peersync_core::pending_recovery(&conn)?;
    let head = peersync_core::vector(&conn)?.get(&me).copied().unwrap_or(0);
    let client = Client::new(Arc::new(old_key.clone()), me.clone(), 16 << 20, a.request_timeout);
    let rt = runtime()?;

    // 1. What does each peer hold of this device's chain?
    let mut reached: Vec<(String, Agreement)> = Vec::new();
    for url in &urls {
        eprint!("asking {url} what it holds of this device's changes… ");
        match rt.block_on(search(&client, &conn, &me, head, url)) {
            Ok(found) => {
                eprintln!("it holds {} alike{}", found.agreed, held_more(&found));
                reached.push((url.clone(), found));
            }
            Err(e) => eprintln!("could not ask: {e}"),
        }
    }
    if reached.is_empty() {
        return Err(Error::Cli(
            "no peer could be reached, so nothing was changed: run `peersync recover` again when one is".into(),
        ));
    }
    let found: Vec<Agreement> = reached.iter().map(|(_, f)| *f).collect();
    if pending.is_none() && !peersync_core::restored(&found) && !a.force {
        return Err(Error::Cli(format!(
            "no peer holds a change of this device that this copy lacks: it does not look restored from a backup, so nothing was changed. A copy beside a living original takes `peersync init --new-identity` instead; pass --force to recover anyway (this device's {} change(s) not confirmed by a peer move to a new identity)",
            head - peersync_core::keep_through(&found)
        )));
    }
    let keep = peersync_core::keep_through(&found);

    // 2. The new identity: made once, kept until this database takes it up.
    let own = peersync_core::device(&conn, &me)?.ok_or_else(|| Error::Cli("this device's row is missing".into()))?;
    let (succession, new_key_path) = match pending {
        Some(s) => {
            let path = keys::resolve(None, &s.to)?;
            keys::load_for(&path, Some(&s.public_key))?;
            (s, path)
        }
        None => {
            let new_key = keys::generate()?;
            let mut seed = [0u8; 16];
            getrandom::fill(&mut seed).map_err(|e| Error::Key(format!("no randomness: {e}")))?;
            let new_id = hex::encode(seed);
            let path = keys::resolve(None, &new_id)?;
            keys::write_new(&path, &new_key)?;
            let name = a.name.clone().or(own.device_name.clone()).unwrap_or_default();
            let s = Succession::new(&old_key, &me, &new_id, &keys::public_hex(&new_key), &name);
            peersync_core::set_pending_recovery(&conn, &s)?;
            (s, path)
        }
    };

    // 3. The peers reached take up the succession (the others learn it from the new chain).
    let mut taken = Vec::new();
    for (url, _) in &reached {
        let body = serde_json::to_vec(&RecoverRequest { probe: Vec::new(), succession: Some(succession.clone()) })?;
        match rt.block_on(client.call::<RecoverReply>(url, Method::POST, "/sync/recover", Some(body))) {
            Ok(_) => taken.push(url.clone()),
            Err(e @ Error::Peer { status: 409, .. }) => {
                return Err(Error::Cli(format!("{e}; nothing was changed here")));
            }
            Err(e) => eprintln!("{url} did not take the new identity now ({e}); it learns it at its next sync"),
        }
    }
    if taken.is_empty() {
        return Err(Error::Cli(
            "no peer took the new identity, so nothing was changed here: run `peersync recover` again".into(),
        ));
    }

    // 4. This database becomes the new identity.
    let done = peersync_core::recover(&conn, &succession, keep)?;
    crate::instance::note(&conn, db.path(), &new_key_path);
    report(&done, &reached, &taken, &old_key_path, &new_key_path)
}

/// Searches what the peer at `url` holds of this device's chain of `head` versions.
async fn search(client: &Client, conn: &rusqlite::Connection, me: &str, head: i64, url: &str) -> Result<Agreement> {
    let mut s = ChainSearch::new(head);
    while !s.done() {
        let probe = s.probes();
        let local = peersync_core::probe(conn, me, &probe)?;
        let body = serde_json::to_vec(&RecoverRequest { probe, succession: None })?;
        let reply: RecoverReply = client.call(url, Method::POST, "/sync/recover", Some(body)).await?;
        s.answer(&local, &reply.probe);
    }
    Ok(s.result())
}

fn held_more(a: &Agreement) -> String {
    match (a.forked_at, a.peer_head > a.agreed) {
        (Some(v), _) => format!(", and other changes from version {v} on (up to {}): a fork", a.peer_head),
        (None, true) => format!(", and more this copy lacks (up to {})", a.peer_head),
        (None, false) => String::new(),
    }
}

fn report(
    done: &peersync_core::Recovered,
    reached: &[(String, Agreement)],
    taken: &[String],
    old_key: &Path,
    new_key: &Path,
) -> Result<()> {
    let most = reached.iter().map(|(_, a)| a.peer_head).max().unwrap_or(0);
    outln!("recovered: this database is now device {} (it was {}).", done.new_id, done.old_id);
    outln!("key file:   {}", new_key.display());
    outln!("kept:       versions 1 to {} of {}'s changes, which the peers hold alike", done.kept_through, done.old_id);
    outln!("moved:      {} change(s) written since the restore, now the new device's own", done.moved);
    if most > done.kept_through {
        outln!(
            "coming:    {} change(s) of {} that the peers hold come back at the next sync",
            most - done.kept_through,
            done.old_id
        );
    }
    outln!("taken up:   {} (the others learn it at their next sync with any device that has)", taken.join(", "));
    for d in &done.released {
        outln!("released:   device {d}, quarantined here for sending back this device's own changes");
    }
    outln!(
        "The old key file {} is no longer used; delete it once this device has synced. Start the sidecar again: `peersync serve`.",
        old_key.display()
    );
    Ok(())
}
