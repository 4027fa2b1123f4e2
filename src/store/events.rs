//! The outbox table: events written in the use case's transaction, read and
//! stamped by the relay, kept as each invite's history.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, ExprTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
    sea_query::{Alias, Expr, Query},
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

/// Makes this transaction the one relay that publishes, until it ends. On
/// PostgreSQL a transaction-scoped advisory lock: it is released at commit, at
/// rollback and when the holder's connection dies, so another replica takes
/// over without any lease to expire. SQLite is one process's file: always true.
pub async fn try_lead_relay(conn: &impl ConnectionTrait) -> Result<bool> {
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(true);
    }
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_try_advisory_xact_lock($1) AS leads",
            [RELAY_LOCK_KEY.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<bool>("", "leads")?,
        None => false,
    })
}

/// The head of each invite's backlog (its oldest unpublished event), oldest
/// head first: what the relay may publish now without one invite's events
/// overtaking each other, and without one invite's long backlog holding back
/// every other invite.
///
/// Walks the unpublished rows in position order and keeps those with no
/// earlier unpublished row of their invite, so a batch reads about as many
/// rows as it returns. (Measured with 22,000 waiting: 0.9 ms for 200 heads,
/// where `MIN(position) … GROUP BY invite_id` read the whole backlog for
/// each batch: 24 ms, and a drain that slowed as the backlog grew.)
pub async fn unpublished_heads(
    conn: &impl ConnectionTrait,
    limit: u64,
) -> Result<Vec<StoredEvent>> {
    let earlier = Alias::new("earlier");
    let this = |column| Expr::col((invite_event::Entity, column));
    let theirs = |column| Expr::col((earlier.clone(), column));
    let earlier_unpublished = Query::select()
        .expr(Expr::val(1))
        .from_as(invite_event::Entity, earlier.clone())
        .and_where(theirs(invite_event::Column::InviteId).eq(this(invite_event::Column::InviteId)))
        .and_where(theirs(invite_event::Column::PublishedAt).is_null())
        .and_where(theirs(invite_event::Column::Position).lt(this(invite_event::Column::Position)))
        .to_owned();
    Ok(invite_event::Entity::find()
        .filter(invite_event::Column::PublishedAt.is_null())
        .filter(Expr::exists(earlier_unpublished).not())
        .order_by_asc(invite_event::Column::Position)
        .limit(limit)
        .all(conn)
        .await?)
}

/// Stamps events the broker confirmed, and erases the tokens they carried.
pub async fn mark_published(
    conn: &impl ConnectionTrait,
    positions: &[i64],
    at: DateTime<Utc>,
) -> Result<()> {
    if positions.is_empty() {
        return Ok(());
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
