//! The connection pool: bounded waits, no round trip per checkout, and connections that a request
//! abandoned at its deadline closed rather than lent to the next caller.

use diesel_async::pooled_connection::deadpool::{Object, Pool as DeadPool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolableConnection, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures::FutureExt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Most connections held at once.
    pub max_size: usize,
    /// Longest a statement may run before PostgreSQL cancels it.
    pub statement_timeout_ms: u64,
    /// Longest a caller waits for a connection (a free one, or a new one being opened) before it
    /// gets `UNAVAILABLE`.
    pub wait_timeout_ms: u64,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self { max_size: 16, statement_timeout_ms: 30_000, wait_timeout_ms: 5_000 }
    }
}

/// The connection pool shared by resolvers and workers; cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: DeadPool<AsyncPgConnection>,
}

/// A connection taken from the pool; it goes back when dropped, unless it is broken (a transaction
/// left open, a closed socket) or was dropped while its request was being abandoned (a statement may
/// still be running on it): such a connection is closed, which makes PostgreSQL roll back whatever it
/// had not committed.
pub struct PooledConn {
    obj: Option<Object<AsyncPgConnection>>,
}

impl Pool {
    /// A connection, waiting at most the pool's wait timeout.
    pub async fn get(&self) -> Result<PooledConn, PoolError> {
        Ok(PooledConn { obj: Some(self.inner.get().await?) })
    }

    /// The pool's current size, idle connections and waiters (for metrics).
    pub fn status(&self) -> deadpool::Status {
        self.inner.status()
    }
}

impl PooledConn {
    /// Takes the connection out of the pool for good: for session state that must not be lent to
    /// anyone else (LISTEN, a session lock), and ends with the connection.
    pub fn detach(mut self) -> AsyncPgConnection {
        match self.obj.take() {
            Some(obj) => Object::take(obj),
            // Unreachable: `obj` is only ever taken here and in `drop`, both by value.
            None => unreachable_connection(),
        }
    }
}

#[cold]
fn unreachable_connection() -> ! {
    panic!("a pooled connection was used after it was given back")
}

impl Deref for PooledConn {
    type Target = AsyncPgConnection;
    fn deref(&self) -> &AsyncPgConnection {
        match &self.obj {
            Some(obj) => obj,
            None => unreachable_connection(),
        }
    }
}

impl DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        match &mut self.obj {
            Some(obj) => obj,
            None => unreachable_connection(),
        }
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        let Some(mut obj) = self.obj.take() else { return };
        let abandoned = ABANDONING.try_with(|flag| flag.load(Ordering::Relaxed)).unwrap_or(false);
        if abandoned || obj.is_broken() {
            // Closing now, not at the next checkout, ends the server-side transaction at once.
            drop(Object::take(obj));
        }
    }
}

tokio::task_local! {
    static ABANDONING: Arc<AtomicBool>;
}

/// Runs `work` until `deadline`; past it, drops the work and closes every connection it was holding
/// (`None`). For a request's deadline: the client has been told, and nothing half-done may go on.
pub async fn abandoning<F: Future>(deadline: tokio::time::Instant, work: F) -> Option<F::Output> {
    let flag = Arc::new(AtomicBool::new(false));
    let work = std::pin::pin!(ABANDONING.scope(flag.clone(), work));
    let mut work = work;
    tokio::select! {
        out = &mut work => Some(out),
        _ = tokio::time::sleep_until(deadline) => {
            flag.store(true, Ordering::Relaxed);
            // `work` is dropped on return, inside its task-local scope, with the flag raised.
            None
        }
    }
}

/// Builds the pool. Every new connection gets the statement timeout, and asks PostgreSQL to check
/// during long statements that the client is still there, so a statement whose connection was closed
/// stops within a second instead of running to its end.
///
/// A connection is lent again without a round trip (`RecyclingMethod::Fast`): one that died meanwhile
/// fails on its first statement, which callers classify as transient, and the pool drops it.
pub fn build_pool(url: &str, settings: &PoolSettings) -> anyhow::Result<Pool> {
    let setup = format!(
        "SET statement_timeout = {}; \
         DO $$ BEGIN PERFORM set_config('client_connection_check_interval', '1000', false); \
         EXCEPTION WHEN undefined_object THEN NULL; END $$",
        settings.statement_timeout_ms
    );
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |url| {
        let url = url.to_string();
        let setup = setup.clone();
        async move {
            let mut conn = AsyncPgConnection::establish(&url).await?;
            conn.batch_execute(&setup).await.map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::new_with_config(url, config);
    let wait = Some(Duration::from_millis(settings.wait_timeout_ms.max(1)));
    let inner = DeadPool::builder(manager)
        .max_size(settings.max_size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(wait)
        .create_timeout(wait)
        .recycle_timeout(wait)
        .build()?;
    Ok(Pool { inner })
}
