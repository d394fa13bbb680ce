//! Commands that set a database up: init (identity and key pair), id, trust, revoke, devices, track.
use crate::db;
use crate::error::{Error, Result};
use crate::instance;
use crate::keys;
use std::path::Path;

fn own_row(conn: &rusqlite::Connection) -> Result<peersync_core::Device> {
    let me = peersync_core::device_id(conn).map_err(|_| {
        Error::Cli("this database is not set up for sync; run `peersync init --db PATH --name NAME` first".into())
    })?;
    peersync_core::device(conn, &me)?
        .ok_or_else(|| Error::Cli("this device's own row is missing from sync_devices".into()))
}

fn print_pairing(db: &Path, d: &peersync_core::Device) -> Result<()> {
    let pk = d.public_key.as_deref().unwrap_or("(none yet: run `peersync init`)");
    outln!("device id:  {}", d.device_id);
    outln!("public key: {pk}");
    if let Some(n) = &d.device_name {
        outln!("name:       {n}");
    }
    outln!();
    outln!("On the other device, run:");
    outln!(
        "  peersync trust --db {} {} {pk} --name {}",
        db.file_name().map(|f| f.to_string_lossy()).unwrap_or_default(),
        d.device_id,
        d.device_name.as_deref().unwrap_or("NAME")
    );
    outln!("or pair by a one-time code: `peersync pair` on one device, `peersync pair CODE` on the other");
    Ok(())
}

pub fn init(db: &Path, name: &str, key: Option<&Path>, adopt: bool) -> Result<()> {
    let conn = db::open(db, true)?;
    let id = peersync_core::init(&conn)?;
    let recorded = own_row(&conn)?.public_key;
    let path = keys::resolve(key, &id)?;
    if recorded.is_some() {
        instance::check(&conn, db, &path)?;
    }
    let signing = if path.exists() {
        let k = keys::load(&path)?;
        if let Some(pk) = &recorded {
            if *pk != keys::public_hex(&k) {
                return Err(Error::Cli(format!(
                    "key file {} does not belong to this database (its device has public key {pk}); pass the right --key FILE",
                    path.display()
                )));
            }
        }
        if recorded.is_none() && !adopt {
            return Err(Error::Cli(format!(
                "key file {} already exists and this database has no key pair yet: pass --adopt-key to make that key this database's (only if no other device uses it), or --key FILE for a new one",
                path.display()
            )));
        }
        k
    } else if let Some(pk) = &recorded {
        return Err(Error::Cli(format!(
            "this database already has a key pair (public key {pk}) but its key file {} is missing; pass --key FILE where the key is",
            path.display()
        )));
    } else {
        let k = keys::generate()?;
        keys::write_new(&path, &k)?;
        k
    };
    peersync_core::set_identity(&conn, Some(name), &keys::public_hex(&signing))?;
    instance::note(&conn, db, &path);
    outln!("key file:   {}", path.display());
    print_pairing(db, &own_row(&conn)?)
}

/// `init --new-identity`: a copy of another device's database becomes a device of its own.
pub fn new_identity(db: &Path, name: &str, key: Option<&Path>) -> Result<()> {
    let conn = db::open(db, false)?;
    let old = own_row(&conn)?;
    if old.public_key.is_none() {
        return Err(Error::Cli(
            "this database has no identity to leave yet; run `peersync init` without --new-identity".into(),
        ));
    }
    let signing = keys::generate()?;
    // The new id is known only once it is made; the key file is written right after, and a
    // failure to write it leaves the database with the new id and no key (init says so).
    let (old_id, new_id) = peersync_core::new_identity(&conn)?;
    let path = keys::resolve(key, &new_id)?;
    keys::write_new(&path, &signing)?;
    peersync_core::set_identity(&conn, Some(name), &keys::public_hex(&signing))?;
    instance::note(&conn, db, &path);
    outln!("this database is now device {new_id}, with its own key pair; its data stays.");
    outln!(
        "device {old_id} ({}) is the original's: it stays another trusted device here, and nothing changes for it on the others.",
        old.device_name.as_deref().unwrap_or("no name")
    );
    outln!("The other devices do not know this one yet: pair it with them before it syncs.");
    outln!("key file:   {}", path.display());
    print_pairing(db, &own_row(&conn)?)
}

pub fn id(db: &Path) -> Result<()> {
    let conn = db::open(db, false)?;
    print_pairing(db, &own_row(&conn)?)
}

