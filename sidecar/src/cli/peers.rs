//! `peersync peers add|remove|list|discover`: the peers this device syncs with, kept in the
//! database (a running `serve` picks changes up within seconds).
use crate::client::normalize_url;
use crate::db;
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

pub fn add(db: &Path, url: &str) -> Result<()> {
    let url = normalize_url(url)?;
    let conn = db::open(db, false)?;
    peersync_core::device_id(&conn)?;
    if peersync_core::add_peer(&conn, &url, "manual", None)? {
        outln!("added peer {url} (a running `peersync serve` starts syncing with it within seconds)");
    } else {
        outln!("peer {url} is already configured");
    }
    Ok(())
}

pub fn remove(db: &Path, url: &str) -> Result<()> {
    let url = normalize_url(url)?;
    let conn = db::open(db, false)?;
    if peersync_core::remove_peer(&conn, &url)? {
        outln!("removed peer {url}");
        Ok(())
    } else {
        Err(Error::Cli(format!("{url} is not a configured peer (see `peersync peers list`)")))
    }
}

pub fn list(db: &Path, json: bool) -> Result<()> {
    let conn = db::open(db, false)?;
    let peers = peersync_core::configured_peers(&conn)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&peers)?);
        return Ok(());
    }
    if peers.is_empty() {
        outln!("no peers configured (add one with `peersync peers add URL` or `peersync pair`)");
    }
    for p in peers {
        let state = match (&p.last_success_at, &p.last_error, p.failures) {
            (_, Some(e), n) if n > 0 => format!("failing ({n}): {e}"),
            (Some(t), _, _) => format!("last synced {t}"),
            _ => "not synced yet".into(),
        };
        outln!("{:<32}  {:<32}  {:<8}  {state}", p.url, p.device_id.as_deref().unwrap_or("-"), p.source);
    }
    Ok(())
}

/// A tailnet peer matched to a device this database trusts.
struct Found {
    device_id: String,
    name: String,
    url: String,
    online: bool,
}

/// Matches `tailscale status --json` peers to the trusted devices: a peer whose Tailscale IPs
/// include the device's recorded `tailscale_ip`, else whose `HostName` (or first `DNSName`
/// label) equals the device's name, case-insensitively. Each device is matched once.
fn matches(status: &Value, devices: &[peersync_core::Device], port: u16) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    let Some(peers) = status.get("Peer").and_then(Value::as_object) else {
        return out;
    };
    for d in devices.iter().filter(|d| d.is_authorized && !d.is_self) {
        let name = d.device_name.clone().unwrap_or_default().to_ascii_lowercase();
        let found = peers.values().find_map(|p| {
            let ips: Vec<&str> = p.get("TailscaleIPs")?.as_array()?.iter().filter_map(Value::as_str).collect();
            let host = p.get("HostName").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
            let dns = p.get("DNSName").and_then(Value::as_str).unwrap_or_default();
            let label = dns.split('.').next().unwrap_or_default().to_ascii_lowercase();
            let by_ip = d.tailscale_ip.as_deref().is_some_and(|ip| ips.contains(&ip));
            let by_name = !name.is_empty() && (host == name || label == name);
            if !(by_ip || by_name) {
                return None;
            }
            let ip = d
                .tailscale_ip
                .clone()
                .filter(|ip| ips.contains(&ip.as_str()))
                .or_else(|| ips.iter().find(|ip| !ip.contains(':')).or(ips.first()).map(|s| s.to_string()))?;
            let host = if ip.contains(':') { format!("[{ip}]") } else { ip };
            Some(Found {
                device_id: d.device_id.clone(),
                name: d.device_name.clone().unwrap_or_default(),
                url: format!("http://{host}:{port}"),
                online: p.get("Online").and_then(Value::as_bool).unwrap_or(false),
            })
        });
        out.extend(found);
    }
    out
}

pub fn discover(db: &Path, add: bool, port: u16) -> Result<()> {
    let out = std::process::Command::new("tailscale").args(["status", "--json"]).output().map_err(|e| {
        Error::Cli(format!("cannot run `tailscale status --json` ({e}): is Tailscale installed and on PATH?"))
    })?;
    if !out.status.success() {
        return Err(Error::Cli(format!(
            "`tailscale status --json` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let status: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Cli(format!("`tailscale status --json` printed something else than JSON: {e}")))?;
    let conn = db::open(db, false)?;
    peersync_core::device_id(&conn)?;
    let found = matches(&status, &peersync_core::devices(&conn)?, port);
    if found.is_empty() {
        outln!("no device this database trusts is on the tailnet (matched by recorded Tailscale IP or by name)");
    }
    for f in found {
        let online = if f.online { "online" } else { "offline" };
        if add {
            let new = peersync_core::add_peer(&conn, &f.url, "discover", Some(&f.device_id))?;
            outln!(
                "{} {} ({}, {online}){}",
                f.url,
                f.device_id,
                f.name,
                if new { ": added" } else { ": already a peer" }
            );
        } else {
            outln!("{} {} ({}, {online})", f.url, f.device_id, f.name);
        }
    }
    if !add {
        outln!("(add them with `peersync peers discover --add`)");
    }
    Ok(())
}
