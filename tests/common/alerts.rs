//! Builders for `ingestAlerts` payloads, so tests read as scenarios.

use serde_json::{json, Value};

/// The ingest mutation with the fields tests read back.
pub const INGEST: &str = "mutation($alerts: [AlertInput!]!) { ingestAlerts(alerts: $alerts) { \
    accepted rejected items { index status error alert { id incident { id } } } } }";

/// An MDO URL-ZAP alert about one message copy delivered to `recipient`.
pub fn url_alert(provider_id: &str, recipient: &str, url: &str, sender: &str) -> Value {
    // One sending IP per campaign (URL), so unrelated test campaigns share no weak key.
    let ip = format!("203.0.113.{}", url.bytes().map(u32::from).sum::<u32>() % 250 + 1);
    json!({
        "providerAlertId": provider_id,
        "serviceSource": "microsoftDefenderForOffice365",
        "detectionSource": "microsoftDefenderForOffice365",
        "alertPolicy": "Email messages containing malicious URL removed after delivery",
        "title": "Email messages containing malicious URL removed after delivery",
        "severity": "INFORMATIONAL",
        "category": "InitialAccess",
        "mitreTechniques": ["T1566.002"],
        "evidence": [
            { "verdict": "MALICIOUS", "email": {
                "networkMessageId": format!("nmid-{provider_id}"),
                "recipient": recipient,
                "envelopeSender": sender,
                "headerFrom": sender,
                "subject": "Your invoice",
                "receivedAt": "2026-11-26T10:00:00Z",
                "senderIp": ip,
                "urls": [url],
                "deliveryAction": "DELIVERED",
                "latestDeliveryLocation": "INBOX",
                "threatTypes": ["PHISH"]
            }},
            { "verdict": "MALICIOUS", "url": { "url": url } },
            { "mailbox": { "primaryAddress": recipient } }
        ]
    })
}

/// An alert whose only evidence is the given items; title and policy as given.
pub fn alert_with(provider_id: &str, policy: &str, severity: &str, evidence: Value) -> Value {
    json!({
        "providerAlertId": provider_id,
        "serviceSource": "microsoftDefenderForOffice365",
        "alertPolicy": policy,
        "title": policy,
        "severity": severity,
        "evidence": evidence
    })
}
