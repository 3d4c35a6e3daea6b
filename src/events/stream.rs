//! One subscriber's stream: replay from the table after a cursor, then live events from the hub, with
//! no gap and no duplicate in between; a subscriber that falls behind the hub's buffer catches up from
//! the table instead of growing memory. A cursor older than the retention window (below the tenant's
//! pruned watermark, see [`super::retention`]) is refused: the events after it are gone.

use super::hub::{read, Hub, HubEvent};
use crate::db::queries::events as q;
use crate::db::Pool;
use crate::error::{AppError, AppResult};
use futures::Stream;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::broadcast::{error::RecvError, Receiver};

const REPLAY_PAGE: i64 = 200;

/// The error for a cursor whose following events have been pruned.
pub fn cursor_expired() -> AppError {
    AppError::bad(
        "the `after` cursor has expired: events after it are older than the event retention window and \
         have been deleted, so resuming from it would miss some. Reload the data you show, then \
         subscribe again without `after`",
    )
}

struct State {
    pool: Pool,
    tenant_id: String,
    rx: Receiver<Arc<HubEvent>>,
    last: i64,
    replaying: bool,
    backlog: VecDeque<Arc<HubEvent>>,
}

/// The tenant's events after `after` (or from now when `None`), in order, until an error, which is the
/// stream's last item.
pub async fn events(
    hub: &Hub,
    pool: &Pool,
    tenant_id: &str,
    after: Option<i64>,
) -> AppResult<impl Stream<Item = AppResult<Arc<HubEvent>>> + Send + 'static> {
    // Subscribe before reading the position, so nothing committed in between is lost.
    let rx = hub.subscribe(tenant_id).await?;
    let (last, replaying) = match after {
        Some(seq) => {
            // At the watermark is fine: the client saw event W, and nothing after W was pruned.
            let mut conn = pool.get().await?;
            if seq < q::watermark(&mut conn, tenant_id).await? {
                return Err(cursor_expired());
            }
            (seq, true)
        }
        None => {
            let mut conn = pool.get().await?;
            (q::max_seq(&mut conn, tenant_id).await?, false)
        }
    };
    let state = State {
        pool: pool.clone(),
        tenant_id: tenant_id.to_string(),
        rx,
        last,
        replaying,
        backlog: VecDeque::new(),
    };
    Ok(futures::stream::unfold(Some(state), |s| async move {
        let mut s = s?;
        match next(&mut s).await {
            Ok(ev) => Some((Ok(ev), Some(s))),
            Err(e) => Some((Err(e), None)),
        }
    }))
}

async fn next(s: &mut State) -> AppResult<Arc<HubEvent>> {
    loop {
        if let Some(ev) = s.backlog.pop_front() {
            if ev.row.seq > s.last {
                s.last = ev.row.seq;
                return Ok(ev);
            }
            continue;
        }
        if s.replaying {
            let mut conn = s.pool.get().await?;
            let page = read(&mut conn, &s.tenant_id, s.last, REPLAY_PAGE).await?;
            // Pruning raises the watermark before it deletes: read after the page, a watermark above
            // our position means events we had not delivered may be missing from the page.
            if q::watermark(&mut conn, &s.tenant_id).await? > s.last {
                return Err(cursor_expired());
            }
            if page.is_empty() {
                s.replaying = false;
            } else {
                s.backlog.extend(page);
            }
            continue;
        }
        match s.rx.recv().await {
            Ok(ev) if ev.row.seq > s.last => {
                s.last = ev.row.seq;
                return Ok(ev);
            }
            Ok(_) => continue,
            Err(RecvError::Lagged(_)) => s.replaying = true,
            Err(RecvError::Closed) => return Err(AppError::Internal("event hub closed".into())),
        }
    }
}
