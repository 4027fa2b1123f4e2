//! Stored answers of idempotent requests.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    SqlErr,
};

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

/// Claims a key for this transaction, before its work: false if the key is
/// taken (the caller drops the transaction and replays the stored answer). A
/// concurrent claim of the same key waits for this transaction to end.
pub async fn claim_answer(
    conn: &impl ConnectionTrait,
    key_hash: &str,
    request_hash: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let empty = serde_json::json!([]);
    let row = idempotency_key::ActiveModel {
        key_hash: Set(key_hash.to_owned()),
        request_hash: Set(request_hash.to_owned()),
        invite_ids: Set(empty.clone()),
        sealed_tokens: Set(empty.clone()),
        refused: Set(empty),
        created_at: Set(now),
    };
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

/// Fills in the answer of a claimed key, in the same transaction.
pub async fn record_answer(conn: &impl ConnectionTrait, answer: StoredAnswer) -> Result<()> {
    let row: idempotency_key::ActiveModel = answer.into();
    row.reset_all().update(conn).await?;
    Ok(())
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
