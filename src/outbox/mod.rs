//! The transactional outbox: a use case writes its event in the transaction
//! that changes the invite; the relay publishes it once committed.

mod batch;
pub mod relay;
mod retry;
pub mod sequencer;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use prost::Message as _;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    domain::{EventKind, Id, Invite, InviteToken},
    pb,
    store::NewEvent,
    telemetry::RequestId,
};

/// The event of a change just made to `invite`: takes the invite's next
/// sequence number, so the caller must save the invite after this.
pub fn event_for(
    kind: EventKind,
    invite: &mut Invite,
    actor: Option<&Id>,
    token_to_send: Option<&InviteToken>,
    now: DateTime<Utc>,
) -> NewEvent {
    let sequence = invite.next_sequence();
    let id = Uuid::now_v7();
    let actor_id = actor.map(ToString::to_string).unwrap_or_default();
    let request_id = RequestId::current().map(|id| id.as_str().to_owned());
    let body = pb::InviteEvent {
        event_id: id.to_string(),
        r#type: pb::InviteEventType::from(kind).into(),
        occurred_at: Some(pb::timestamp(now)),
        actor_id: actor_id.clone(),
        sequence,
        invite: Some(pb::Invite::from(&*invite)),
        // Added by the relay at publish time, so the history never holds it.
        token: String::new(),
        request_id: request_id.clone().unwrap_or_default(),
    };
    NewEvent {
        id,
        invite_id: invite.id,
        sequence,
        kind,
        actor_id,
        occurred_at: now,
        payload: body.encode_to_vec(),
        token: token_to_send.map(|t| t.expose().to_owned()),
        request_id,
        target_type: invite.target_type.as_str().to_owned(),
        target_id: invite.target_id.as_str().to_owned(),
    }
}

/// Wakes the relay and the sequencer when a transaction with an event
/// commits, so events leave and reach watchers within milliseconds rather
/// than at the next poll. One `Notify` each: `notify_one` wakes one waiter.
#[derive(Clone, Default)]
pub struct CommitWakeup {
    relay: Arc<Notify>,
    sequencer: Arc<Notify>,
}

impl CommitWakeup {
    pub fn wake(&self) {
        // A permit is stored when a task is busy, so no wake-up is lost.
        self.relay.notify_one();
        self.sequencer.notify_one();
    }

    /// The relay's wake-up.
    pub async fn relay_woken(&self) {
        self.relay.notified().await;
    }

    /// The sequencer's wake-up.
    pub async fn sequencer_woken(&self) {
        self.sequencer.notified().await;
    }
}

/// The inviter an event recorded: who may still read a deleted invite's history.
pub fn recorded_inviter(event: &crate::store::StoredEvent) -> crate::error::Result<String> {
    let body = pb::InviteEvent::decode(event.payload.as_slice())
        .map_err(|err| anyhow::Error::new(err).context(format!("event {} payload", event.id)))?;
    Ok(body
        .invite
        .map(|invite| invite.inviter_id)
        .unwrap_or_default())
}

/// The target an event's payload names: for rows written before events
/// carried it in columns. None for a payload that does not decode.
pub fn recorded_target(payload: &[u8]) -> Option<(String, String)> {
    let invite = pb::InviteEvent::decode(payload).ok()?.invite?;
    Some((invite.target_type, invite.target_id))
}
