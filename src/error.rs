//! Errors the domain can return, and how they reach a client: a message and an `extensions.code`,
//! with internal detail logged once and never sent.

use async_graphql::ErrorExtensions;

/// An error from a domain service or the database layer.
///
/// Deliberately not `Display`: async-graphql converts any `Display` type into an error that carries its
/// text to the client, which would leak internal detail. Without it, `?` in a resolver goes through our
/// `From<AppError>` below, which sets `extensions.code` and masks `Internal`.
#[derive(Debug, Clone)]
pub enum AppError {
    /// No or invalid credentials.
    Unauthenticated(String),
    /// The caller's roles do not allow this.
    Forbidden(String),
    /// The object does not exist in the caller's tenant.
    NotFound(String),
    /// The input breaks a rule; the message says which.
    BadInput(String),
    /// The object changed meanwhile (optimistic concurrency) or a state rule refuses the change.
    Conflict(String),
    /// Anything else: database failures, bugs. The detail is logged, never sent.
    Internal(String),
    /// The transaction collided with another (deadlock, serialisation failure): PostgreSQL rolled it
    /// back, so it is safe to run again, and retried where the operation allows; what still fails reaches
    /// the client as `UNAVAILABLE`. The detail is logged, never sent.
    Transient(String),
    /// The connection to the database was lost mid-way. If that happened while `COMMIT` was under way,
    /// the change may have been made: only work that is harmless to repeat (an ingest batch) is retried;
    /// anything else reaches the client as `UNAVAILABLE`, told to look before repeating. The detail is
    /// logged, never sent.
    ConnectionLost(String),
    /// The database could not serve the request now (no connection within the pool's wait, a statement
    /// timeout, the server starting or stopping): `UNAVAILABLE`, with this message, which holds no
    /// internal detail.
    Unavailable(String),
}

/// Result of a domain operation.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// The `extensions.code` a client sees.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::BadInput(_) => "BAD_USER_INPUT",
            AppError::Conflict(_) => "CONFLICT",
            AppError::Internal(_) => "INTERNAL",
            AppError::Transient(_) | AppError::ConnectionLost(_) | AppError::Unavailable(_) => "UNAVAILABLE",
        }
    }

    /// The message a client may see (`Internal` is masked).
    pub fn public_message(&self) -> String {
        match self {
            AppError::Unauthenticated(m)
            | AppError::Forbidden(m)
            | AppError::NotFound(m)
            | AppError::BadInput(m)
            | AppError::Conflict(m)
            | AppError::Unavailable(m) => m.clone(),
            AppError::Internal(_) => "internal server error".to_string(),
            AppError::Transient(_) => {
                "the database was busy (a conflicting change); nothing was changed: retry the request"
                    .to_string()
            }
            AppError::ConnectionLost(_) => {
                "the connection to the database was lost; a change may or may not have been made, so read \
                 what the request changes before repeating it"
                    .to_string()
            }
        }
    }

    /// Shorthand for a `BAD_USER_INPUT` error.
    pub fn bad(msg: impl Into<String>) -> Self {
        AppError::BadInput(msg.into())
    }

    /// Shorthand for a `NOT_FOUND` error naming what was missing.
    pub fn not_found(what: &str) -> Self {
        AppError::NotFound(format!("{what} not found"))
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        let detail = format!("database: {e}");
        match &e {
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => AppError::Transient(detail),
            Error::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection,
                _,
            )
            | Error::BrokenTransactionManager => AppError::ConnectionLost(detail),
            Error::DatabaseError(_, info) => match transient_kind(info.message()) {
                Some(Busy::Retry) => AppError::Transient(detail),
                Some(Busy::Lost) => AppError::ConnectionLost(detail),
                Some(Busy::Refuse(message)) => {
                    tracing::warn!(error = %detail, "database unavailable");
                    AppError::Unavailable(message.to_string())
                }
                None => AppError::Internal(detail),
            },
            _ => AppError::Internal(detail),
        }
    }
}

/// How a busy or unreachable database is answered.
enum Busy {
    /// Rolled back: run the transaction again.
    Retry,
    /// The connection went away: rolled back, unless it happened during `COMMIT`.
    Lost,
    /// Not worth retrying at once: tell the client, with this message.
    Refuse(&'static str),
}

/// Recognises PostgreSQL's transient failures by their message (the driver passes no SQLSTATE on).
fn transient_kind(message: &str) -> Option<Busy> {
    // A row moved to another partition under a concurrent update (a learned copy given its real receive
    // time) is a collision like the others: rolled back, and a new attempt finds the row where it is.
    const RETRY: [&str; 4] = [
        "deadlock detected",
        "could not serialize access",
        "out of shared memory",
        "moved to another partition",
    ];
    if RETRY.iter().any(|m| message.contains(m)) {
        return Some(Busy::Retry);
    }
    const LOST: [&str; 3] = ["terminating connection", "server closed the connection", "connection reset"];
    if LOST.iter().any(|m| message.contains(m)) {
        return Some(Busy::Lost);
    }
    if message.contains("canceling statement due to") {
        return Some(Busy::Refuse(
            "the database did not answer in time; nothing was changed: retry the request later",
        ));
    }
    const DOWN: [&str; 4] = [
        "the database system is starting up",
        "the database system is shutting down",
        "the database system is in recovery mode",
        "too many connections",
    ];
    if DOWN.iter().any(|m| message.contains(m)) {
        return Some(Busy::Refuse("the database is not available right now; retry the request later"));
    }
    None
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for AppError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        use diesel_async::pooled_connection::deadpool::PoolError;
        match e {
            PoolError::Timeout(_) | PoolError::Backend(_) | PoolError::Closed => {
                tracing::warn!(error = %e, "no database connection");
                AppError::Unavailable(
                    "the database is not available right now (no connection could be had); retry the \
                     request later"
                        .into(),
                )
            }
            other => AppError::Internal(format!("database pool: {other}")),
        }
    }
}

impl From<serde_json::Error> for AppError {
    fn from(e: serde_json::Error) -> Self {
        AppError::Internal(format!("json: {e}"))
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(e: AppError) -> Self {
        let code = e.code();
        match &e {
            AppError::Internal(detail) => tracing::error!(error = %detail, "internal error"),
            AppError::Transient(detail) => tracing::warn!(error = %detail, "database busy after retries"),
            AppError::ConnectionLost(detail) => tracing::warn!(error = %detail, "database connection lost"),
            _ => {}
        }
        let message = e.public_message();
        async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code))
    }
}

/// Result type of resolvers.
pub type GqlResult<T> = async_graphql::Result<T>;
