//! The event log watchers read: each event's `log_position`, numbered after
//! commit by one sequencer at a time, and pages of the log after a cursor.
//!
//! Implementation notes: `position` comes from a sequence at INSERT, and
//! transactions commit out of order, so "position greater than the last
//! seen" skips a row that commits late. The sequencer numbers the rows it
//! can see, in position order, after the highest number given so far, in one
//! statement per batch; a batch commits before the next one begins (one
//! sequencer holds the lock at a time), so a late row gets a number after
//! every row numbered before it became visible. A reader of
//! `log_position > cursor` therefore never skips: no row can later appear
//! below a number it has read. An invite's events keep their order: a later
//! event is written under the invite's row lock after the earlier one
//! committed, so it is numbered in the same batch after it, or later.
//!
//! The numbering continues from the highest `log_position` present: the
//! retention pass keeps the newest numbered row (`newest_logged_invite`), or
//! new events would be numbered below cursors clients hold.

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

use super::entities::invite_event;
use crate::{domain::EventKind, error::Result};

/// "invlogs" in ASCII: apart from the relay's and the migrations' locks.
const SEQUENCER_LOCK_KEY: i64 = 0x0069_6e76_6c6f_6773;

/// Makes this transaction the one sequencer, until it ends.
pub async fn try_lead_sequencer(conn: &impl ConnectionTrait) -> Result<bool> {
    super::locks::try_xact_lock(conn, SEQUENCER_LOCK_KEY).await
}

/// Numbers up to `limit` visible rows that have no `log_position` yet, in
/// position order, after the highest number given; returns how many. One
/// statement, so its cost is one UPDATE per batch, not per event. On
/// PostgreSQL the rows are locked in position order (`FOR UPDATE`), the
/// order the relay locks them in before it stamps them (see
/// `mark_published`), so the two never deadlock.
pub async fn sequence_batch(conn: &impl ConnectionTrait, limit: u64) -> Result<u64> {
    let backend = conn.get_database_backend();
    let lock = if backend == DbBackend::Postgres {
        "FOR UPDATE"
    } else {
        ""
    };
    let sql = format!(
        "WITH next AS ( \
             SELECT position FROM invite_events WHERE log_position IS NULL \
             ORDER BY position LIMIT {limit} {lock} \
         ), \
         head AS (SELECT COALESCE(MAX(log_position), 0) AS last FROM invite_events), \
         numbered AS ( \
             SELECT next.position, head.last + row_number() OVER (ORDER BY next.position) AS n \
             FROM next, head \
         ) \
         UPDATE invite_events SET log_position = numbered.n \
         FROM numbered WHERE invite_events.position = numbered.position"
    );
    let done = conn
        .execute_raw(Statement::from_string(backend, sql))
        .await?;
    Ok(done.rows_affected())
}

/// The highest `log_position` given so far (0 for none): where a watcher
/// without a cursor starts.
pub async fn log_head(conn: &impl ConnectionTrait) -> Result<i64> {
    let head = invite_event::Entity::find()
        .select_only()
        .column_as(invite_event::Column::LogPosition.max(), "head")
        .into_tuple::<Option<i64>>()
        .one(conn)
        .await?;
    Ok(head.flatten().unwrap_or(0))
}

/// The invite whose event holds the highest `log_position`, if any.
pub async fn newest_logged_invite(conn: &impl ConnectionTrait) -> Result<Option<Uuid>> {
    Ok(invite_event::Entity::find()
        .select_only()
        .column(invite_event::Column::InviteId)
        .filter(invite_event::Column::LogPosition.is_not_null())
        .order_by_desc(invite_event::Column::LogPosition)
        .into_tuple::<Uuid>()
        .one(conn)
        .await?)
}

/// What a watcher reads of a row: never the token column.
#[derive(Debug, Clone, FromQueryResult)]
pub struct LoggedEvent {
    pub log_position: i64,
    pub id: Uuid,
    pub event_type: String,
    /// The encoded `InviteEvent`, which never holds a token.
    pub payload: Vec<u8>,
    /// None on rows written by a replica of an earlier version.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
}

/// Which rows of the log a watcher wants.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// `(target_type, target_id)`; None: every target.
    pub target: Option<(String, String)>,
    /// Empty: every kind.
    pub kinds: Vec<EventKind>,
}

/// Up to `limit` numbered rows after `after`, in log order. Rows without a
/// target column are returned for a target filter too: the caller decides
/// them from their payload.
pub async fn read_log(
    conn: &impl ConnectionTrait,
    filter: &LogFilter,
    after: i64,
    limit: u64,
) -> Result<Vec<LoggedEvent>> {
    use invite_event::Column;
    let mut query = invite_event::Entity::find()
        .select_only()
        .columns([
            Column::LogPosition,
            Column::Id,
            Column::EventType,
            Column::Payload,
            Column::TargetType,
            Column::TargetId,
        ])
        .filter(Column::LogPosition.gt(after));
    if let Some((target_type, target_id)) = &filter.target {
        query = query.filter(
            Condition::any().add(Column::TargetType.is_null()).add(
                Condition::all()
                    .add(Column::TargetType.eq(target_type.as_str()))
                    .add(Column::TargetId.eq(target_id.as_str())),
            ),
        );
    }
    if !filter.kinds.is_empty() {
        query = query.filter(Column::EventType.is_in(filter.kinds.iter().map(|k| k.as_str())));
    }
    Ok(query
        .order_by_asc(Column::LogPosition)
        .limit(limit)
        .into_model::<LoggedEvent>()
        .all(conn)
        .await?)
}
