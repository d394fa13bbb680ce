//! Counters the sidecar keeps (changes sent/received, conflicts, errors, last sync per peer) and their Prometheus text form.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

#[derive(Default, Clone)]
pub struct PeerStats {
    pub device_id: Option<String>,
    pub last_success: Option<i64>,
    pub last_attempt: Option<i64>,
    pub last_error: Option<String>,
    pub failures: u64,
    /// Origins whose changes the peer held back at the last sync, and why.
    pub held: Vec<peersync_core::Held>,
}

#[derive(Default)]
pub struct Metrics {
    pub changes_sent: AtomicU64,
    pub changes_received: AtomicU64,
    pub conflicts: AtomicU64,
    pub syncs: AtomicU64,
    /// Audits that compared content with a peer.
    pub audits: AtomicU64,
    /// Changes compaction removed from the log.
    pub compacted: AtomicU64,
    pub requests: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    peers: Mutex<BTreeMap<String, PeerStats>>,
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn error(&self, kind: &'static str) {
        *self.errors.lock().unwrap().entry(kind).or_default() += 1;
    }

    pub fn peer_ok(&self, url: &str, device_id: &str, at: i64, held: Vec<peersync_core::Held>) {
        let mut peers = self.peers.lock().unwrap();
        let p = peers.entry(url.to_string()).or_default();
        p.device_id = Some(device_id.to_string());
        p.last_success = Some(at);
        p.last_attempt = Some(at);
        p.last_error = None;
        p.failures = 0;
        p.held = held;
    }

    pub fn peer_failed(&self, url: &str, at: i64, error: String) {
        let mut peers = self.peers.lock().unwrap();
        let p = peers.entry(url.to_string()).or_default();
        p.last_attempt = Some(at);
        p.last_error = Some(error);
        p.failures += 1;
    }

    pub fn peers(&self) -> BTreeMap<String, PeerStats> {
        self.peers.lock().unwrap().clone()
    }

    /// Prometheus text exposition (version 0.0.4). `waiting` is what this device holds back
    /// (core's `sync_status().waiting`): origin and reason of each. `schema_waiting` is what
    /// waits here for this database's schema (`sync_status().schema_waiting`): table, reason
    /// and how many changes.
    pub fn render(
        &self,
        conflicts_pending: i64,
        nonces: usize,
        waiting: &[(String, String)],
        schema_waiting: &[(String, String, i64)],
    ) -> String {
        let mut o = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "peersync_changes_sent_total",
            "Changes peers accepted from this device.",
            self.changes_sent.load(Relaxed),
        );
        counter(
            "peersync_changes_received_total",
            "Changes this device accepted from peers.",
            self.changes_received.load(Relaxed),
        );
        counter("peersync_conflicts_total", "Conflicts detected while applying changes.", self.conflicts.load(Relaxed));
        counter("peersync_syncs_total", "Completed syncs with peers.", self.syncs.load(Relaxed));
        counter("peersync_audits_total", "Audits that compared content with a peer.", self.audits.load(Relaxed));
        counter(
            "peersync_compacted_total",
            "Changes this run's compaction removed from the log.",
            self.compacted.load(Relaxed),
        );
        counter("peersync_http_requests_total", "HTTP requests served.", self.requests.load(Relaxed));
        let _ = writeln!(o, "# HELP peersync_errors_total Errors, by kind.\n# TYPE peersync_errors_total counter");
        let errors = self.errors.lock().unwrap();
        if errors.is_empty() {
            let _ = writeln!(o, "peersync_errors_total{{kind=\"none\"}} 0");
        }
        for (k, v) in errors.iter() {
            let _ = writeln!(o, "peersync_errors_total{{kind=\"{k}\"}} {v}");
        }
        let _ = writeln!(o, "# HELP peersync_conflicts_pending Conflicts waiting for a decision.\n# TYPE peersync_conflicts_pending gauge\npeersync_conflicts_pending {conflicts_pending}");
        let _ = writeln!(o, "# HELP peersync_nonces_cached Request nonces remembered against replay.\n# TYPE peersync_nonces_cached gauge\npeersync_nonces_cached {nonces}");
        let peers = self.peers.lock().unwrap();
        let _ = writeln!(o, "# HELP peersync_last_sync_timestamp_seconds When the last successful sync with a peer ended.\n# TYPE peersync_last_sync_timestamp_seconds gauge");
        for (url, p) in peers.iter() {
            if let Some(t) = p.last_success {
                let _ = writeln!(o, "peersync_last_sync_timestamp_seconds{{peer=\"{}\"}} {t}", esc(url));
            }
        }
        let _ = writeln!(o, "# HELP peersync_peer_consecutive_failures Failed sync attempts with a peer since its last success.\n# TYPE peersync_peer_consecutive_failures gauge");
        for (url, p) in peers.iter() {
            let _ = writeln!(o, "peersync_peer_consecutive_failures{{peer=\"{}\"}} {}", esc(url), p.failures);
        }
        let _ = writeln!(o, "# HELP peersync_peer_held_origins Origins whose changes a peer held back at the last sync, by reason.\n# TYPE peersync_peer_held_origins gauge");
        for (url, p) in peers.iter() {
            for h in &p.held {
                let _ = writeln!(
                    o,
                    "peersync_peer_held_origins{{peer=\"{}\",origin=\"{}\",reason=\"{}\"}} 1",
                    esc(url),
                    esc(&h.device_id),
                    esc(&h.reason)
                );
            }
        }
        let _ = writeln!(o, "# HELP peersync_waiting_origins Origins whose changes this device holds back, by reason.\n# TYPE peersync_waiting_origins gauge");
        for (origin, reason) in waiting {
            let _ = writeln!(o, "peersync_waiting_origins{{origin=\"{}\",reason=\"{}\"}} 1", esc(origin), esc(reason));
        }
        let _ = writeln!(o, "# HELP peersync_schema_waiting_changes Received changes whose effect waits for this database's schema (a table or column not tracked here) or for a change they are based on (base_missing), by table and reason.\n# TYPE peersync_schema_waiting_changes gauge");
        for (table, reason, n) in schema_waiting {
            let _ = writeln!(
                o,
                "peersync_schema_waiting_changes{{table=\"{}\",reason=\"{}\"}} {n}",
                esc(table),
                esc(reason)
            );
        }
        o
    }
}

