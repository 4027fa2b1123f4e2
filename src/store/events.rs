//! The outbox table: events written in the use case's transaction, read and
//! stamped by the relay, kept as each invite's history.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::Expr,
};
use uuid::Uuid;

use super::entities::invite_event;
use crate::{domain::EventKind, error::Result};

/// Any 64-bit number that no other part of a shared database uses for an
/// advisory lock: "invites" in ASCII.
const RELAY_LOCK_KEY: i64 = 0x0069_6e76_6974_6573;

pub struct NewEvent {
    pub id: Uuid,
    pub invite_id: Uuid,
    pub sequence: i64,
    pub kind: EventKind,
    pub actor_id: String,
    pub occurred_at: DateTime<Utc>,
    /// The encoded `InviteEvent`, without the token.
    pub payload: Vec<u8>,
    /// Kept until published, for events asked to notify.
    pub token: Option<String>,
    /// The call's request id; none for the service's own changes.
    pub request_id: Option<String>,
    /// The invite's target, so a watcher of one target reads its rows by index.
    pub target_type: String,
    pub target_id: String,
}

/// Written without RETURNING: nothing is read back, and the row's payload
/// would otherwise travel back over the wire with each event.
pub async fn enqueue_event(conn: &impl ConnectionTrait, event: NewEvent) -> Result<()> {
    invite_event::Entity::insert(event_row(event))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Several events in one statement (a group of creates), without RETURNING.
pub async fn enqueue_events(conn: &impl ConnectionTrait, events: Vec<NewEvent>) -> Result<()> {
    invite_event::Entity::insert_many(events.into_iter().map(event_row))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

fn event_row(event: NewEvent) -> invite_event::ActiveModel {
    invite_event::ActiveModel {
        id: Set(event.id),
        invite_id: Set(event.invite_id),
        sequence: Set(event.sequence),
        event_type: Set(event.kind.as_str().to_owned()),
        actor_id: Set(event.actor_id),
        occurred_at: Set(event.occurred_at),
        payload: Set(event.payload),
        token: Set(event.token),
        published_at: Set(None),
        request_id: Set(event.request_id),
        target_type: Set(Some(event.target_type)),
        target_id: Set(Some(event.target_id)),
        ..Default::default()
    }
}

pub type StoredEvent = invite_event::Model;

/// What waits in the outbox.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboxBacklog {
    pub events: u64,
    pub oldest: Option<DateTime<Utc>>,
}

/// How many events wait to be published, and since when: read from the
/// partial index on unpublished events.
pub async fn outbox_backlog(conn: &impl ConnectionTrait) -> Result<OutboxBacklog> {
    let (events, oldest) = invite_event::Entity::find()
        .select_only()
        .column_as(invite_event::Column::Id.count(), "events")
        .column_as(invite_event::Column::OccurredAt.min(), "oldest")
        .filter(invite_event::Column::PublishedAt.is_null())
        .into_tuple::<(i64, Option<DateTime<Utc>>)>()
        .one(conn)
        .await?
        .unwrap_or_default();
    Ok(OutboxBacklog {
        events: u64::try_from(events).unwrap_or_default(),
        oldest,
    })
}

/// Makes this transaction the one relay that publishes, until it ends (see
/// [`super::locks::try_xact_lock`]), and lets its commit return before its
/// WAL reaches the disk. Only the stamps are at stake: one lost in a crash
/// means the event is published again, which at-least-once delivery allows,
/// while a flush per batch competed with the callers' own commits.
pub async fn try_lead_relay(conn: &impl ConnectionTrait) -> Result<bool> {
    let leads = super::locks::try_xact_lock(conn, RELAY_LOCK_KEY).await?;
    if leads && conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_unprepared("SET LOCAL synchronous_commit = off")
            .await?;
    }
    Ok(leads)
}

/// The head of each invite's backlog (its oldest unpublished event), oldest
/// head first: what the relay may publish now without one invite's events
/// overtaking each other, and without one invite's long backlog holding back
/// every other invite.
///
/// Implementation notes: the heads are picked here from a prefix of the
/// unpublished rows in position order, read in one statement (one snapshot):
/// an invite's head is its first row in the prefix, for any earlier
/// unpublished row of it would sit earlier in the same prefix. A prefix that
/// is mostly one invite's backlog is read again eight times longer, up to
/// `max_prefix` rows; past that, long backlogs fill it, and the heads are
/// read by invite instead (`heads_by_invite`). A join asking each row for an
/// earlier one of its invite (`NOT EXISTS`) took 1.3 ms for 200 heads of
/// 20,000 with fresh statistics, and 810 ms with the statistics of the usual
/// state, where almost nothing waits: the planner then compared every row
/// with every other. A backlog builds up exactly when the statistics say
/// there is none (the broker was away), so no plan here depends on them.
pub async fn unpublished_heads(
    conn: &impl ConnectionTrait,
    limit: u64,
    max_prefix: u64,
) -> Result<Vec<StoredEvent>> {
    let heads = match heads_from_prefix(conn, limit, max_prefix).await? {
        Some(heads) => heads,
        None => heads_by_invite(conn, limit).await?,
    };
    if heads.is_empty() {
        return Ok(Vec::new());
    }
    Ok(invite_event::Entity::find()
        .filter(invite_event::Column::Position.is_in(heads))
        .order_by_asc(invite_event::Column::Position)
        .all(conn)
        .await?)
}

