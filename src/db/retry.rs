//! How a transaction that collided with another (deadlock, serialisation failure, a row moved between
//! reading and locking) or lost its connection is tried again: how often, how long to wait between, and
//! the one loop that does it ([`retry_transient`]).

use super::{Conn, Pool};
use crate::error::{AppError, AppResult};
use std::future::Future;

/// How often such a transaction is tried in all before the client gets `UNAVAILABLE`.
pub const ATTEMPTS: usize = 5;

/// Waits a little before attempt `attempt + 1`, longer each time and never the same for two clients, so
/// transactions that collided do not collide again at once.
pub async fn backoff(attempt: usize) {
    let base = 20 * u64::try_from(attempt).unwrap_or(1);
    let jitter = rand::random::<u64>() % base.max(1);
    tokio::time::sleep(std::time::Duration::from_millis(base + jitter)).await;
}

/// One attempt of [`retry_transient`]: an async closure given the attempt's connection. Its future must
/// be `Send` (resolvers run on a multi-threaded runtime); naming the future through `FnOnce`'s output is
/// how that can be required of an async closure (diesel-async's `transaction` does the same).
pub trait Attempt<'c, T>:
    AsyncFnOnce(&'c mut Conn) -> AppResult<T> + FnOnce(&'c mut Conn) -> <Self as Attempt<'c, T>>::Fut
{
    /// The future one attempt runs.
    type Fut: Future<Output = AppResult<T>> + Send;
}

impl<'c, T, F, Fut> Attempt<'c, T> for F
where
    F: AsyncFnOnce(&'c mut Conn) -> AppResult<T> + FnOnce(&'c mut Conn) -> Fut,
    Fut: Future<Output = AppResult<T>> + Send,
{
    type Fut = Fut;
}

/// Runs `attempt` until it succeeds, fails with an error other than `Transient`, or has run `ATTEMPTS`
/// times, each time on a connection freshly taken from `pool`, waiting [`backoff`] between tries. `what`
/// names the work in the log. Returns the last outcome: after the last try, the `Transient` error itself,
/// for the caller to report as it sees fit.
///
/// `Transient` is a collision (deadlock, serialisation failure, a row moved between reading and
/// locking): PostgreSQL rolled the attempt back, so running it again is as if it had run once. A lost
/// connection (`ConnectionLost`) is not retried here: it may have struck during `COMMIT`, and the work may
/// have been done; see [`retry_idempotent`] for work that is harmless to repeat.
pub async fn retry_transient<T, A>(pool: &Pool, what: &str, attempt: A) -> AppResult<T>
where
    A: for<'c> Attempt<'c, T> + Clone + Send,
{
    retry(pool, what, false, attempt).await
}

/// [`retry_transient`], also retrying a lost connection (whose last attempt's outcome is unknown), for
/// work that changes nothing when it runs again after it committed (an ingest batch: re-sending is
/// idempotent). Returns the last `Transient` or `ConnectionLost` error after the last try.
pub async fn retry_idempotent<T, A>(pool: &Pool, what: &str, attempt: A) -> AppResult<T>
where
    A: for<'c> Attempt<'c, T> + Clone + Send,
{
    retry(pool, what, true, attempt).await
}

async fn retry<T, A>(pool: &Pool, what: &str, lost_too: bool, attempt: A) -> AppResult<T>
where
    A: for<'c> Attempt<'c, T> + Clone + Send,
{
    let mut tries = 0;
    loop {
        tries += 1;
        let mut conn = pool.get().await?;
        match attempt.clone()(&mut conn).await {
            Err(AppError::Transient(detail)) if tries < ATTEMPTS => {
                tracing::warn!(attempt = tries, %detail, "{what} collided; retrying");
                backoff(tries).await;
            }
            Err(AppError::ConnectionLost(detail)) if lost_too && tries < ATTEMPTS => {
                tracing::warn!(attempt = tries, %detail, "{what} lost its connection; retrying");
                backoff(tries).await;
            }
            other => return other,
        }
    }
}
