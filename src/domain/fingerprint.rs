//! The fingerprint of what a source sent about an alert, so a re-send that changes nothing is recognised
//! and changes nothing (issue 8 §3): detection sources retry, and a retry must not move incidents.

use super::alert::PreparedAlert;
use sha2::{Digest, Sha256};

/// A hash of every field of the validated (normalised) alert that ingestion stores: equal exactly when a
/// re-send would write the same alert, evidence and keys. Hex, 64 characters; `None` only if the alert
/// could not be serialised (it always can), and then no re-send of it counts as unchanged.
pub fn fingerprint(p: &PreparedAlert) -> Option<String> {
    let evidence: Vec<_> = p
        .evidence
        .iter()
        .map(|e| (e.kind, &e.entity_key, e.verdict, e.remediation_status, &e.roles, &e.data))
        .collect();
    let keys: Vec<(&str, &str)> = p.keys.iter().map(|k| (k.kind.as_str(), k.value.as_str())).collect();
    // Tuples serialise as JSON arrays, so the order is fixed; `data` objects serialise with sorted keys.
    // Written straight into the hash: nothing is copied.
    let doc = (
        1, // the fingerprint's own version: bump it when what is hashed changes
        (&p.provider_alert_id, &p.service_source, &p.detection_source, &p.alert_policy),
        (&p.title, &p.description, p.severity, &p.category, &p.mitre_techniques),
        (p.first_activity_at, p.last_activity_at),
        evidence,
        keys,
    );
    let mut hash = Sha256::new();
    serde_json::to_writer(&mut hash, &doc).ok()?;
    Some(hex::encode(hash.finalize()))
}
