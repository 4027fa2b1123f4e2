//! What the relay tests arrange: outbox rows written directly.

use invite_service::{domain::EventKind, pb, store::entities::invite_event};
use prost::Message as _;
use sea_orm::{ActiveValue::Set, Database, EntityTrait, TransactionTrait};
use uuid::Uuid;

/// An outbox row as a use case would write it, or broken on purpose.
pub struct RawEvent {
    pub id: Uuid,
    pub invite_id: Uuid,
    pub sequence: i64,
    pub kind: EventKind,
    pub payload: Vec<u8>,
    pub token: Option<String>,
}

impl RawEvent {
    pub fn new(invite_id: Uuid, sequence: i64, kind: EventKind) -> Self {
        let id = Uuid::now_v7();
        let body = pb::InviteEvent {
            event_id: id.to_string(),
            r#type: pb::InviteEventType::from(kind).into(),
            occurred_at: Some(pb::timestamp(chrono::Utc::now())),
            sequence,
            invite: Some(pb::Invite {
                id: invite_id.to_string(),
                inviter_id: "alice".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        Self {
            id,
            invite_id,
            sequence,
            kind,
            payload: body.encode_to_vec(),
            token: None,
        }
    }

    fn row(self) -> invite_event::ActiveModel {
        invite_event::ActiveModel {
            id: Set(self.id),
            invite_id: Set(self.invite_id),
            sequence: Set(self.sequence),
            event_type: Set(self.kind.as_str().to_owned()),
            actor_id: Set("alice".into()),
            occurred_at: Set(chrono::Utc::now()),
            payload: Set(self.payload),
            token: Set(self.token),
            published_at: Set(None),
            ..Default::default()
        }
    }
}

/// Writes the rows in one transaction, so the relay finds them all at once.
pub async fn insert_events(database_url: &str, events: Vec<RawEvent>) {
    let db = Database::connect(database_url).await.unwrap();
    let txn = db.begin().await.unwrap();
    let rows: Vec<_> = events.into_iter().map(RawEvent::row).collect();
    for chunk in rows.chunks(500) {
        invite_event::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();
    db.close().await.ok();
}
