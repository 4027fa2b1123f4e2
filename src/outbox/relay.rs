//! Publishes committed events to RabbitMQ, oldest first, and stamps each one
//! only after the broker confirmed it.
//!
//! Implementation notes:
//! - One relay publishes at a time across replicas (see `try_lead_relay`): a
//!   second one would interleave an invite's events. Relays that each claim
//!   rows with SKIP LOCKED reorder them; "id greater than the last seen"
//!   skips rows whose transactions commit out of order. Reading "unpublished,
//!   by position" every batch does neither.
//! - A batch carries the head of each invite's backlog (see `batch`), so one
//!   invite with thousands of queued events holds back only itself. A
//!   failure leaves the rest for the next try, so an event may be published
//!   twice (at-least-once), never lost, never overtaken by a later event of
//!   its invite; a consumer tells a redelivery by its `sequence`.
//! - A refused event (nack: a consumer's queue is full) is offered again on
//!   the same connection within seconds; a broker that fails is reconnected
//!   to with a longer backoff (see `retry`).

use std::time::Duration;

use sea_orm::DbBackend;
use tokio::sync::watch;

use super::{
    CommitWakeup,
    batch::{self, Outcome, RelayError, Reports},
    retry::{Backoff, RECONNECT, REOFFER, Refusals},
};
use crate::{broker::Publisher, error::Error as StoreError, metrics::Metrics, store::Store};

/// Catches events committed by other replicas, whose wake-ups go elsewhere.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Another replica leads: look again soon, it may be about to let go.
const LEADER_RETRY: Duration = Duration::from_millis(100);

enum Batch {
    Done(Outcome),
    OtherReplicaLeads,
}

/// What the loop does before its next batch.
enum Next {
    Now,
    /// Sleep, unless a commit wakes the relay sooner.
    Wait(Duration),
    /// Sleep through wake-ups: new commits would only re-offer the refused
    /// events sooner, or try a broker that is down again, which is the tight
    /// loop the backoff is there to avoid. (Measured: with a connect attempt
    /// per commit, 60,000 creates with the broker away took the server's
    /// memory from 28 MB to 103 MB; held, it stays at 22 MB.)
    Hold(Duration),
}

pub struct Relay {
    store: Store,
    amqp_url: String,
    exchange: String,
    wakeup: CommitWakeup,
    metrics: Metrics,
}

/// What the relay carries from one batch to the next.
struct State {
    publisher: Option<Publisher>,
    broker_down: bool,
    reconnect: Backoff,
    reoffer: Backoff,
    refusals: Refusals,
    reports: Reports,
}

impl Relay {
    pub fn new(store: Store, amqp_url: String, exchange: String, wakeup: CommitWakeup) -> Self {
        Self {
            store,
            amqp_url,
            exchange,
            wakeup,
            metrics: Metrics::new(&[]),
        }
    }

