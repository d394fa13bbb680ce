//! What a peer took of a pushed page: its reply counted into the sync's report, and what it holds.
use crate::client::PushReply;
use crate::metrics::Metrics;
use crate::sync::{Progress, Report};
use peersync_core::{Batch, Held, Vector};

/// Counts what the peer took of `batch`, by its `reply`, and makes `theirs` what it holds.
pub(crate) fn record(
    batch: &Batch,
    reply: PushReply,
    theirs: &mut Vector,
    report: &mut Report,
    progress: &dyn Progress,
    metrics: &Metrics,
) {
    report.sent += reply.accepted;
    report.conflicts += reply.conflicts.len();
    Metrics::add(&metrics.changes_sent, reply.accepted as u64);
    progress.sent(batch.changes.len() as u64);
    *theirs = reply.vector;
    // The peer revoked these devices: their changes stay here, not sent to it again (and it is
    // recorded as holding them, so they are not offered to it again either).
    for dev in &reply.refused_devices {
        if let Some(&v) = batch.vector.get(dev) {
            let first = theirs.get(dev).copied().unwrap_or(0) + 1;
            theirs.insert(dev.clone(), v);
            let detail = format!(
                "the peer has revoked device {dev}: it refuses its changes, whoever relays them; they are not sent to it"
            );
            let h = Held { device_id: dev.clone(), version: first, reason: "revoked".into(), detail };
            note_held(report, h);
        }
    }
    report.peer_vector = theirs.clone();
    for h in reply.held {
        note_held(report, h);
    }
    // The peer holds these origins' changes back, or refuses them: not sent to it again in this
    // sync (whichever page they would be in), so the rest flows; what it holds stays as it said.
    for dev in report.held_there.iter().map(|h| &h.device_id) {
        if let Some(&v) = batch.vector.get(dev) {
            let t = theirs.entry(dev.clone()).or_insert(0);
            *t = (*t).max(v);
        }
    }
}

/// Notes that the peer holds back (or refuses) the changes of `h`'s origin, once per origin and reason.
fn note_held(report: &mut Report, h: Held) {
    if !report.held_there.iter().any(|x| x.device_id == h.device_id && x.reason == h.reason) {
        report.held_there.push(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LAPTOP: &str = "11111111111111111111111111111111";
    const PHONE: &str = "22222222222222222222222222222222";
    const TABLET: &str = "33333333333333333333333333333333";

    fn reply(v: serde_json::Value) -> PushReply {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn what_a_peer_refuses_stays_out_of_what_is_sent_to_it_for_the_whole_sync() {
        // The phone holds the tablet's version 1 and its own 1..3; the laptop revoked the tablet.
        let batch: Batch = serde_json::from_value(
            json!({"format": 1, "device_id": PHONE, "changes": [], "has_more": false, "vector": {TABLET: 1, PHONE: 3}}),
        )
        .unwrap();
        let (mut theirs, mut report, metrics) = (Vector::new(), Report::default(), Metrics::default());
        let refused = reply(
            json!({"accepted": 1, "refused": 1, "refused_devices": [TABLET], "vector": {PHONE: 1}, "device_id": LAPTOP}),
        );
        record(&batch, refused, &mut theirs, &mut report, &(), &metrics);
        assert_eq!((theirs.get(TABLET), theirs.get(PHONE)), (Some(&1), Some(&1)));
        assert_eq!(
            report.held_there.iter().map(|h| (h.device_id.as_str(), h.version, h.reason.as_str())).collect::<Vec<_>>(),
            [(TABLET, 1, "revoked")]
        );
        // A later reply says nothing of the tablet (its page held none of the tablet's changes):
        // the tablet stays out of what is sent, so its change is not offered again and again.
        let later = reply(json!({"accepted": 2, "vector": {PHONE: 3}, "device_id": LAPTOP}));
        record(&batch, later, &mut theirs, &mut report, &(), &metrics);
        assert_eq!((theirs.get(TABLET), theirs.get(PHONE)), (Some(&1), Some(&3)));
        assert_eq!(report.held_there.len(), 1);
    }
}
