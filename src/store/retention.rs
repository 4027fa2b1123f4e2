//! The retention pass's queries: finished invites and deleted invites'
//! histories kept longer than `--retention`, and removing them.
//!
//! Implementation notes: both claims skip anything with an unpublished
//! event, so a backlog in the outbox never fills a batch with rows that
//! cannot go. The conditions the partial indexes of
//! `m20261126_000001_index_what_retention_removes` are declared with are
//! written here as the same literals: a planner uses a partial index only
//! for a query it can prove implies the index's condition, and a bound
//! parameter proves nothing (SQLite never; PostgreSQL not in a generic plan).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Alias, Expr, ExprTrait as _, IntoColumnRef, LockBehavior, LockType, Query},
};
use uuid::Uuid;

use super::{
    entities::{invite, invite_event},
    locks::try_xact_lock,
    rows,
};
use crate::{
    domain::{Invite, InviteStatus},
    error::Result,
};

/// "invretn" in ASCII, apart from the relay's and the migrations' keys.
const RETENTION_LOCK_KEY: i64 = 0x0069_6e76_7265_746e;
/// `invites_finished_by_update`'s condition, word for word.
const FINISHED: &str = "status <> 'pending'";
/// `invite_events_deletions_by_time`'s condition, word for word.
const DELETIONS: &str = "event_type = 'deleted'";

/// Makes this transaction the one retention pass of all replicas, until it
/// ends: two passes would otherwise delete the same histories, wait on each
/// other's row locks and count them twice.
pub async fn try_lead_retention(conn: &impl ConnectionTrait) -> Result<bool> {
    try_xact_lock(conn, RETENTION_LOCK_KEY).await
}

/// Claims up to `limit` finished invites last changed before `cutoff` whose
/// events are all published, oldest first, locked for this transaction.
/// `SKIP LOCKED`: an invite a call holds (a delete, a resend) is left to it.
pub async fn claim_retired(
    conn: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Invite>> {
    let terminal = InviteStatus::ALL
        .into_iter()
        .filter(|status| status.is_terminal())
        .map(InviteStatus::as_str);
    let found = invite::Entity::find()
        .filter(Expr::cust(FINISHED))
        // The domain's word on which states are finished; the literal above
        // is only for the index.
        .filter(invite::Column::Status.is_in(terminal))
        .filter(invite::Column::UpdatedAt.lt(cutoff))
        .filter(Expr::not_exists(unpublished_event_of((
            invite::Entity,
            invite::Column::Id,
        ))))
        .order_by_asc(invite::Column::UpdatedAt)
        .limit(limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(conn)
        .await?;
    Ok(found
        .into_iter()
        .map(rows::to_domain)
        .collect::<anyhow::Result<_>>()?)
}

/// Which of these invites have an unpublished event now.
pub async fn with_unpublished_events(
    conn: &impl ConnectionTrait,
    invite_ids: &[Uuid],
) -> Result<HashSet<Uuid>> {
    if invite_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let found = invite_event::Entity::find()
        .select_only()
        .column(invite_event::Column::InviteId)
        .distinct()
        .filter(invite_event::Column::InviteId.is_in(invite_ids.iter().copied()))
        .filter(invite_event::Column::PublishedAt.is_null())
        .into_tuple::<Uuid>()
        .all(conn)
        .await?;
    Ok(found.into_iter().collect())
}

/// Up to `limit` deleted invites whose deletion happened before `cutoff`
/// and whose events are all published, oldest deletion first.
pub async fn claim_retired_histories(
    conn: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Uuid>> {
    Ok(invite_event::Entity::find()
        .select_only()
        .column(invite_event::Column::InviteId)
        .filter(Expr::cust(DELETIONS))
        .filter(invite_event::Column::OccurredAt.lt(cutoff))
        .filter(Expr::not_exists(unpublished_event_of((
            invite_event::Entity,
            invite_event::Column::InviteId,
        ))))
        .order_by_asc(invite_event::Column::OccurredAt)
        .limit(limit)
        .into_tuple::<Uuid>()
        .all(conn)
        .await?)
}

/// Removes these invites' events; returns how many.
pub async fn delete_histories(conn: &impl ConnectionTrait, invite_ids: &[Uuid]) -> Result<u64> {
    if invite_ids.is_empty() {
        return Ok(0);
    }
    let deleted = invite_event::Entity::delete_many()
        .filter(invite_event::Column::InviteId.is_in(invite_ids.iter().copied()))
        .exec(conn)
        .await?;
    Ok(deleted.rows_affected)
}

/// Removes these invites; their redemptions and wrong-passcode counts go
/// with them (their foreign keys cascade). Returns how many.
pub async fn delete_invites(conn: &impl ConnectionTrait, invite_ids: &[Uuid]) -> Result<u64> {
    if invite_ids.is_empty() {
        return Ok(0);
    }
    let deleted = invite::Entity::delete_many()
        .filter(invite::Column::Id.is_in(invite_ids.iter().copied()))
        .exec(conn)
        .await?;
    Ok(deleted.rows_affected)
}

/// `SELECT 1 FROM invite_events unpublished WHERE unpublished.invite_id =
/// <invite_id> AND published_at IS NULL`: read from the partial index on
/// unpublished `(invite_id, position)`. Aliased, so it can sit inside a
/// query on `invite_events` itself.
fn unpublished_event_of(invite_id: impl IntoColumnRef) -> sea_orm::sea_query::SelectStatement {
    let unpublished = Alias::new("unpublished");
    Query::select()
        .expr(Expr::val(1))
        .from_as(invite_event::Entity, unpublished.clone())
        .and_where(
            Expr::col((unpublished.clone(), invite_event::Column::InviteId)).equals(invite_id),
        )
        .and_where(Expr::col((unpublished, invite_event::Column::PublishedAt)).is_null())
        .to_owned()
}
