//! Persistence through sea-orm: the same code on PostgreSQL and SQLite.

mod callers;
mod duplicates;
pub mod entities;
mod event_log;
mod events;
mod idempotency;
mod invites;
mod locks;
mod nodelay;
mod retention;
mod rows;

use std::{
    path::{Path, PathBuf},
    str::FromStr as _,
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnAcquireErr, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, Statement, TransactionTrait,
    sqlx::sqlite::SqliteJournalMode,
};
use tokio::sync::watch;

pub use callers::{caller_record, forget_passcode_failures, save_passcode_failures};
pub use duplicates::{lock_pending_duplicate, pending_duplicates};
pub use event_log::{
    LogFilter, LoggedEvent, log_head, newest_logged_invite, read_log, sequence_batch,
    try_lead_sequencer,
};
pub use events::{
    NewEvent, OutboxBacklog, StoredEvent, enqueue_event, enqueue_events, invite_history,
    latest_event, mark_published, outbox_backlog, try_lead_relay, unpublished_heads,
};
pub use idempotency::{
    StoredAnswer, claim_answer, find_answer, forget_answers_before, record_answer,
};
pub use invites::{
    Lookup, claim_expired, delete_invite, find_invite, list_invites, lock_invite, lock_invites,
    read_invite, record_redemption, record_redemptions, redemptions_of, replace_token, save_invite,
    save_invites, try_insert_invite, try_insert_invites,
};
pub use retention::{
    claim_retired, claim_retired_histories, delete_histories, delete_invites, try_lead_retention,
    with_unpublished_events,
};

use crate::error::{Error, Result};

/// The advisory lock migrations hold: "invmigr" in ASCII, apart from the
/// relay's.
const MIGRATION_LOCK_KEY: i64 = 0x0069_6e76_6d69_6772;

struct PoolFigures {
    size: u32,
    idle: usize,
    max: u32,
}

/// The database pool's bounds.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Connections at most (PostgreSQL; SQLite always has one).
    pub size: u32,
    /// How long a call waits for a free connection.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            size: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// A database handle that refuses work until the schema is migrated, so that
/// a service started before its database answers UNAVAILABLE, not INTERNAL.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    migrated: Arc<watch::Sender<bool>>,
}

