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
    metrics::Metrics,
    pb,
    store::{self, StoredEvent},
};

/// At most this many invites' heads per batch.
const BATCH_SIZE: u64 = 200;
/// Unpublished rows read in position order to find a batch's heads before
/// they are read by invite instead (see `store::unpublished_heads`).
const HEADS_PREFIX: u64 = 12_800;

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

/// What the relay reports as it goes: counted in the metrics, and logged
/// once per undeliverable event and once per routing key nobody binds, so a
/// log is not flooded at every batch.
pub(super) struct Reports {
    metrics: Metrics,
    /// Events this process found impossible to publish: passed over quietly
    /// at every batch until an operator repairs or deletes the row.
    undeliverable: HashSet<Uuid>,
    unrouted: HashSet<String>,
}

impl Reports {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            metrics,
            undeliverable: HashSet::new(),
            unrouted: HashSet::new(),
        }
    }

    fn undeliverable(&mut self, event: &StoredEvent, err: &StoreError) {
        if !self.undeliverable.insert(event.id) {
            tracing::debug!(event_id = %event.id, "an undeliverable outbox event is still waiting");
            return;
        }
        self.metrics.publish_failed();
        tracing::error!(
            event_id = %event.id,
            invite_id = %event.invite_id,
            position = event.position,
            error = format!("{err:#}"),
            "an outbox event cannot be published: it stays unpublished, and its invite's \
             later events wait behind it, until an operator repairs or deletes the row"
        );
    }

    fn taken(&mut self, event: &Outgoing, confirmed: Confirmed) {
        self.metrics.event_published(event.kind);
        if confirmed == Confirmed::Unrouted && self.unrouted.insert(event.routing_key.clone()) {
            tracing::warn!(
                routing_key = %event.routing_key,
                "no queue is bound for this routing key: its events are published and \
                 dropped by RabbitMQ (said once per key)"
            );
        }
    }

    fn refused(&mut self, event: &Outgoing) {
        self.metrics.publish_failed();
        tracing::debug!(event_id = %event.message_id, routing_key = %event.routing_key, "RabbitMQ refused an event");
    }

    fn failed(&mut self) {
        self.metrics.publish_failed();
    }
}

/// Reads each invite's oldest unpublished event, publishes them, stamps the
/// ones the broker took. Only an invite's head goes in a batch: should the
/// broker refuse it, a later event of the same invite must not overtake it.
pub(super) async fn publish_from(
    conn: &impl ConnectionTrait,
    publisher: &Publisher,
    reports: &mut Reports,
) -> Result<Outcome, RelayError> {
    let heads = store::unpublished_heads(conn, BATCH_SIZE, HEADS_PREFIX).await?;
    let outgoing = heads
        .iter()
        .filter_map(|event| match Outgoing::of(event) {
            Ok(outgoing) => Some(outgoing),
            Err(err) => {
                reports.undeliverable(event, &err);
                None
            }
        })
        .collect();
    let sent = publish(publisher, outgoing, reports).await;
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
    kind: EventKind,
    invite_id: String,
    sequence: i64,
    request_id: Option<String>,
    message_id: String,
    routing_key: String,
    timestamp_secs: u64,
    time: String,
    body: Vec<u8>,
}

impl Outgoing {
    /// Fails for a row this service could not have written: a bug or a hand
    /// edit, which publishing or skipping would both hide.
    fn of(event: &StoredEvent) -> Result<Self, StoreError> {
        let kind = kind(event)?;
        Ok(Self {
            position: event.position,
            kind,
            invite_id: event.invite_id.to_string(),
            sequence: event.sequence,
            request_id: event.request_id.clone(),
            message_id: event.id.to_string(),
            routing_key: kind.routing_key(),
            timestamp_secs: event.occurred_at.timestamp().max(0) as u64,
            time: event
                .occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            body: message_body(event)?,
        })
    }

    fn message(&self) -> Message<'_> {
        Message {
            routing_key: &self.routing_key,
            message_id: &self.message_id,
            timestamp_secs: self.timestamp_secs,
            body: &self.body,
            invite_id: &self.invite_id,
            sequence: self.sequence,
            request_id: self.request_id.as_deref(),
            time: &self.time,
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
async fn publish(publisher: &Publisher, outgoing: Vec<Outgoing>, reports: &mut Reports) -> Sent {
    let mut sent = Sent::default();
    let mut in_flight = Vec::with_capacity(outgoing.len());
    for event in &outgoing {
        match publisher.send(&event.message()).await {
            Ok(confirm) => in_flight.push((event, confirm)),
            Err(err) => {
                reports.failed();
                sent.failure = Some(err);
                break;
            }
        }
    }
    let deadline = Instant::now() + BROKER_TIMEOUT;
    for (event, confirm) in in_flight {
        match Publisher::confirmed(confirm, deadline).await {
            Ok(Confirmed::Refused) => {
                reports.refused(event);
                sent.refused += 1;
            }
            Ok(taken) => {
                reports.taken(event, taken);
                sent.taken.push(event.position);
            }
            Err(err) => {
                reports.failed();
                sent.failure.get_or_insert(err);
                break;
            }
        }
    }
    sent
}

fn kind(event: &StoredEvent) -> Result<EventKind, StoreError> {
    EventKind::parse(&event.event_type).ok_or_else(|| {
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
