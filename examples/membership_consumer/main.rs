//! A consumer of `invite.accepted` that adds the member: the pattern to copy
//! when a service reacts to the invite service's events.
//!
//! ```sh
//! cargo run --example membership_consumer -- --help
//! # RabbitMQ on its default, memberships in the SQLite file memberships.db:
//! cargo run --example membership_consumer
//! # or in PostgreSQL (the database must exist):
//! cargo run --example membership_consumer -- --database-url postgres://postgres@127.0.0.1/memberships
//! ```
//!
//! What it shows, and where:
//! - `topology.rs`: a quorum queue bound to `invite.accepted`, with a
//!   dead-letter exchange and a delivery limit;
//! - `consume` here: manual acks, each sent only after the transaction
//!   committed; a message that keeps failing (a poison message) goes back to
//!   the queue until RabbitMQ dead-letters it into `<queue>.dlq`;
//! - `store.rs`: deduplication by `message_id`, ordering by `sequence` per
//!   invite and an idempotent "add member", in one transaction.
//!
//! To copy it: generate the types from `proto/invites/v1/events.proto` with
//! prost-build in place of `invite_service::pb`, and turn `store::SCHEMA`
//! into your migrations. `RUST_LOG=debug` shows every delivery; the counts
//! are logged when it stops.

use std::{
    pin::{Pin, pin},
    sync::Mutex,
    time::Duration,
};

use anyhow::Context as _;
use backon::{BackoffBuilder as _, ExponentialBuilder};
use clap::Parser;
use futures_util::StreamExt as _;
use invite_service::pb::{InviteEvent, InviteEventType};
use lapin::{
    Connection, ConnectionProperties,
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    },
    types::{AMQPValue, FieldTable},
};
use prost::Message as _;
use sea_orm::{DatabaseConnection, DbErr};
use secrecy::{ExposeSecret as _, SecretString};

use store::{Acceptance, Handled};
pub use topology::declare_topology;

mod store;
mod topology;

/// lapin can wait forever on a broker that is shutting down: every call to
/// RabbitMQ gets a deadline.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Waiting for RabbitMQ or the database to come back: from 100 ms to 5 s.
const RECONNECT: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(100))
    .with_max_delay(Duration::from_secs(5))
    .without_max_times();

/// Adds the member on `invite.accepted`.
#[derive(Debug, Clone, Parser)]
#[command(name = "membership_consumer")]
pub struct Settings {
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://127.0.0.1:5672/%2f"
    )]
    pub amqp_url: SecretString,
    /// The invite service's events exchange (its `--exchange`).
    #[arg(long, env = "INVITES_EXCHANGE", default_value = "invites")]
    pub exchange: String,
    /// This consumer's quorum queue; what it gives up on goes to `<queue>.dlq`.
    #[arg(long, env = "MEMBERSHIP_QUEUE", default_value = "membership")]
    pub queue: String,
    /// Where memberships are kept: `sqlite://file?mode=rwc` or `postgres://…`.
    #[arg(
        long,
        env = "MEMBERSHIP_DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://memberships.db?mode=rwc"
    )]
    pub database_url: SecretString,
    /// How often a failing message goes back to the queue before RabbitMQ
    /// dead-letters it: it is tried this many times plus one (the queue's
    /// `x-delivery-limit`, fixed when the queue is first declared).
    #[arg(long, env = "MEMBERSHIP_DELIVERY_LIMIT", default_value_t = 5)]
    pub delivery_limit: u16,
    /// Messages RabbitMQ sends ahead of the acks.
    #[arg(long, env = "MEMBERSHIP_PREFETCH", default_value_t = 20)]
    pub prefetch: u16,
}

impl Settings {
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.queue)
    }

    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dlq", self.queue)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let settings = Settings::parse();
    let tally = Tally::default();
    run(&settings, &tally, stop_signal()).await?;
    tracing::info!(counts = ?tally.now(), "stopped");
    Ok(())
}

