//! How a transaction that collided with another (deadlock, serialisation failure, a row moved between
//! reading and locking) or lost its connection is tried again: how often, and how long to wait between.

/// How often such a transaction is tried in all before the client gets `UNAVAILABLE`.
pub const ATTEMPTS: usize = 5;

/// Waits a little before attempt `attempt + 1`, longer each time and never the same for two clients, so
/// transactions that collided do not collide again at once.
pub async fn backoff(attempt: usize) {
    let base = 20 * u64::try_from(attempt).unwrap_or(1);
    let jitter = rand::random::<u64>() % base.max(1);
    tokio::time::sleep(std::time::Duration::from_millis(base + jitter)).await;
}
