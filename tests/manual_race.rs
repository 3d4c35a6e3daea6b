//! Analysts moving alerts by hand while batches sharing their keys are correlated (issue 8 §4). Manual
//! operations take no key locks, so correlation must re-check, under its incident locks, where the
//! carriers of its keys are. The whole history is replayed from the `alertCorrelated` stream (events are
//! delivered in commit order): every alert that joined an incident must have found, at that moment,
//! another alert there carrying each key it names; every alert that started an incident must have found
//! no open incident holding any of its keys.

mod common;

use common::alerts::{alert_with, INGEST};
use common::TestApp;
use futures::StreamExt;
use parapet::auth::Role;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

const HUBS: usize = 6;
const INGESTORS: usize = 3;
const BATCHES: usize = 12;
const ANALYSTS: usize = 3;

const EVENTS: &str =
    "subscription { alertCorrelated { kind alert { id } incident { id } matchedKeys { kind value } } }";
const CREATE: &str =
    "mutation($ids: [ID!]!, $c: String!) { createIncident(input: { alertIds: $ids, comment: $c }) { id } }";
const LINK: &str = "mutation($i: ID!, $ids: [ID!]!, $c: String!) { linkAlertsToIncident(incidentId: $i, alertIds: $ids, comment: $c) { id } }";
const ALERTS_OF: &str =
    "query($id: ID!) { alert(id: $id) { incident { id alerts(first: 100) { nodes { id } } } } }";

fn url(hub: usize) -> String {
    format!("https://race.example/k{hub}")
}

/// An alert whose only keys are the URLs of `hubs`.
fn alert(pid: &str, hubs: &[usize]) -> Value {
    let evidence: Vec<Value> = hubs.iter().map(|h| json!({ "url": { "url": url(*h) } })).collect();
    alert_with(pid, &format!("policy {pid}"), "LOW", json!(evidence))
}

/// A small deterministic generator, so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n as u64).unwrap_or(0)
    }
}

/// Ingests `alerts`, records each one's keys, and returns the new alerts' ids.
async fn ingest(app: &TestApp, t: &str, alerts: Vec<(String, Vec<usize>)>, keys: &KeyBook) -> Vec<String> {
    let payload: Vec<Value> = alerts.iter().map(|(pid, hubs)| alert(pid, hubs)).collect();
    let resp = app.ok(t, INGEST, json!({ "alerts": payload })).await;
    let items = resp["ingestAlerts"]["items"].as_array().expect("items").clone();
    let mut ids = vec![];
    let mut book = keys.lock().await;
    for (item, (_, hubs)) in items.iter().zip(&alerts) {
        assert_eq!(item["status"], "CREATED", "{item}");
        let id = item["alert"]["id"].as_str().expect("id").to_string();
        book.insert(id.clone(), hubs.iter().map(|h| url(*h)).collect());
        ids.push(id);
    }
    ids
}