async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// What the consumer did, for its operator (logged when it stops) and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Acceptances that made a new member.
    pub added: u64,
    /// Acceptances of a user who already was a member of the target.
    pub already_members: u64,
    /// Deliveries of a `message_id` already applied: acked, no effect.
    pub duplicates: u64,
    /// Acceptances behind a later event of their invite (applied all the same).
    pub out_of_order: u64,
    /// Deliveries that failed and went back to the queue.
    pub failed: u64,
}

#[derive(Debug, Default)]
pub struct Tally(Mutex<Counts>);

impl Counts {
    fn count(&mut self, handled: &Handled) {
        match handled {
            Handled::Applied { added, in_order } => {
                self.added += u64::from(*added);
                self.already_members += u64::from(!added);
                self.out_of_order += u64::from(!in_order);
            }
            Handled::Duplicate => self.duplicates += 1,
        }
    }
}

impl Tally {
    pub fn now(&self) -> Counts {
        self.0.lock().expect("tally").clone()
    }

    fn add(&self, count: impl FnOnce(&mut Counts)) {
        count(&mut self.0.lock().expect("tally"));
    }
}

async fn bounded<T>(call: impl Future<Output = lapin::Result<T>>) -> anyhow::Result<T> {
    let answer = tokio::time::timeout(BROKER_TIMEOUT, call).await;
    Ok(answer.context("RabbitMQ did not answer in time")??)
}

