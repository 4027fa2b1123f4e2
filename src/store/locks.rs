//! PostgreSQL advisory locks that make one replica at a time do a piece of
//! background work.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::error::Result;

/// Takes the transaction-scoped advisory lock `key` if no other session
/// holds it: released at commit, at rollback and when the holder's
/// connection dies, so another replica takes over with no lease to expire.
/// SQLite is one process's file: always true.
pub(super) async fn try_xact_lock(conn: &impl ConnectionTrait, key: i64) -> Result<bool> {
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(true);
    }
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_try_advisory_xact_lock($1) AS leads",
            [key.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<bool>("", "leads")?,
        None => false,
    })
}