type KeyBook = Arc<tokio::sync::Mutex<HashMap<String, BTreeSet<String>>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moves_by_hand_racing_correlation_leave_every_alert_where_its_keys_say() {
    let app = Arc::new(TestApp::with_pool_size(12).await);
    let t = app.token("contoso", "gw@contoso.com", &[Role::Ingestor]);
    let an = app.token("contoso", "alice@contoso.com", &[Role::Analyst]);
    let r = app.token("contoso", "r@contoso.com", &[Role::Reader]);
    let keys: KeyBook = Arc::default();
    let mut events = app.subscribe(&r, EVENTS, json!({})).await;
    app.wait_subscribers("contoso", 1).await;

    let hub_alerts: Vec<(String, Vec<usize>)> = (0..HUBS).map(|h| (format!("hub{h}"), vec![h])).collect();
    let hubs = Arc::new(ingest(&app, &t, hub_alerts, &keys).await);

    let mut tasks = vec![];
    for w in 0..INGESTORS {
        let (app, t, keys) = (app.clone(), t.clone(), keys.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w as u64 + 1));
            for b in 0..BATCHES {
                // Small batches read their carriers under the key locks; batches of 10 or more read them
                // before and catch up: both paths race with the moves.
                let size = if b % 2 == 0 { 4 } else { 12 };
                let batch: Vec<(String, Vec<usize>)> = (0..size)
                    .map(|i| {
                        let first = rng.below(HUBS);
                        // One alert in 25 bridges two hubs' keys, so merges race with the moves too.
                        let hubs =
                            if rng.below(25) == 0 { vec![first, (first + 1) % HUBS] } else { vec![first] };
                        (format!("w{w}b{b}i{i}"), hubs)
                    })
                    .collect();
                ingest(&app, &t, batch, &keys).await;
            }
        }));
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut analysts = vec![];
    for w in 0..ANALYSTS {
        let (app, an, hubs, stop) = (app.clone(), an.clone(), hubs.clone(), stop.clone());
        analysts.push(tokio::spawn(async move {
            let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ (w as u64 + 7));
            let mut moves = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Every alert of a hub's incident (up to 100) leaves it: for a new incident, or for another
                // hub's. The emptied incident is redirected: a batch that read its carriers there just
                // before must find where they went.
                let hub = &hubs[rng.below(HUBS)];
                let got = app.ok(&an, ALERTS_OF, json!({ "id": hub })).await;
                let nodes =
                    got["alert"]["incident"]["alerts"]["nodes"].as_array().cloned().unwrap_or_default();
                let mut ids: Vec<Value> = nodes.iter().map(|n| n["id"].clone()).collect();
                if ids.is_empty() {
                    // Read while another analyst emptied it (the alert and its incident's list are two reads).
                    ids.push(json!(hub));
                }
                let resp = if rng.below(3) > 0 {
                    app.gql(Some(&an), CREATE, json!({ "ids": ids, "c": "moved by hand" })).await
                } else {
                    let other = &hubs[rng.below(HUBS)];
                    let to = app.ok(&an, ALERTS_OF, json!({ "id": other })).await["alert"]["incident"]["id"]
                        .clone();
                    app.gql(Some(&an), LINK, json!({ "i": to, "ids": ids, "c": "moved by hand" })).await
                };
                // A move may lose to a concurrent one: its target was just emptied and redirected
                // (`CONFLICT`), or other analysts kept moving the same alerts through all its retries
                // (`UNAVAILABLE`); nothing changes then.
                if let Some(code) = resp["errors"][0]["extensions"]["code"].as_str() {
                    assert!(code == "CONFLICT" || code == "UNAVAILABLE", "{resp}");
                } else {
                    moves += 1;
                }
            }
            moves
        }));
    }
    for task in tasks {
        task.await.expect("ingestor");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut moves = 0;
    for a in analysts {
        moves += a.await.expect("analyst");
    }
    assert!(moves > 10, "the analysts moved alerts only {moves} times: no race was tried");

    // A last alert of its own marks the end of the stream.
    let end = ingest(&app, &t, vec![("end".into(), vec![HUBS + 1])], &keys).await;
    let book = keys.lock().await.clone();
    let mut at: HashMap<String, String> = HashMap::new();
    let (mut joined, mut checked) = (0, 0);
    let mut history: Vec<(String, String, String)> = vec![];
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("the stream delivers every event")
            .expect("the stream stays open");
        let e = &ev["data"]["alertCorrelated"];
        let alert = e["alert"]["id"].as_str().expect("alert id").to_string();
        let incident = e["incident"]["id"].as_str().expect("incident id").to_string();
        let mine = book.get(&alert).cloned().unwrap_or_default();
        match e["kind"].as_str() {
            Some("JOINED") => {
                joined += 1;
                for k in e["matchedKeys"].as_array().expect("matchedKeys") {
                    let value = k["value"].as_str().expect("value");
                    let holder = at.iter().find(|(other, inc)| {
                        **other != alert
                            && **inc == incident
                            && book.get(*other).is_some_and(|ks| ks.contains(value))
                    });
                    assert!(
                        holder.is_some(),
                        "alert {alert} joined {incident} on {value}, which no alert there carried"
                    );
                    checked += 1;
                }
            }
            Some("NEW_INCIDENT") => {
                // Every incident holding an alert is open here (no alert is ever resolved), so any
                // carrier of one of its keys was a candidate it should have joined.
                let carrier = at.keys().find(|other| {
                    **other != alert && book.get(*other).is_some_and(|ks| !ks.is_disjoint(&mine))
                });
                if let Some(c) = carrier {
                    let trail: Vec<&(String, String, String)> =
                        history.iter().filter(|(a, _, i)| a == c || *i == at[c]).collect();
                    panic!(
                        "alert {alert} (keys {mine:?}) started incident {incident} though {c} ({:?}) was in {}; \
                         history of both: {trail:#?}",
                        book.get(c),
                        at[c]
                    );
                }
            }
            _ => {}
        }
        history.push((alert.clone(), e["kind"].as_str().unwrap_or_default().to_string(), incident.clone()));
        at.insert(alert.clone(), incident);
        if alert == end[0] {
            break;
        }
    }
    assert!(joined > 50 && checked >= joined, "joined {joined}, keys checked {checked}");
}