/// Gauges read from the database (core's `sync_status`): each peer link's state and what it
/// lacks, and the divergences the audit recorded.
pub fn render_health(o: &mut String, status: &serde_json::Value) {
    let list = |k: &str| status[k].as_array().cloned().unwrap_or_default();
    let _ = writeln!(o, "# HELP peersync_peer_failing Whether the last sync with a peer failed (1) or succeeded (0).\n# TYPE peersync_peer_failing gauge");
    for l in list("links") {
        let failing = u8::from(l["state"] == "failing");
        let _ = writeln!(o, "peersync_peer_failing{{peer=\"{}\"}} {failing}", esc(l["url"].as_str().unwrap_or("")));
    }
    let _ = writeln!(o, "# HELP peersync_peer_lacks_changes Changes this device holds that a peer is not known to hold.\n# TYPE peersync_peer_lacks_changes gauge");
    for p in list("peers") {
        if let Some(n) = p["lacks"].as_i64() {
            let _ = writeln!(
                o,
                "peersync_peer_lacks_changes{{device=\"{}\"}} {n}",
                esc(p["device_id"].as_str().unwrap_or(""))
            );
        }
    }
    let log = &status["log"];
    let _ = writeln!(o, "# HELP peersync_log_entries Changes in this device's log.\n# TYPE peersync_log_entries gauge\npeersync_log_entries {}", log["entries"].as_i64().unwrap_or(0));
    let _ = writeln!(o, "# HELP peersync_log_compacted Changes compaction has removed from this device's log, in all.\n# TYPE peersync_log_compacted gauge\npeersync_log_compacted {}", log["compacted"].as_i64().unwrap_or(0));
    let _ = writeln!(o, "# HELP peersync_compaction_failing Whether the last compaction failed (1) and none has succeeded since.\n# TYPE peersync_compaction_failing gauge\npeersync_compaction_failing {}", u8::from(!log["compaction_error"].is_null()));
    let divergences = list("divergences");
    let _ = writeln!(o, "# HELP peersync_divergences Tables whose rows differ from a peer's at the same vector (the audit); should be 0.\n# TYPE peersync_divergences gauge\npeersync_divergences {}", divergences.len());
    let _ = writeln!(o, "# HELP peersync_divergent_table A table found different from a peer's, by peer and table.\n# TYPE peersync_divergent_table gauge");
    for d in divergences {
        let _ = writeln!(
            o,
            "peersync_divergent_table{{peer=\"{}\",table=\"{}\"}} 1",
            esc(d["peer"].as_str().unwrap_or("")),
            esc(d["table"].as_str().unwrap_or(""))
        );
    }
}
