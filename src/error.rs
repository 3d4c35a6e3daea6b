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
    /// The transaction collided with another (deadlock, serialisation failure): safe to retry.
    Transient(String),
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
            AppError::Internal(_) | AppError::Transient(_) => "INTERNAL",
        }
    }

    /// The message a client may see (`Internal` is masked).
    pub fn public_message(&self) -> String {
        match self {
            AppError::Unauthenticated(m)
            | AppError::Forbidden(m)
            | AppError::NotFound(m)
            | AppError::BadInput(m)
            | AppError::Conflict(m) => m.clone(),
            AppError::Internal(_) => "internal server error".to_string(),
            AppError::Transient(_) => "the server is busy; retry the request".to_string(),
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
        match &e {
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                AppError::Transient(format!("database: {e}"))
            }
            Error::DatabaseError(_, info) if info.message().contains("deadlock detected") => {
                AppError::Transient(format!("database: {e}"))
            }
            _ => AppError::Internal(format!("database: {e}")),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for AppError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        AppError::Internal(format!("database pool: {e}"))
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
        if let AppError::Internal(detail) | AppError::Transient(detail) = &e {
            tracing::error!(error = %detail, "internal error");
        }
        let message = e.public_message();
        async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code))
    }
}

/// Result type of resolvers.
pub type GqlResult<T> = async_graphql::Result<T>;
