//! The event hub: one LISTEN connection per process wakes it; it reads each tenant's new events once,
//! loads the objects they name once, and fans them out to that tenant's local subscribers through a
//! bounded broadcast channel. A timer re-polls in case a NOTIFY is missed.

use super::CHANNEL;
use crate::db::models::{Action, Alert, Incident};
use crate::db::queries::events::{self as q, EventRow};
use crate::db::{Conn, Pool};
use crate::error::{AppError, AppResult};
use diesel_async::SimpleAsyncConnection;
use futures::FutureExt;
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::broadcast;

/// Events buffered per tenant for slow subscribers before they fall back to reading the table.
pub const BUFFER: usize = 1024;
const PAGE: i64 = 500;
const REPOLL: Duration = Duration::from_millis(500);

/// An event with the objects it names, as they were when the hub read it.
#[derive(Debug)]
pub struct HubEvent {
    /// The stored event.
    pub row: EventRow,
    /// The alert it names, if any.
    pub alert: Option<Alert>,
    /// The incident it names, if any.
    pub incident: Option<Incident>,
    /// The action it names, if any.
    pub action: Option<Action>,
}

struct Feed {
    tx: broadcast::Sender<Arc<HubEvent>>,
    last: i64,
}

struct Inner {
    pool: Pool,
    /// Held only for in-memory work, never across database I/O, so a slow poll never delays a new
    /// subscription or `/metrics`.
    feeds: Mutex<HashMap<String, Feed>>,
    started: AtomicBool,
}

impl Inner {
    fn feeds(&self) -> MutexGuard<'_, HashMap<String, Feed>> {
        // The map stays consistent whatever a panicking holder did: each entry is written whole.
        self.feeds.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The process's event hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
    /// A hub reading through `pool`; its listener starts with the first subscriber.
    pub fn new(pool: Pool) -> Self {
        Self { inner: Arc::new(Inner { pool, feeds: Mutex::default(), started: AtomicBool::new(false) }) }
    }

    /// Subscribes to a tenant's live events. Events already committed before this call are the
    /// caller's to replay from the table.
    pub async fn subscribe(&self, tenant_id: &str) -> AppResult<broadcast::Receiver<Arc<HubEvent>>> {
        self.start();
        if let Some(rx) = self.inner.feeds().get(tenant_id).map(|f| f.tx.subscribe()) {
            return Ok(rx);
        }
        let last = {
            let mut conn = self.inner.pool.get().await?;
            q::max_seq(&mut conn, tenant_id).await?
        };
        // Another subscriber may have made the feed meanwhile; its position is as good as ours, since
        // events up to either were committed before this call returns.
        let mut feeds = self.inner.feeds();
        let feed = feeds
            .entry(tenant_id.to_string())
            .or_insert_with(|| Feed { tx: broadcast::channel(BUFFER).0, last });
        Ok(feed.tx.subscribe())
    }

    /// How many live subscribers this process holds for the tenant (for metrics and tests).
    pub async fn subscribers(&self, tenant_id: &str) -> usize {
        self.inner.feeds().get(tenant_id).map_or(0, |f| f.tx.receiver_count())
    }

    /// Live subscribers of this process, over every tenant.
    pub async fn subscribers_total(&self) -> usize {
        self.inner.feeds().values().map(|f| f.tx.receiver_count()).sum()
    }

    /// Tenants this process holds a feed for (for metrics and tests).
    pub async fn tenants(&self) -> usize {
        self.inner.feeds().len()
    }

