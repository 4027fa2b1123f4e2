//! Publishes committed events to RabbitMQ, oldest first, and stamps each one
//! only after the broker confirmed it.
//!
//! Implementation notes:
//! - One relay publishes at a time across replicas (see `try_lead_relay`): a
//!   second one would interleave an invite's events. Relays that each claim
//!   rows with SKIP LOCKED reorder them; "id greater than the last seen"
//!   skips rows whose transactions commit out of order. Reading "unpublished,
//!   by position" every batch does neither.
//! - A batch is sent in one burst: the head of each invite's backlog (its
//!   oldest unpublished event), so one invite with thousands of queued events
//!   holds back only itself. The confirmed events are stamped. A failure leaves the rest for the next try,
//!   so an event may be published twice (at-least-once), never lost, never
//!   overtaken by a later event of its invite; a consumer tells a redelivery
//!   by its `sequence`.

use std::time::Duration;

use chrono::Utc;
use prost::Message as _;
use sea_orm::{ConnectionTrait, DbBackend};
use tokio::sync::watch;

use super::RelayWakeup;
use crate::{
    broker::{BrokerError, Message, Publisher},
    domain::EventKind,
    error::Error as StoreError,
    pb,
    store::{self, Store, StoredEvent},
};

/// At most this many invites' heads per batch.
const BATCH_SIZE: u64 = 200;
/// Catches events committed by other replicas, whose wake-ups go elsewhere.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Another replica leads: look again soon, it may be about to let go.
const LEADER_RETRY: Duration = Duration::from_millis(100);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

enum Batch {
    Published(usize),
    OtherReplicaLeads,
}

pub struct Relay {
    store: Store,
    amqp_url: String,
    exchange: String,
    wakeup: RelayWakeup,
}

impl Relay {
    pub fn new(store: Store, amqp_url: String, exchange: String, wakeup: RelayWakeup) -> Self {
        Self {
            store,
            amqp_url,
            exchange,
            wakeup,
        }
    }

    /// Runs until `stop` turns true, then publishes what is left while the
    /// broker is reachable (the caller bounds how long that may take).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tokio::select! {
            _ = self.store.migrated() => {}
            _ = stop.changed() => return,
        }
        let mut publisher: Option<Publisher> = None;
        let mut backoff = MIN_BACKOFF;
        let mut broker_down = false;
        while !*stop.borrow() {
            if !publisher.as_ref().is_some_and(Publisher::is_connected) {
                match Publisher::connect(&self.amqp_url, &self.exchange).await {
                    Ok(connected) => {
                        tracing::info!(exchange = %self.exchange, "connected to RabbitMQ; publishing events");
                        publisher = Some(connected);
                        broker_down = false;
                    }
                    Err(err) => {
                        if !broker_down {
                            tracing::warn!(error = %err, "RabbitMQ is unreachable: events wait in the outbox and leave once it is back");
                            broker_down = true;
                        }
                        self.pause(&mut stop, next_backoff(&mut backoff)).await;
                        continue;
                    }
                }
            }
            let Some(connected) = &publisher else {
                continue;
            };
            match self.publish_batch(connected).await {
                Ok(Batch::Published(0)) => {
                    backoff = MIN_BACKOFF;
                    self.pause(&mut stop, POLL_INTERVAL).await;
                }
                Ok(Batch::Published(_)) => backoff = MIN_BACKOFF,
                Ok(Batch::OtherReplicaLeads) => self.pause(&mut stop, LEADER_RETRY).await,
                Err(RelayError::Broker(err)) => {
                    tracing::warn!(error = %err, "publishing failed; will reconnect and retry");
                    if let Some(old) = publisher.take() {
                        old.close().await;
                    }
                    self.pause(&mut stop, next_backoff(&mut backoff)).await;
                }
                Err(RelayError::Store(err)) => {
                    tracing::warn!(error = %err, "reading the outbox failed; will retry");
                    self.pause(&mut stop, next_backoff(&mut backoff)).await;
                }
            }
        }
        if let Some(connected) = publisher {
            self.flush(&connected).await;
            connected.close().await;
        }
    }

    /// Publishes until the outbox is empty or publishing fails.
    async fn flush(&self, publisher: &Publisher) {
        loop {
            match self.publish_batch(publisher).await {
                Ok(Batch::Published(0)) | Ok(Batch::OtherReplicaLeads) => return,
                Ok(Batch::Published(_)) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, "could not flush the outbox; the events stay for the next start");
                    return;
                }
            }
        }
    }

    /// Waits for a wake-up, the timeout, or the stop signal.
    async fn pause(&self, stop: &mut watch::Receiver<bool>, timeout: Duration) {
        tokio::select! {
            _ = self.wakeup.woken() => {}
            _ = tokio::time::sleep(timeout) => {}
            _ = stop.changed() => {}
        }
    }

    /// One batch: on PostgreSQL inside a transaction that holds the relay
    /// lock; on SQLite (one process) without one, so that the only connection
    /// is not held while RabbitMQ takes its time.
    async fn publish_batch(&self, publisher: &Publisher) -> Result<Batch, RelayError> {
        if self.store.backend() != DbBackend::Postgres {
            return publish_from(self.store.conn()?, publisher).await;
        }
        let txn = self.store.begin().await?;
        if !store::try_lead_relay(&txn).await? {
            return Ok(Batch::OtherReplicaLeads);
        }
        let batch = publish_from(&txn, publisher).await;
        if let Err(RelayError::Store(_)) = batch {
            return batch; // rolled back: nothing was stamped
        }
        // A broker failure still commits the stamps of what was confirmed.
        txn.commit().await.map_err(StoreError::from)?;
        batch
    }
}

