//! The event hub: one LISTEN connection per process wakes it; it reads each tenant's new events once,
//! loads the objects they name once, and fans them out to that tenant's local subscribers through a
//! bounded broadcast channel. A timer re-polls in case a NOTIFY is missed.

use super::CHANNEL;
use crate::db::models::{Alert, Incident};
use crate::db::queries::events::{self as q, EventRow};
use crate::db::{Conn, Pool};
use crate::error::{AppError, AppResult};
use diesel_async::SimpleAsyncConnection;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, Mutex};

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
}

struct Feed {
    tx: broadcast::Sender<Arc<HubEvent>>,
    last: i64,
}

struct Inner {
    pool: Pool,
    feeds: Mutex<HashMap<String, Feed>>,
    started: AtomicBool,
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
        let mut feeds = self.inner.feeds.lock().await;
        if let Some(f) = feeds.get(tenant_id) {
            return Ok(f.tx.subscribe());
        }
        let mut conn = self.inner.pool.get().await?;
        let last = q::max_seq(&mut conn, tenant_id).await?;
        let (tx, rx) = broadcast::channel(BUFFER);
        feeds.insert(tenant_id.to_string(), Feed { tx, last });
        Ok(rx)
    }

    /// How many live subscribers this process holds for the tenant (for metrics and tests).
    pub async fn subscribers(&self, tenant_id: &str) -> usize {
        self.inner.feeds.lock().await.get(tenant_id).map_or(0, |f| f.tx.receiver_count())
    }

    /// Live subscribers of this process, over every tenant.
    pub async fn subscribers_total(&self) -> usize {
        self.inner.feeds.lock().await.values().map(|f| f.tx.receiver_count()).sum()
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
        let mut conn = diesel_async::pooled_connection::deadpool::Object::take(self.inner.pool.get().await?);
        conn.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        let mut notes = std::pin::pin!(conn.notifications_stream());
        let mut tick = tokio::time::interval(REPOLL);
        // Catch up with anything committed while no listener ran.
        self.poll_all().await?;
        loop {
            if Arc::strong_count(&self.inner) <= 1 {
                return Ok(());
            }
            tokio::select! {
                n = notes.next() => match n {
                    Some(Ok(n)) => self.poll(&n.payload).await?,
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(AppError::Internal("LISTEN connection closed".into())),
                },
                _ = tick.tick() => self.poll_all().await?,
            }
        }
    }

    async fn poll_all(&self) -> AppResult<()> {
        let tenants: Vec<String> = self.inner.feeds.lock().await.keys().cloned().collect();
        for t in tenants {
            self.poll(&t).await?;
        }
        Ok(())
    }

    /// Reads a tenant's new events and sends them to its subscribers; drops feeds nobody listens to.
    async fn poll(&self, tenant_id: &str) -> AppResult<()> {
        let mut feeds = self.inner.feeds.lock().await;
        let Some(feed) = feeds.get_mut(tenant_id) else { return Ok(()) };
        if feed.tx.receiver_count() == 0 {
            feeds.remove(tenant_id);
            return Ok(());
        }
        let mut conn = self.inner.pool.get().await?;
        loop {
            let batch = read(&mut conn, tenant_id, feed.last, PAGE).await?;
            let n = batch.len();
            for ev in batch {
                feed.last = ev.row.seq;
                // No receiver left is not an error: the feed is dropped on the next poll.
                let _ = feed.tx.send(ev);
            }
            if (n as i64) < PAGE {
                return Ok(());
            }
        }
    }
}

/// Reads up to `limit` events after `after` with the objects they name, loading each object once.
pub async fn read(conn: &mut Conn, tenant_id: &str, after: i64, limit: i64) -> AppResult<Vec<Arc<HubEvent>>> {
    let rows = q::after(conn, tenant_id, after, limit).await?;
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let mut alert_ids: Vec<_> = rows.iter().filter_map(|r| r.alert_id).collect();
    alert_ids.sort();
    alert_ids.dedup();
    let mut incident_ids: Vec<_> = rows.iter().filter_map(|r| r.incident_id).collect();
    incident_ids.sort();
    incident_ids.dedup();
    let alerts: HashMap<_, _> =
        q::load_alerts(conn, tenant_id, &alert_ids).await?.into_iter().map(|a| (a.id, a)).collect();
    let incidents: HashMap<_, _> =
        q::load_incidents(conn, tenant_id, &incident_ids).await?.into_iter().map(|i| (i.id, i)).collect();
    Ok(rows
        .into_iter()
        .map(|row| {
            let alert = row.alert_id.and_then(|id| alerts.get(&id).cloned());
            let incident = row.incident_id.and_then(|id| incidents.get(&id).cloned());
            Arc::new(HubEvent { row, alert, incident })
        })
        .collect())
}