/// The heads' positions from a prefix of the backlog; None when the longest
/// prefix holds fewer than `limit` heads and more rows wait past it.
async fn heads_from_prefix(
    conn: &impl ConnectionTrait,
    limit: u64,
    max_prefix: u64,
) -> Result<Option<Vec<i64>>> {
    let mut prefix = limit.min(max_prefix);
    loop {
        let rows: Vec<(i64, Uuid)> = invite_event::Entity::find()
            .select_only()
            .column(invite_event::Column::Position)
            .column(invite_event::Column::InviteId)
            .filter(invite_event::Column::PublishedAt.is_null())
            .order_by_asc(invite_event::Column::Position)
            .limit(prefix)
            .into_tuple()
            .all(conn)
            .await?;
        let heads = first_of_each_invite(&rows, limit);
        let whole_backlog = (rows.len() as u64) < prefix;
        if heads.len() as u64 >= limit || whole_backlog {
            return Ok(Some(heads));
        }
        if prefix >= max_prefix {
            return Ok(None);
        }
        prefix = (prefix * 8).min(max_prefix);
    }
}

/// Each invite's oldest unpublished position, oldest first: reads the whole
/// backlog (24 ms with 20,000 waiting), which only long backlogs that fill
/// the longest prefix call for.
async fn heads_by_invite(conn: &impl ConnectionTrait, limit: u64) -> Result<Vec<i64>> {
    Ok(invite_event::Entity::find()
        .select_only()
        .column_as(invite_event::Column::Position.min(), "head")
        .filter(invite_event::Column::PublishedAt.is_null())
        .group_by(invite_event::Column::InviteId)
        .order_by_asc(invite_event::Column::Position.min())
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?)
}

/// The position of each invite's first row, in order, at most `limit`.
fn first_of_each_invite(rows: &[(i64, Uuid)], limit: u64) -> Vec<i64> {
    let mut seen = HashSet::new();
    rows.iter()
        .filter(|(_, invite_id)| seen.insert(*invite_id))
        .map(|&(position, _)| position)
        .take(limit as usize)
        .collect()
}

/// Stamps events the broker confirmed, and erases the tokens they carried.
///
/// Implementation notes: on PostgreSQL the rows are locked first, in
/// position order, the order the sequencer locks them in (see
/// `sequence_batch`). The UPDATE alone locks them in the order its plan
/// visits them, by their place on disk, which the sequencer's own updates
/// shuffle: the two then deadlocked, and PostgreSQL took a second
/// (`deadlock_timeout`) to break each tie, a second an event waited.
pub async fn mark_published(
    conn: &impl ConnectionTrait,
    positions: &[i64],
    at: DateTime<Utc>,
) -> Result<()> {
    if positions.is_empty() {
        return Ok(());
    }
    if conn.get_database_backend() == DbBackend::Postgres {
        invite_event::Entity::find()
            .select_only()
            .column(invite_event::Column::Position)
            .filter(invite_event::Column::Position.is_in(positions.iter().copied()))
            .order_by_asc(invite_event::Column::Position)
            .lock_exclusive()
            .into_tuple::<i64>()
            .all(conn)
            .await?;
    }
    invite_event::Entity::update_many()
        .col_expr(invite_event::Column::PublishedAt, Expr::value(at))
        .col_expr(
            invite_event::Column::Token,
            Expr::value(Option::<String>::None),
        )
        .filter(invite_event::Column::Position.is_in(positions.iter().copied()))
        .exec(conn)
        .await?;
    Ok(())
}

/// One invite's history, oldest first, after sequence `after`.
pub async fn invite_history(
    conn: &impl ConnectionTrait,
    invite_id: Uuid,
    after: i64,
    limit: u64,
) -> Result<Vec<StoredEvent>> {
    Ok(invite_event::Entity::find()
        .filter(invite_event::Column::InviteId.eq(invite_id))
        .filter(invite_event::Column::Sequence.gt(after))
        .order_by_asc(invite_event::Column::Sequence)
        .limit(limit)
        .all(conn)
        .await?)
}

/// An invite's latest event: its last known state, even once deleted.
pub async fn latest_event(
    conn: &impl ConnectionTrait,
    invite_id: Uuid,
) -> Result<Option<StoredEvent>> {
    Ok(invite_event::Entity::find()
        .filter(invite_event::Column::InviteId.eq(invite_id))
        .order_by_desc(invite_event::Column::Sequence)
        .one(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invites_head_is_its_first_row_and_later_rows_wait() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let rows = [(1, a), (2, a), (3, b), (4, a), (5, c), (6, b)];
        assert_eq!(first_of_each_invite(&rows, 10), vec![1, 3, 5]);
        assert_eq!(first_of_each_invite(&rows, 2), vec![1, 3]);
    }
}