/// Consumes until `stop` resolves; reconnects after losing RabbitMQ.
/// The message being handled when `stop` comes is finished and acked first.
pub async fn run(
    settings: &Settings,
    tally: &Tally,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let db = store::open(settings.database_url.expose_secret()).await?;
    let mut stop = pin!(stop);
    let mut delays = RECONNECT.build();
    loop {
        let lost = match consume(settings, &db, tally, stop.as_mut()).await {
            Ok(Stopped) => break,
            Err(lost) => lost,
        };
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        tracing::warn!(
            error = format!("{lost:#}"),
            ?delay,
            "RabbitMQ lost; reconnecting"
        );
        tokio::select! {
            () = stop.as_mut() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    db.close().await.context("close the membership database")
}

/// `consume` ended because it was asked to.
struct Stopped;

async fn consume(
    settings: &Settings,
    db: &DatabaseConnection,
    tally: &Tally,
    mut stop: Pin<&mut impl Future<Output = ()>>,
) -> anyhow::Result<Stopped> {
    let properties = ConnectionProperties::default().with_connection_name("membership".into());
    let amqp_url = settings.amqp_url.expose_secret();
    let connection = bounded(Connection::connect(amqp_url, properties)).await?;
    let channel = bounded(connection.create_channel()).await?;
    declare_topology(&channel, settings).await?;
    // The prefetch bounds what is in flight; a graceful stop returns it all.
    bounded(channel.basic_qos(settings.prefetch, BasicQosOptions::default())).await?;
    let queue = settings.queue.as_str().into();
    let options = BasicConsumeOptions::default(); // no_ack: false, so acks are manual
    let mut consumer =
        bounded(channel.basic_consume(queue, "".into(), options, FieldTable::default())).await?;
    tracing::info!(queue = %settings.queue, "consuming");
    loop {
        let delivery = tokio::select! {
            () = stop.as_mut() => break,
            next = consumer.next() => next.context("RabbitMQ cancelled the consumer")??,
        };
        match handle(db, &delivery).await {
            Ok(handled) => {
                tally.add(|counts| counts.count(&handled));
                bounded(delivery.ack(BasicAckOptions::default())).await?;
            }
            Err(Failure::Message(error)) => {
                tally.add(|counts| counts.failed += 1);
                log_failure(&delivery, &error);
                // basic.reject, not basic.nack: from RabbitMQ 4.3 only a
                // reject counts towards the delivery limit, and a poison
                // message nacked back would loop for ever.
                let options = BasicRejectOptions { requeue: true };
                bounded(delivery.reject(options)).await?;
            }
            Err(Failure::Database(error)) => {
                tally.add(|counts| counts.failed += 1);
                log_failure(&delivery, &anyhow::Error::from(error));
                // Given back with a nack, which RabbitMQ 4.3 and later do not
                // count as a failed try (earlier versions do): wait for the
                // database first, or an outage could dead-letter good
                // messages. Stopping meanwhile gives the message back unacked.
                tokio::select! {
                    () = stop.as_mut() => break,
                    () = database_answers(db) => {}
                }
                bounded(delivery.nack(requeue())).await?;
            }
        }
    }
    // Closing returns the prefetched, unacked messages to the queue at once.
    let _ = bounded(connection.close(200, "membership consumer stopping".into())).await;
    Ok(Stopped)
}

fn requeue() -> BasicNackOptions {
    BasicNackOptions {
        requeue: true,
        ..Default::default()
    }
}

fn log_failure(delivery: &Delivery, error: &anyhow::Error) {
    // The quorum queue counts earlier deliveries in `x-delivery-count`.
    let earlier = header(delivery, "x-delivery-count").unwrap_or(0);
    tracing::warn!(
        message_id = message_id(delivery).unwrap_or_default(),
        delivery = earlier + 1,
        error = format!("{error:#}"),
        "failed; back to the queue (dead-lettered once past the delivery limit)"
    );
}

async fn database_answers(db: &DatabaseConnection) {
    let mut delays = RECONNECT.build();
    while db.ping().await.is_err() {
        tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
    }
}

/// Both go back to the queue (requeued); a message at fault counts towards
/// the delivery limit, and nothing is dropped outright. The consumer cannot always
/// tell a poison message from bad luck, RabbitMQ's count survives a consumer
/// that crashes on a message, and an event this build cannot read is one a
/// fixed build may: the dead-letter queue keeps it for that replay.
enum Failure {
    /// The message itself is at fault: it may fail every time.
    Message(anyhow::Error),
    /// The database failed: the message is most likely fine.
    Database(DbErr),
}

async fn handle(db: &DatabaseConnection, delivery: &Delivery) -> Result<Handled, Failure> {
    let acceptance = acceptance(delivery).map_err(Failure::Message)?;
    let handled = store::apply(db, &acceptance)
        .await
        .map_err(Failure::Database)?;
    let message_id = &acceptance.message_id;
    match handled {
        Handled::Duplicate => tracing::debug!(message_id, "duplicate: applied before"),
        Handled::Applied {
            in_order: false, ..
        } => tracing::info!(
            message_id,
            invite_id = acceptance.invite_id,
            sequence = acceptance.sequence,
            "behind a later event of its invite; applied all the same"
        ),
        Handled::Applied { .. } => tracing::debug!(message_id, "applied"),
    }
    Ok(handled)
}

/// Anything else on this queue is a mistake (a wider binding, a hand-made
/// message): it fails, and ends in the dead-letter queue for someone to see.
fn acceptance(delivery: &Delivery) -> anyhow::Result<Acceptance> {
    let message_id = message_id(delivery).context("no message_id")?;
    let event = InviteEvent::decode(delivery.data.as_slice()).context("not an InviteEvent")?;
    anyhow::ensure!(
        event.r#type() == InviteEventType::Accepted,
        "not an acceptance but {:?}",
        event.r#type()
    );
    let invite = event.invite.context("an acceptance without its invite")?;
    anyhow::ensure!(!event.actor_id.is_empty(), "an acceptance without its user");
    Ok(Acceptance {
        message_id,
        invite_id: invite.id,
        sequence: event.sequence,
        user_id: event.actor_id,
        target_type: invite.target_type,
        target_id: invite.target_id,
        role: invite.role,
    })
}

fn message_id(delivery: &Delivery) -> Option<String> {
    let id = delivery.properties.message_id().as_ref()?;
    Some(id.to_string()).filter(|id| !id.is_empty())
}

fn header(delivery: &Delivery, name: &str) -> Option<i64> {
    match delivery.properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some((*n).into()),
        _ => None,
    }
}