    fn start(&self) {
        if self.inner.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Some(strong) = inner.upgrade() else { return };
                let hub = Hub { inner: strong };
                if let Err(e) = hub.listen().await {
                    tracing::warn!(error = ?e, "event listener stopped; reconnecting");
                }
                drop(hub);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// Runs until the LISTEN connection fails or the hub is dropped by everyone else.
    async fn listen(&self) -> AppResult<()> {
        // A dedicated connection: taken out of the pool for good, because it keeps LISTEN state.
        let mut conn = self.inner.pool.get().await?.detach();
        conn.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        let mut notes = std::pin::pin!(conn.notifications_stream());
        let mut tick = tokio::time::interval(REPOLL);
        // Catch up with anything committed while no listener ran.
        self.poll(None).await?;
        loop {
            if Arc::strong_count(&self.inner) <= 1 {
                return Ok(());
            }
            tokio::select! {
                n = notes.next() => {
                    let mut woken = HashSet::new();
                    match n {
                        Some(Ok(n)) => woken.insert(n.payload),
                        Some(Err(e)) => return Err(e.into()),
                        None => return Err(AppError::Internal("LISTEN connection closed".into())),
                    };
                    // Notifications that arrived meanwhile are served by the same read.
                    while let Some(more) = notes.next().now_or_never() {
                        match more {
                            Some(Ok(n)) => woken.insert(n.payload),
                            Some(Err(e)) => return Err(e.into()),
                            None => return Err(AppError::Internal("LISTEN connection closed".into())),
                        };
                    }
                    self.poll(Some(&woken)).await?;
                }
                _ = tick.tick() => self.poll(None).await?,
            }
        }
    }

    /// Reads the new events of every tenant with live subscribers (or of those in `only`) in one
    /// statement per page, and sends each to its tenant's subscribers; drops feeds nobody listens to.
    async fn poll(&self, only: Option<&HashSet<String>>) -> AppResult<()> {
        let mut due: Vec<(String, i64)> = {
            let mut feeds = self.inner.feeds();
            feeds.retain(|_, f| f.tx.receiver_count() > 0);
            feeds
                .iter()
                .filter(|(t, _)| only.is_none_or(|o| o.contains(*t)))
                .map(|(t, f)| (t.clone(), f.last))
                .collect()
        };
        if due.is_empty() {
            return Ok(());
        }
        let mut conn = self.inner.pool.get().await?;
        while !due.is_empty() {
            let batch = read_many(&mut conn, &due, PAGE).await?;
            let mut counts: HashMap<&str, i64> = HashMap::new();
            let mut feeds = self.inner.feeds();
            for ev in &batch {
                *counts.entry(ev.row.tenant_id.as_str()).or_default() += 1;
                // A feed dropped and made again meanwhile starts past what we read: never send twice.
                if let Some(feed) = feeds.get_mut(&ev.row.tenant_id) {
                    if ev.row.seq > feed.last {
                        feed.last = ev.row.seq;
                        // No receiver left is not an error: the feed is dropped on the next poll.
                        let _ = feed.tx.send(ev.clone());
                    }
                }
            }
            // Tenants that filled a page have more to read; the rest are done.
            due = due
                .into_iter()
                .filter(|(t, _)| counts.get(t.as_str()).is_some_and(|n| *n >= PAGE))
                .filter_map(|(t, _)| {
                    let last = feeds.get(&t)?.last;
                    Some((t, last))
                })
                .collect();
        }
        Ok(())
    }
}

/// Reads up to `limit` events after `after` with the objects they name, loading each object once.
pub async fn read(conn: &mut Conn, tenant_id: &str, after: i64, limit: i64) -> AppResult<Vec<Arc<HubEvent>>> {
    read_many(conn, &[(tenant_id.to_string(), after)], limit).await
}

/// Reads, for each `(tenant, after)`, up to `limit` of the tenant's events after `after`, with the
/// objects they name: four statements whatever the number of tenants.
async fn read_many(conn: &mut Conn, due: &[(String, i64)], limit: i64) -> AppResult<Vec<Arc<HubEvent>>> {
    let rows = q::after_many(conn, due, limit).await?;
    attach(conn, rows).await
}

/// Loads the alerts, incidents and actions `rows` name, each once, and pairs them with their events. An object
/// is matched by tenant and id, so an event never carries another tenant's row.
async fn attach(conn: &mut Conn, rows: Vec<EventRow>) -> AppResult<Vec<Arc<HubEvent>>> {
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let mut tenants: Vec<&str> = rows.iter().map(|r| r.tenant_id.as_str()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let mut alert_ids: Vec<_> = rows.iter().filter_map(|r| r.alert_id).collect();
    alert_ids.sort_unstable();
    alert_ids.dedup();
    let mut incident_ids: Vec<_> = rows.iter().filter_map(|r| r.incident_id).collect();
    incident_ids.sort_unstable();
    incident_ids.dedup();
    let alerts: HashMap<_, _> = q::load_alerts(conn, &tenants, &alert_ids)
        .await?
        .into_iter()
        .map(|a| ((a.tenant_id.clone(), a.id), a))
        .collect();
    let incidents: HashMap<_, _> = q::load_incidents(conn, &tenants, &incident_ids)
        .await?
        .into_iter()
        .map(|i| ((i.tenant_id.clone(), i.id), i))
        .collect();
    let mut action_ids: Vec<_> = rows.iter().filter_map(|r| r.action_id).collect();
    action_ids.sort_unstable();
    action_ids.dedup();
    let actions: HashMap<_, _> = q::load_actions(conn, &tenants, &action_ids)
        .await?
        .into_iter()
        .map(|a| ((a.tenant_id.clone(), a.id), a))
        .collect();
    Ok(rows
        .into_iter()
        .map(|row| {
            let alert = row.alert_id.and_then(|id| alerts.get(&(row.tenant_id.clone(), id)).cloned());
            let incident =
                row.incident_id.and_then(|id| incidents.get(&(row.tenant_id.clone(), id)).cloned());
            let action = row.action_id.and_then(|id| actions.get(&(row.tenant_id.clone(), id)).cloned());
            Arc::new(HubEvent { row, alert, incident, action })
        })
        .collect())
}
