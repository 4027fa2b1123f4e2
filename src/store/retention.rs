//! The retention pass's queries: finished invites and deleted invites'
//! histories kept longer than `--retention`, and removing them.
//!
//! Implementation notes: the claims do not ask for each candidate whether
//! one of its events is still out (`NOT EXISTS`): with the statistics of the
//! usual state, where almost nothing waits, PostgreSQL answered that by
//! comparing every candidate with every waiting event (0.9 s a query with
//! 20,000 waiting after a broker outage). The caller asks once for the
//! claimed ids instead (`with_unpublished_events`, 4.5 ms for 500). The
//! conditions the partial indexes of
//! `m20261126_000001_index_what_retention_removes` are declared with are
//! written here as the same literals: a planner uses a partial index only
//! for a query it can prove implies the index's condition, and a bound
//! parameter proves nothing (SQLite never; PostgreSQL not in a generic plan).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait as _, LockBehavior, LockType},
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

/// Claims up to `limit` finished invites last changed before `cutoff`,
/// oldest first, locked for this transaction (the caller then leaves those
/// with an event still out).
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
        .order_by_asc(invite::Column::UpdatedAt)
        .limit(limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(conn)
        .await?;
    Ok(rows::all_to_domain(found)?)
}

/// Which of these invites have an event not yet out (unpublished, or not
/// yet numbered for watchers) now.
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
        .filter(not_yet_out(
            Expr::col(invite_event::Column::PublishedAt),
            Expr::col(invite_event::Column::LogPosition),
        ))
        .into_tuple::<Uuid>()
        .all(conn)
        .await?;
    Ok(found.into_iter().collect())
}

/// Up to `limit` deleted invites whose deletion happened before `cutoff`
/// (the caller then leaves those with an event still out), oldest deletion
/// first.
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

/// An event not yet out: unpublished, or not yet numbered for watchers
/// (removed unnumbered, a watcher would never see it).
fn not_yet_out(published_at: Expr, log_position: Expr) -> sea_orm::sea_query::SimpleExpr {
    published_at.is_null().or(log_position.is_null())
}