impl Store {
    /// Builds the pool without connecting: the service starts (and reports
    /// NOT_SERVING) while the database is down. A SQLite file's folder is
    /// created here, as `mode=rwc` creates only the file.
    pub async fn open(url: &str, pool: PoolSettings) -> anyhow::Result<Self> {
        let mut options = ConnectOptions::new(url);
        options
            .connect_lazy(true)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(pool.acquire_timeout)
            // Each statement at debug (RUST_LOG=sqlx=debug), never above.
            .sqlx_logging(true)
            .sqlx_logging_level(log::LevelFilter::Debug);
        if let Some(path) = sqlite_path(url) {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create the folder {}", dir.display()))?;
            }
            // One connection: SQLite serialises writers anyway, and a single
            // connection turns what would be SQLITE_BUSY failures under
            // concurrent transactions into an orderly queue.
            options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .map_sqlx_sqlite_opts(|opts| {
                    opts.journal_mode(SqliteJournalMode::Wal)
                        .foreign_keys(true)
                        .busy_timeout(Duration::from_secs(5))
                });
        } else {
            let port = sea_orm::sqlx::postgres::PgConnectOptions::from_str(url)
                .map_or(5432, |opts| opts.get_port());
            options
                .max_connections(pool.size)
                .map_sqlx_postgres_pool_opts(move |opts| {
                    opts.after_connect(move |_, _| {
                        Box::pin(async move {
                            nodelay::disable_towards(port);
                            Ok(())
                        })
                    })
                });
        }
        let db = Database::connect(options).await?;
        Ok(Self {
            db,
            migrated: Arc::new(watch::Sender::new(false)),
        })
    }

    /// Applies the pending migrations; a migrated database is left as it is.
    /// On PostgreSQL the migrations run in one transaction holding an
    /// advisory lock, so replicas starting together migrate one at a time
    /// (the others then find nothing to do) instead of colliding.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        if self.backend() == DbBackend::Postgres {
            let txn = self.db.begin().await.context("migrations: no database")?;
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [MIGRATION_LOCK_KEY.into()],
            ))
            .await
            .context("migrations: waiting for another replica's")?;
            Migrator::up(&txn, None)
                .await
                .context("migrations failed")?;
            txn.commit().await.context("migrations failed")?;
        } else {
            Migrator::up(&self.db, None)
                .await
                .context("migrations failed")?;
        }
        self.migrated.send_replace(true);
        Ok(())
    }

    /// Resolves once the schema is migrated: background work waits for it.
    pub async fn migrated(&self) {
        let mut ready = self.migrated.subscribe();
        let _ = ready.wait_for(|migrated| *migrated).await;
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Whether the database answers and is migrated: what health reports.
    pub async fn is_healthy(&self) -> bool {
        if !*self.migrated.borrow() {
            return false;
        }
        match self.db.ping().await {
            Ok(()) => true,
            // Every connection busy with a long transaction is a queue, not
            // an outage (calls past the acquire timeout answer UNAVAILABLE).
            Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)) => self.pool_is_saturated(),
            Err(_) => false,
        }
    }

    /// Whether every connection the pool may hold is open and checked out.
    /// The database accepted each of them, so it is busy, not down; a pool
    /// that timed out short of its maximum could not open one: that is down.
    /// A connection lost while in use is dropped from the pool, so a
    /// database that dies under load shows here as soon as its calls fail.
    fn pool_is_saturated(&self) -> bool {
        self.pool_figures()
            .is_some_and(|pool| pool.idle == 0 && pool.size >= pool.max)
    }

    /// Connections open in the pool: `(in use, idle)`.
    pub fn pool_usage(&self) -> (u32, u32) {
        self.pool_figures().map_or((0, 0), |pool| {
            let idle = u32::try_from(pool.idle).unwrap_or(u32::MAX);
            (pool.size.saturating_sub(idle), idle)
        })
    }

    fn pool_figures(&self) -> Option<PoolFigures> {
        macro_rules! figures {
            ($pool:expr) => {{
                let pool = $pool;
                PoolFigures {
                    size: pool.size(),
                    idle: pool.num_idle(),
                    max: pool.options().get_max_connections(),
                }
            }};
        }
        match self.backend() {
            DbBackend::Postgres => Some(figures!(self.db.get_postgres_connection_pool())),
            DbBackend::Sqlite => Some(figures!(self.db.get_sqlite_connection_pool())),
            _ => None,
        }
    }

    /// The connection, once the schema is there.
    pub fn conn(&self) -> Result<&DatabaseConnection> {
        if *self.migrated.borrow() {
            Ok(&self.db)
        } else {
            Err(Error::Unavailable("the database is not ready yet".into()))
        }
    }

    pub async fn begin(&self) -> Result<DatabaseTransaction> {
        Ok(self.conn()?.begin().await?)
    }

    pub async fn close(self) {
        let _ = self.db.close().await;
    }
}

/// The file behind a SQLite URL (`sqlite://data/invites.db?mode=rwc`), or None
/// for another database or an in-memory one.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| Path::new(path).to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        let path = |url| sqlite_path(url).map(|p| p.display().to_string());
        assert_eq!(
            path("sqlite://data/invites.db?mode=rwc").as_deref(),
            Some("data/invites.db")
        );
        assert_eq!(path("sqlite:///tmp/x.db").as_deref(), Some("/tmp/x.db"));
        assert_eq!(path("sqlite:x.db").as_deref(), Some("x.db"));
        assert_eq!(path("sqlite::memory:"), None);
        assert_eq!(path("postgres://u@h/db"), None);
    }
}