pub fn trust(db: &Path, id: &str, pk: &str, name: Option<&str>, ip: Option<&str>) -> Result<()> {
    let conn = db::open(db, false)?;
    own_row(&conn)?;
    peersync_core::trust(&conn, id, pk, name, ip)?;
    outln!("trusted {id}{}", name.map(|n| format!(" ({n})")).unwrap_or_default());
    Ok(())
}

pub fn revoke(db: &Path, id: &str) -> Result<()> {
    let conn = db::open(db, false)?;
    own_row(&conn)?;
    peersync_core::revoke(&conn, id)?;
    outln!(
        "revoked {id}: its requests and its changes are refused from now on, here and, from their next sync, on every device that trusts this one"
    );
    let introduced = peersync_core::introduced_by(&conn, id)?;
    if !introduced.is_empty() {
        outln!("it introduced these devices here; review them, and `peersync revoke` any you do not know:");
        for d in introduced {
            outln!("  {d}");
        }
    }
    Ok(())
}

pub fn release(db: &Path, id: &str) -> Result<()> {
    let conn = db::open(db, false)?;
    own_row(&conn)?;
    let revoked = peersync_core::device(&conn, id)?.is_some_and(|d| !d.is_authorized);
    if peersync_core::release(&conn, id)? {
        if revoked {
            outln!(
                "released {id} from quarantine: it stays revoked, so sync with it does not resume (`peersync trust` it again to sync with it)"
            );
        } else {
            outln!("released {id}: sync with it resumes (a forked chain it still sends quarantines it again)");
        }
        Ok(())
    } else {
        Err(Error::Cli(format!("device {id} is not quarantined here (see `peersync devices`)")))
    }
}

pub fn devices(db: &Path, json: bool) -> Result<()> {
    let conn = db::open(db, false)?;
    own_row(&conn)?;
    let list = peersync_core::devices(&conn)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    outln!(
        "{:<32}  {:<12}  {:<10}  {:<15}  {:<24}  introduced by",
        "device id",
        "name",
        "state",
        "address",
        "last sync"
    );
    let revoked: Vec<String> = list.iter().filter(|d| !d.is_authorized).map(|d| d.device_id.clone()).collect();
    for d in list {
        let state = if d.is_self {
            "this"
        } else if d.succeeded_by.is_some() {
            "recovered"
        } else if d.quarantined.is_some() {
            "quarantined"
        } else if d.is_authorized {
            "trusted"
        } else {
            "revoked"
        };
        let by = match d.introduced_by.as_deref() {
            None => "-".to_string(),
            Some(by) if revoked.iter().any(|r| r == by) => format!("{by} (revoked: review this device)"),
            Some(by) => by.to_string(),
        };
        outln!(
            "{:<32}  {:<12}  {:<10}  {:<15}  {:<24}  {by}",
            d.device_id,
            d.device_name.as_deref().unwrap_or("-"),
            state,
            d.tailscale_ip.as_deref().unwrap_or("-"),
            d.last_sync_at.as_deref().unwrap_or("-")
        );
        if let Some(next) = &d.succeeded_by {
            outln!("  restored from a backup and recovered (peersync recover): goes on as device {next}");
        }
    }
    Ok(())
}

pub fn track(db: &Path, table: &str, strategy: Option<&str>) -> Result<()> {
    let conn = db::open(db, false)?;
    own_row(&conn)?;
    let n = peersync_core::track(&conn, table, strategy)?;
    // The strategy the table really has now: one setting across devices, maybe another's.
    let info = peersync_core::strategy_of(&conn, table)?
        .ok_or_else(|| Error::Cli(format!("table {table} is tracked but has no strategy row")))?;
    outln!("tracking {} ({}); {n} existing row(s) logged", info.table, describe_strategy(&conn, &info)?);
    Ok(())
}

/// `strategy manual, set by device <id> (<name>) at <time>`, or `strategy timestamp_wins, the
/// default (no device has set one)`.
pub fn describe_strategy(conn: &rusqlite::Connection, info: &peersync_core::StrategyInfo) -> Result<String> {
    let Some(by) = &info.set_by else {
        return Ok(format!("strategy {}, the default (no device has set one)", info.strategy));
    };
    let who = match peersync_core::device(conn, by)? {
        Some(d) if d.is_self => "this device".to_string(),
        Some(d) => format!("device {by} ({})", d.device_name.as_deref().unwrap_or("no name")),
        None => format!("device {by}"),
    };
    let at: Option<String> = match info.set_at {
        Some(us) => {
            conn.query_row("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ?1 / 1000000.0, 'unixepoch')", [us], |r| r.get(0))?
        }
        None => None,
    };
    Ok(format!("strategy {}, set by {who} at {}", info.strategy, at.as_deref().unwrap_or("?")))
}
