//! Commands that look at a database: status, conflicts (list, show, resolve), verify.
use super::ConflictAction;
use crate::db;
use crate::error::{Error, Result};
use std::io::IsTerminal;
use std::path::Path;

pub fn status(db: &Path, json: bool) -> Result<()> {
    let conn = db::open(db, false)?;
    let mut s = peersync_core::status(&conn)?;
    let serving = crate::serving::who(db);
    s["sidecar"] = serde_json::json!({ "serving": serving.is_some(), "by": serving });
    if json {
        outln!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    outln!("device:    {}", s["device_id"].as_str().unwrap_or("?"));
    match s["sidecar"]["by"].as_str() {
        Some(by) => outln!("sidecar:   serving this file ({by})"),
        None => outln!(
            "sidecar:   NOT RUNNING on this file (changes sync only when `peersync serve` or `peersync sync` runs)"
        ),
    }
    match s["sqlite_warning"].as_str() {
        Some(w) => outln!("SQLITE:    {w}"),
        None => outln!(
            "sqlite:    {} (free of the WAL-reset bug; an app writing this file needs SQLite 3.51.3+, 3.50.7+ or 3.44.6+ too)",
            s["sqlite_version"].as_str().unwrap_or("?")
        ),
    }
    let tables: Vec<String> = s["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| format!("{} ({})", t["table"].as_str().unwrap_or("?"), t["strategy"].as_str().unwrap_or("?")))
        .collect();
    outln!("tables:    {}", if tables.is_empty() { "none tracked (peersync track)".into() } else { tables.join(", ") });
    outln!(
        "log:       {} changes, {} not yet on every peer; own version {}",
        s["log"]["entries"],
        s["log"]["unsynced"],
        s["log"]["own_version"]
    );
    let anchors = s["log"]["anchors"].as_array().map_or(0, |a| a.len());
    if anchors > 0 {
        outln!(
            "history:   {} changes compacted away; {anchors} chain(s) verify from their anchors",
            s["log"]["compacted"]
        );
    }
    if let Some(e) = s["log"]["compaction_error"].as_object() {
        outln!(
            "COMPACTION FAILING since {}: {} (the log keeps growing until it succeeds; see the sidecar's log)",
            e.get("at").and_then(|v| v.as_str()).unwrap_or("?"),
            e.get("error").and_then(|v| v.as_str()).unwrap_or("?")
        );
    }
    outln!("conflicts: {} pending", s["conflicts_pending"]);
    for q in s["quarantined"].as_array().into_iter().flatten() {
        outln!(
            "QUARANTINED: {} since {}: {} (check it, then `peersync release` it or `peersync revoke` it)",
            q["device_id"].as_str().unwrap_or("?"),
            q["detected_at"].as_str().unwrap_or("?"),
            q["reason"].as_str().unwrap_or("?")
        );
    }
    for w in s["waiting"].as_array().into_iter().flatten() {
        outln!(
            "WAITING:   changes of {} from version {} (offered by {}, since {}): {}",
            w["origin"].as_str().unwrap_or("?"),
            w["version"],
            w["offered_by"].as_str().unwrap_or("?"),
            w["first_seen"].as_str().unwrap_or("?"),
            w["detail"].as_str().unwrap_or("?")
        );
    }
    for w in s["schema_waiting"].as_array().into_iter().flatten() {
        let what = match w["reason"].as_str() {
            Some("base_missing") => "changes they are based on",
            _ => "this database's schema",
        };
        outln!(
            "SCHEMA:    {} change(s) to table {} wait for {what} ({}, since {}): {}",
            w["changes"],
            w["table"].as_str().unwrap_or("?"),
            w["reason"].as_str().unwrap_or("?"),
            w["since"].as_str().unwrap_or("?"),
            w["detail"].as_str().unwrap_or("?")
        );
    }
    for d in s["dropped_tables"].as_array().into_iter().flatten() {
        outln!(
            "DROPPED:   tracked table {} was dropped here ({}): changes to it wait; create it again and `peersync track` it to get its rows back",
            d["table"].as_str().unwrap_or("?"),
            d["dropped_at"].as_str().unwrap_or("?")
        );
    }
    for d in s["disputed_keys"].as_array().into_iter().flatten() {
        outln!(
            "DISPUTED KEY: {} introduced device {} with key {}, not the key paired here; check both devices, then `peersync trust` the right key or `peersync revoke` the introducer",
            d["by"].as_str().unwrap_or("?"),
            d["device_id"].as_str().unwrap_or("?"),
            d["public_key"].as_str().unwrap_or("?")
        );
    }
    for d in s["divergences"].as_array().into_iter().flatten() {
        let records = d["records"]
            .as_array()
            .map(|r| r.iter().map(|x| x.as_str().unwrap_or("?").to_string()).collect::<Vec<_>>().join(", "));
        outln!(
            "DIVERGED:  table {} differs from device {} at the same changes (since {}){}; run `peersync check --peer URL` to list the records",
            d["table"].as_str().unwrap_or("?"),
            d["peer"].as_str().unwrap_or("?"),
            d["first_seen"].as_str().unwrap_or("?"),
            records.map(|r| format!(": records {r}")).unwrap_or_default()
        );
    }
    for p in s["peers"].as_array().into_iter().flatten() {
        let lacks = match p["succeeded_by"].as_str() {
            Some(next) => format!(", goes on as {next}"),
            None => p["lacks"].as_i64().map(|n| format!(", lacks {n} change(s)")).unwrap_or_default(),
        };
        let error = match (p["last_error"].as_str(), p["last_error_at"].as_str()) {
            (Some(e), Some(at)) if p["last_sync_at"].as_str().is_none_or(|ok| ok < at) => {
                format!("\n           REFUSED at {at}: {e}")
            }
            _ => String::new(),
        };
        let audit = match (p["last_audit"].as_str(), p["last_audit_at"].as_str()) {
            (Some(a), Some(at)) => format!(", audit {a} at {at}"),
            _ => String::new(),
        };
        outln!(
            "peer:      {} {:<12} {:<8} last sync {}{lacks}{audit}{error}",
            p["device_id"].as_str().unwrap_or("?"),
            p["name"].as_str().unwrap_or("-"),
            match (p["authorized"].as_bool(), p["succeeded_by"].as_str()) {
                (Some(true), Some(_)) => "recovered",
                (Some(true), None) => "trusted",
                _ => "revoked",
            },
            p["last_sync_at"].as_str().unwrap_or("never")
        );
    }
    for l in s["links"].as_array().into_iter().flatten() {
        let url = l["url"].as_str().unwrap_or("?");
        if l["state"] == "failing" {
            outln!(
                "link:      {url} FAILING since {} ({} attempt(s)): {}; last success {}",
                l["failing_since"].as_str().unwrap_or("?"),
                l["failures"],
                l["last_error"].as_str().unwrap_or("?"),
                l["last_success_at"].as_str().unwrap_or("never")
            );
        } else {
            outln!("link:      {url} ok, last success {}", l["last_success_at"].as_str().unwrap_or("never"));
        }
        for h in l["held_there"].as_array().into_iter().flatten() {
            outln!(
                "held there: {url} {} device {} from version {}: {}",
                h["reason"].as_str().unwrap_or("?"),
                h["device_id"].as_str().unwrap_or("?"),
                h["version"],
                h["detail"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

pub fn conflicts(db: &Path, action: Option<ConflictAction>) -> Result<()> {
    let conn = db::open(db, false)?;
    peersync_core::device_id(&conn)?;
    match action.unwrap_or(ConflictAction::List { status: None, all: false, json: false }) {
        ConflictAction::List { status, all, json } => {
            let status = if all { None } else { Some(status.map_or("pending", |s| s.as_str())) };
            let list = peersync_core::conflicts(&conn, status)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                outln!("no {} conflicts", status.unwrap_or("recorded"));
            } else {
                for c in list {
                    outln!(
                        "#{:<5} {:<9} {}[{}] {} {}",
                        c.id,
                        c.status,
                        c.table_name,
                        c.record_id,
                        c.kind,
                        if c.columns.is_empty() { String::new() } else { c.columns.join(",") }
                    );
                }
            }
        }
        ConflictAction::Show { id } => match peersync_core::conflict(&conn, id)? {
            Some(c) => outln!("{}", serde_json::to_string_pretty(&c)?),
            None => return Err(Error::Cli(format!("no conflict with id {id}; see `peersync conflicts list --all`"))),
        },
        ConflictAction::Resolve { id, choice } => {
            if peersync_core::conflict(&conn, id)?.is_none() {
                return Err(Error::Cli(format!("no conflict with id {id}; see `peersync conflicts list`")));
            }
            let status = peersync_core::resolve(&conn, id, peersync_core::Choice::parse(&choice)?)?;
            outln!("conflict {id}: {status} (the resolution syncs to the other devices)");
        }
    }
    Ok(())
}

/// `peersync compact`: compacts the log now, one short transaction at a time, with progress.
pub fn compact(db: &Path) -> Result<()> {
    let conn = db::open(db, false)?;
    peersync_core::device_id(&conn)?;
    let before: i64 = conn.query_row("SELECT count(*) FROM sync_log", [], |r| r.get(0))?;
    let (mut removed, mut kept, mut steps) = (0, 0, 0);
    let mut longest = std::time::Duration::ZERO;
    let started = std::time::Instant::now();
    loop {
        let t = std::time::Instant::now();
        let step = peersync_core::compact(&conn, Some(1))?;
        longest = longest.max(t.elapsed());
        removed += step.removed;
        kept += step.kept;
        steps += step.steps;
        if step.steps > 0 && std::io::stderr().is_terminal() {
            eprint!("\rcompacting: {removed} of {before} changes removed");
        }
        if step.done {
            break;
        }
    }
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    if steps == 0 {
        outln!(
            "nothing to compact: the log holds {before} changes, and every one is needed or not yet held by every trusted device (see `peersync status`)"
        );
    } else {
        outln!(
            "compacted: {removed} of {before} changes removed in {:.1} s ({kept} kept below the anchors: current values, open conflicts); {steps} transactions, the longest {:.1} ms",
            started.elapsed().as_secs_f64(),
            longest.as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

pub fn verify(db: &Path) -> Result<()> {
    let conn = db::open(db, false)?;
    peersync_core::device_id(&conn)?;
    let v = peersync_core::verify(&conn)?;
    if v["ok"].as_bool() == Some(true) {
        outln!("ok: {} changes checked, every hash and chain verifies", v["checked"]);
        return Ok(());
    }
    outln!("{}", serde_json::to_string_pretty(&v)?);
    let failed = v["failed"].as_array().map_or(0, |a| a.len());
    Err(Error::Cli(format!(
        "the log does not verify: {failed} change(s) fail their hash or chain; see `peersync status`"
    )))
}
