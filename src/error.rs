//! The one error type of the use cases. The transport turns it into a gRPC
//! status in `grpc::status`; nothing else decides codes.

use sea_orm::{DbErr, RuntimeErr, sqlx};

use crate::domain::InviteError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule refused the request: the caller can act on it.
    #[error(transparent)]
    Rule(#[from] InviteError),
    /// The database gave up on this transaction to let a concurrent one
    /// through (a deadlock or serialization failure): retry.
    #[error("a concurrent change got in the way: {0}")]
    Conflict(String),
    /// The database cannot be reached (or is not migrated yet): retry later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Past a bound that protects the service (too much waiting work):
    /// retry shortly.
    #[error("{message}")]
    Overloaded {
        message: &'static str,
        reason: &'static str,
    },
    /// The caller made too many calls of a kind: retry after the delay.
    #[error("rate limit reached: retry in {retry_after:?}")]
    RateLimited { retry_after: std::time::Duration },
    /// A bug or a broken invariant. Logged with its cause, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The same failure for each caller of a group that failed together:
    /// same kind, so the same gRPC code; an internal cause as its text.
    pub fn shared(&self) -> Self {
        match self {
            Self::Rule(err) => Self::Rule(err.clone()),
            Self::Conflict(why) => Self::Conflict(why.clone()),
            Self::Unavailable(why) => Self::Unavailable(why.clone()),
            Self::Overloaded { message, reason } => Self::Overloaded { message, reason },
            Self::RateLimited { retry_after } => Self::RateLimited {
                retry_after: *retry_after,
            },
            Self::Internal(err) => Self::Internal(anyhow::anyhow!("{err:#}")),
        }
    }
}

impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        if is_unreachable(&err) {
            Self::Unavailable(err.to_string())
        } else if is_conflict(&err) {
            Self::Conflict(err.to_string())
        } else {
            Self::Internal(anyhow::Error::new(err).context("database query failed"))
        }
    }
}

/// Whether the database is down or unreachable, rather than the query wrong.
fn is_unreachable(err: &DbErr) -> bool {
    let sqlx_err = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match sqlx_err.as_ref() {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL shutting down or refusing: admin_shutdown, crash_shutdown,
        // cannot_connect_now, too_many_connections.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")),
        _ => false,
    }
}

/// PostgreSQL's deadlock_detected and serialization_failure.
fn is_conflict(err: &DbErr) -> bool {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            matches!(e.as_ref(), sqlx::Error::Database(db)
                if db.code().is_some_and(|code| matches!(code.as_ref(), "40P01" | "40001")))
        }
        _ => false,
    }
}
