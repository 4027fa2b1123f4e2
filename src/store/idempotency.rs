//! Stored answers of idempotent requests.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, SqlErr};

use super::entities::idempotency_key;
use crate::error::Result;

pub type StoredAnswer = idempotency_key::Model;

pub async fn find_answer(
    conn: &impl ConnectionTrait,
    key_hash: &str,
) -> Result<Option<StoredAnswer>> {
    Ok(idempotency_key::Entity::find_by_id(key_hash.to_owned())
        .one(conn)
        .await?)
}

/// Records the answer in the request's transaction. False when another call
/// with the same key got there first: the caller rolls back and replays it.
pub async fn record_answer(conn: &impl ConnectionTrait, answer: StoredAnswer) -> Result<bool> {
    let row: idempotency_key::ActiveModel = answer.into();
    match idempotency_key::Entity::insert(row)
        .exec_without_returning(conn)
        .await
    {
        Ok(_) => Ok(true),
        Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Ok(false)
        }
        Err(err) => Err(err.into()),
    }
}

/// Forgets answers recorded before `cutoff`.
pub async fn forget_answers_before(
    conn: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
) -> Result<u64> {
    let result = idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::CreatedAt.lt(cutoff))
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}