    /// Counts what it publishes and fails to publish into `metrics`.
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        Self { metrics, ..self }
    }

    /// Runs until `stop` turns true, then publishes what is left while the
    /// broker is reachable (the caller bounds how long that may take).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tokio::select! {
            _ = self.store.migrated() => {}
            _ = stop.changed() => return,
        }
        let mut state = State {
            publisher: None,
            broker_down: false,
            reconnect: Backoff::new(RECONNECT),
            reoffer: Backoff::new(REOFFER),
            refusals: Refusals::default(),
            reports: Reports::new(self.metrics.clone()),
        };
        while !*stop.borrow() {
            let next = self.step(&mut state).await;
            self.pause(&mut stop, next).await;
        }
        if let Some(connected) = state.publisher.take() {
            self.flush(&connected, &mut state.reports).await;
            connected.close().await;
        }
    }

    /// Connects if need be, then publishes one batch.
    async fn step(&self, state: &mut State) -> Next {
        if !self.connect(state).await {
            return Next::Hold(state.reconnect.next());
        }
        let Some(publisher) = &state.publisher else {
            return Next::Now;
        };
        match self.publish_batch(publisher, &mut state.reports).await {
            Ok(Batch::Done(outcome)) => {
                tracing::debug!(published = outcome.published, "relay batch");
                state.reconnect.reset();
                state.after(outcome)
            }
            Ok(Batch::OtherReplicaLeads) => Next::Wait(LEADER_RETRY),
            Err(RelayError::Broker(err)) => {
                tracing::warn!(error = %err, "publishing failed; will reconnect and retry");
                if let Some(old) = state.publisher.take() {
                    old.close().await;
                }
                Next::Wait(state.reconnect.next())
            }
            Err(RelayError::Store(err)) => {
                tracing::warn!(error = %err, "reading the outbox failed; will retry");
                Next::Wait(state.reconnect.next())
            }
        }
    }

    /// Whether a publisher is connected, connecting one if need be.
    async fn connect(&self, state: &mut State) -> bool {
        if state
            .publisher
            .as_ref()
            .is_some_and(Publisher::is_connected)
        {
            return true;
        }
        match Publisher::connect(&self.amqp_url, &self.exchange).await {
            Ok(connected) => {
                tracing::info!(exchange = %self.exchange, "connected to RabbitMQ; publishing events");
                state.publisher = Some(connected);
                state.broker_down = false;
                true
            }
            Err(err) => {
                if !state.broker_down {
                    tracing::warn!(error = %err, "RabbitMQ is unreachable: events wait in the outbox and leave once it is back");
                    state.broker_down = true;
                }
                false
            }
        }
    }

    /// Publishes until the outbox is empty or publishing fails.
    async fn flush(&self, publisher: &Publisher, reports: &mut Reports) {
        loop {
            match self.publish_batch(publisher, reports).await {
                Ok(Batch::Done(outcome)) if outcome.published > 0 => continue,
                Ok(_) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "could not flush the outbox; the events stay for the next start");
                    return;
                }
            }
        }
    }

    /// Waits as `next` says, or until the stop signal.
    async fn pause(&self, stop: &mut watch::Receiver<bool>, next: Next) {
        match next {
            Next::Now => {}
            Next::Wait(timeout) => tokio::select! {
                _ = self.wakeup.relay_woken() => {}
                _ = tokio::time::sleep(timeout) => {}
                _ = stop.changed() => {}
            },
            Next::Hold(timeout) => tokio::select! {
                _ = tokio::time::sleep(timeout) => {}
                _ = stop.changed() => {}
            },
        }
    }

    /// One batch: on PostgreSQL inside a transaction that holds the relay
    /// lock; on SQLite (one process) without one, so that the only connection
    /// is not held while RabbitMQ takes its time.
    async fn publish_batch(
        &self,
        publisher: &Publisher,
        reports: &mut Reports,
    ) -> Result<Batch, RelayError> {
        if self.store.backend() != DbBackend::Postgres {
            let conn = self.store.conn()?;
            return Ok(Batch::Done(
                batch::publish_from(conn, publisher, reports).await?,
            ));
        }
        let txn = self.store.begin().await?;
        if !crate::store::try_lead_relay(&txn).await? {
            return Ok(Batch::OtherReplicaLeads);
        }
        let outcome = batch::publish_from(&txn, publisher, reports).await;
        if let Err(RelayError::Store(_)) = outcome {
            return outcome.map(Batch::Done); // rolled back: nothing was stamped
        }
        // A broker failure still commits the stamps of what was confirmed.
        txn.commit().await.map_err(StoreError::from)?;
        outcome.map(Batch::Done)
    }
}

impl State {
    /// After a batch the broker answered: refused events are offered again
    /// after a short, capped backoff; otherwise the next batch goes now, or
    /// at the next commit or poll once the outbox is empty.
    fn after(&mut self, outcome: Outcome) -> Next {
        if outcome.refused > 0 {
            self.refusals.refused(outcome.refused);
            return Next::Hold(self.reoffer.next());
        }
        self.refusals.cleared();
        self.reoffer.reset();
        if outcome.published == 0 {
            Next::Wait(POLL_INTERVAL)
        } else {
            Next::Now
        }
    }
}
