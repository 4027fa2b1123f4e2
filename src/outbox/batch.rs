//! One relay batch: the head event of each invite's backlog, sent in one
//! burst, confirmed under one deadline, stamped once the broker took it.

use std::collections::HashSet;

use chrono::Utc;
use prost::Message as _;
use sea_orm::ConnectionTrait;
use tokio::time::Instant;
use uuid::Uuid;

use crate::{
    broker::{BROKER_TIMEOUT, BrokerError, Confirmed, Message, Publisher},
    domain::EventKind,
    error::Error as StoreError,
    pb,
    store::{self, StoredEvent},
};

/// At most this many invites' heads per batch.
const BATCH_SIZE: u64 = 200;

#[derive(Debug, thiserror::Error)]
pub(super) enum RelayError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a batch did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Outcome {
    /// Taken by the broker, and stamped.
    pub published: usize,
    /// Nacked by the broker (a full queue): left for the next try.
    pub refused: usize,
}

/// The events this process found impossible to publish: reported loudly
/// once each, then passed over quietly at every batch until an operator
/// repairs or deletes the row.
#[derive(Default)]
pub(super) struct Undeliverable(HashSet<Uuid>);

impl Undeliverable {
    fn report(&mut self, event: &StoredEvent, err: &StoreError) {
        if !self.0.insert(event.id) {
            tracing::debug!(event_id = %event.id, "an undeliverable outbox event is still waiting");
            return;
        }
        // The place for a counter of undeliverable events (and an alert on
        // it): each one holds back its invite's later events.
        tracing::error!(
            event_id = %event.id,
            invite_id = %event.invite_id,
            position = event.position,
            error = format!("{err:#}"),
            "an outbox event cannot be published: it stays unpublished, and its invite's \
             later events wait behind it, until an operator repairs or deletes the row"
        );
    }
}

/// Reads each invite's oldest unpublished event, publishes them, stamps the
/// ones the broker took. Only an invite's head goes in a batch: should the
/// broker refuse it, a later event of the same invite must not overtake it.
pub(super) async fn publish_from(
    conn: &impl ConnectionTrait,
    publisher: &Publisher,
    undeliverable: &mut Undeliverable,
) -> Result<Outcome, RelayError> {
    let heads = store::unpublished_heads(conn, BATCH_SIZE).await?;
    let outgoing = heads
        .iter()
        .filter_map(|event| match Outgoing::of(event) {
            Ok(outgoing) => Some(outgoing),
            Err(err) => {
                undeliverable.report(event, &err);
                None
            }
        })
        .collect();
    let sent = publish(publisher, outgoing).await;
    store::mark_published(conn, &sent.taken, Utc::now()).await?;
    match sent.failure {
        Some(err) => Err(err.into()),
        None => Ok(Outcome {
            published: sent.taken.len(),
            refused: sent.refused,
        }),
    }
}

/// An event ready for the wire.
struct Outgoing {
    position: i64,
    message_id: String,
    routing_key: String,
    timestamp_secs: u64,
    body: Vec<u8>,
}

impl Outgoing {
    /// Fails for a row this service could not have written: a bug or a hand
    /// edit, which publishing or skipping would both hide.
    fn of(event: &StoredEvent) -> Result<Self, StoreError> {
        Ok(Self {
            position: event.position,
            message_id: event.id.to_string(),
            routing_key: routing_key(event)?,
            timestamp_secs: event.occurred_at.timestamp().max(0) as u64,
            body: message_body(event)?,
        })
    }

    fn message(&self) -> Message<'_> {
        Message {
            routing_key: &self.routing_key,
            message_id: &self.message_id,
            timestamp_secs: self.timestamp_secs,
            body: &self.body,
        }
    }
}

#[derive(Default)]
struct Sent {
    /// Positions the broker took.
    taken: Vec<i64>,
    refused: usize,
    /// The first failure of the channel or the connection, or the deadline.
    failure: Option<BrokerError>,
}

/// Sends the batch in one burst, then awaits the confirms in order under one
/// deadline. A nack refuses one message and the others' answers are already
/// on their way, so they are still collected: dropping them would republish
/// every other invite's events at each retry. A failure of the channel, the
/// connection or the deadline ends the batch at once: no later confirm
/// will come.
async fn publish(publisher: &Publisher, outgoing: Vec<Outgoing>) -> Sent {
    let mut sent = Sent::default();
    let mut in_flight = Vec::with_capacity(outgoing.len());
    for event in &outgoing {
        match publisher.send(&event.message()).await {
            Ok(confirm) => in_flight.push((event, confirm)),
            Err(err) => {
                sent.failure = Some(err);
                break;
            }
        }
    }
    let deadline = Instant::now() + BROKER_TIMEOUT;
    for (event, confirm) in in_flight {
        match Publisher::confirmed(confirm, &event.routing_key, deadline).await {
            Ok(Confirmed::Taken) => sent.taken.push(event.position),
            Ok(Confirmed::Refused) => {
                tracing::debug!(event_id = %event.message_id, routing_key = %event.routing_key, "RabbitMQ refused an event");
                sent.refused += 1;
            }
            Err(err) => {
                sent.failure.get_or_insert(err);
                break;
            }
        }
    }
    sent
}

fn routing_key(event: &StoredEvent) -> Result<String, StoreError> {
    EventKind::parse(&event.event_type)
        .map(EventKind::routing_key)
        .ok_or_else(|| {
            StoreError::Internal(anyhow::anyhow!(
                "event {} has an unknown type {:?}",
                event.id,
                event.event_type
            ))
        })
}

/// The stored body, with the token put back for the events that carry one.
/// Every body is decoded, so that a consumer never receives one it cannot read.
fn message_body(event: &StoredEvent) -> Result<Vec<u8>, StoreError> {
    let mut body = pb::InviteEvent::decode(event.payload.as_slice()).map_err(|err| {
        StoreError::Internal(anyhow::Error::new(err).context(format!("event {} payload", event.id)))
    })?;
    let Some(token) = &event.token else {
        return Ok(event.payload.clone());
    };
    body.token = token.clone();
    Ok(body.encode_to_vec())
}
