//! The relay against its yardstick: how fast it drains a backlog compared
//! with a raw lapin publisher with confirms on the same broker (same body
//! size, same kind of queue), and how long an event takes from its commit to
//! a consumer at a steady rate.

use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use invite_service::{broker, pb};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
        QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::FieldTable,
};
use prost::Message as _;
use sea_orm::{
    ColumnTrait as _, Database, DatabaseConnection, EntityTrait as _, PaginatorTrait as _,
    QueryFilter as _,
};
use tokio::time::Instant;

/// Messages a raw burst sends before awaiting their confirms, as the relay does.
const BURST: usize = 200;

/// A durable queue bound to every key of `exchange`, as a consumer's would be.
pub async fn bind_queue(
    amqp_url: &str,
    exchange: &str,
) -> anyhow::Result<(Connection, Channel, String)> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    broker::declare_exchange(&channel, exchange).await?;
    let queue = format!("{exchange}.bench");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.as_str().into(), durable, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((connection, channel, queue))
}

pub async fn delete_queue(channel: &Channel, queue: &str) {
    let _ = channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await;
}

/// How many events wait in the outbox.
pub async fn backlog(database_url: &str) -> anyhow::Result<u64> {
    let db = Database::connect(database_url).await?;
    let waiting = waiting(&db).await?;
    db.close().await?;
    Ok(waiting)
}

async fn waiting(db: &DatabaseConnection) -> anyhow::Result<u64> {
    use invite_service::store::entities::invite_event;
    Ok(invite_event::Entity::find()
        .filter(invite_event::Column::PublishedAt.is_null())
        .count(db)
        .await?)
}

/// Events per second until the outbox is empty, timed from the first event
/// the relay publishes (not from the server's start-up and migrations).
/// Watched on one connection every 25 ms: a connection per look, every
/// 10 ms, took CPU from the relay it measured on this 2-core machine.
pub async fn drain_rate(database_url: &str, waiting_at_start: u64) -> anyhow::Result<f64> {
    let db = Database::connect(database_url).await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut first = None;
    loop {
        let left = waiting(&db).await?;
        let now = Instant::now();
        if left < waiting_at_start && first.is_none() {
            first = Some((now, left));
        }
        if let (0, Some((started, from))) = (left, first) {
            db.close().await?;
            return Ok(from as f64 / now.duration_since(started).as_secs_f64());
        }
        anyhow::ensure!(
            now < deadline,
            "the relay left {left} events after 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// What the raw publisher sends with each body.
#[derive(Debug, Clone, Copy)]
pub enum Envelope {
    /// A message id and persistence only.
    Bare,
    /// The properties and the eleven headers the relay sends with an event
    /// (CloudEvents attributes among them): the same message on the wire.
    AsTheRelays,
}

impl Envelope {
    fn properties(self, n: usize) -> BasicProperties {
        let bare = || {
            BasicProperties::default()
                .with_message_id(n.to_string().into())
                .with_delivery_mode(2)
        };
        let (id, invite_id, request_id) = (
            uuid::Uuid::now_v7().to_string(),
            uuid::Uuid::now_v7().to_string(),
            uuid::Uuid::now_v7().to_string(),
        );
        let now = chrono::Utc::now();
        let time = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        match self {
            Self::Bare => bare(),
            Self::AsTheRelays => broker::Message {
                routing_key: "invite.created",
                message_id: &id,
                timestamp_secs: now.timestamp() as u64,
                body: &[],
                invite_id: &invite_id,
                sequence: 1,
                request_id: Some(&request_id),
                time: &time,
            }
            .properties(),
        }
    }
}

/// A raw publisher with confirms: `count` bodies of `body_size` bytes to a
/// durable queue, in bursts of 200 awaited together. Messages per second.
pub async fn raw_publish_rate(
    amqp_url: &str,
    count: usize,
    body_size: usize,
    envelope: Envelope,
) -> anyhow::Result<f64> {
    let exchange = format!("invites-bench-raw-{}", uuid::Uuid::now_v7().simple());
    let (connection, channel, queue) = bind_queue(amqp_url, &exchange).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let body = vec![0xab_u8; body_size];
    let started = Instant::now();
    for burst in (0..count).collect::<Vec<_>>().chunks(BURST) {
        let mut confirms = Vec::with_capacity(burst.len());
        for n in burst {
            let properties = envelope.properties(*n);
            confirms.push(
                channel
                    .basic_publish(
                        exchange.as_str().into(),
                        "invite.created".into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..Default::default()
                        },
                        &body,
                        properties,
                    )
                    .await?,
            );
        }
        for confirm in confirms {
            confirm.await?;
        }
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    delete_queue(&channel, &queue).await;
    let _ = channel
        .exchange_delete(exchange.as_str().into(), Default::default())
        .await;
    connection.close(200, "done".into()).await?;
    Ok(rate)
}

/// From each event's `occurred_at` to its delivery, while `load` runs: the
/// p50 and p99 in milliseconds over `count` events.
pub async fn commit_to_consumer(
    channel: &Channel,
    queue: &str,
    count: usize,
) -> anyhow::Result<(f64, f64)> {
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut latencies = Vec::with_capacity(count);
    while latencies.len() < count {
        let delivery = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .context("no event for 30 s")?
            .context("the consumer ended")??;
        let event = pb::InviteEvent::decode(delivery.data.as_slice())?;
        let occurred = event
            .occurred_at
            .as_ref()
            .and_then(pb::from_timestamp)
            .context("an event without occurred_at")?;
        let waited = chrono::Utc::now() - occurred;
        latencies.push(waited.as_seconds_f64() * 1000.0);
        delivery.ack(BasicAckOptions::default()).await?;
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}