/// Reads each invite's oldest unpublished event, publishes them, stamps the
/// confirmed.
async fn publish_from(
    conn: &impl ConnectionTrait,
    publisher: &Publisher,
) -> Result<Batch, RelayError> {
    let events = store::unpublished_heads(conn, BATCH_SIZE).await?;
    let (published, failure) = publish(publisher, events).await;
    store::mark_published(conn, &published, Utc::now()).await?;
    match failure {
        Some(err) => Err(err.into()),
        None => Ok(Batch::Published(published.len())),
    }
}

/// Sends the batch in one burst and awaits the confirms; returns the
/// positions to stamp (confirmed, or impossible to publish) and the first
/// broker failure.
///
/// Only an invite's head goes in a burst: should the broker refuse it, a
/// later event of the same invite must not overtake it. The next batch
/// carries the next one.
async fn publish(
    publisher: &Publisher,
    events: Vec<StoredEvent>,
) -> (Vec<i64>, Option<BrokerError>) {
    let mut done = Vec::with_capacity(events.len());
    let mut in_flight = Vec::with_capacity(events.len());
    let mut failure = None;
    for event in &events {
        let (routing_key, body) = match (routing_key(event), message_body(event)) {
            (Ok(key), Ok(body)) => (key, body),
            (Err(err), _) | (_, Err(err)) => {
                // Written by this service, so this is a bug: holding every
                // later event back would not fix it.
                tracing::error!(event_id = %event.id, error = format!("{err:#}"), "an outbox event cannot be published; skipped");
                done.push(event.position);
                continue;
            }
        };
        let message = Message {
            routing_key: &routing_key,
            message_id: &event.id.to_string(),
            timestamp_secs: event.occurred_at.timestamp().max(0) as u64,
            body: &body,
        };
        match publisher.send(&message).await {
            Ok(confirm) => in_flight.push((event.position, routing_key, confirm)),
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    for (position, routing_key, confirm) in in_flight {
        match Publisher::confirmed(confirm, &routing_key).await {
            Ok(()) => done.push(position),
            Err(err) => {
                failure.get_or_insert(err);
            }
        }
    }
    (done, failure)
}

fn next_backoff(backoff: &mut Duration) -> Duration {
    let current = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    current
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
fn message_body(event: &StoredEvent) -> Result<Vec<u8>, StoreError> {
    let Some(token) = &event.token else {
        return Ok(event.payload.clone());
    };
    let mut body = pb::InviteEvent::decode(event.payload.as_slice()).map_err(|err| {
        StoreError::Internal(anyhow::Error::new(err).context(format!("event {} payload", event.id)))
    })?;
    body.token = token.clone();
    Ok(body.encode_to_vec())
}
