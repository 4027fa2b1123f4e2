//! The consumer's exchanges and queues: its quorum queue bound to
//! `invite.accepted`, and where the messages it gives up on go.

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};

use super::{Settings, bounded};

/// The only events this consumer needs: its queue is bound to this key alone.
const ROUTING_KEY: &str = "invite.accepted";

/// The events exchange (declared as the service declares it, so either may
/// start first), the dead-letter exchange and queue, and the consumer's queue.
/// Declaring is idempotent: the consumer does it at every (re)connect.
///
/// Queue arguments cannot change once a queue exists (a different value is a
/// PRECONDITION_FAILED): to change the delivery limit of a running queue, set
/// it with a policy (`rabbitmqctl set_policy … '{"delivery-limit": 10}'`).
pub async fn declare_topology(channel: &Channel, settings: &Settings) -> anyhow::Result<()> {
    let (dlx, dlq) = (
        settings.dead_letter_exchange(),
        settings.dead_letter_queue(),
    );
    exchange(channel, &settings.exchange, ExchangeKind::Topic).await?;
    exchange(channel, &dlx, ExchangeKind::Fanout).await?;
    queue(channel, &dlq, quorum()).await?;
    bind(channel, &dlq, &dlx, "").await?;

    let mut arguments = quorum();
    arguments.insert("x-dead-letter-exchange".into(), text(&dlx));
    // Quorum queues count deliveries, across consumers and restarts; one that
    // crashes on a message never gets to count it itself.
    let limit = AMQPValue::LongInt(settings.delivery_limit.into());
    arguments.insert("x-delivery-limit".into(), limit);
    // The default, at-most-once, drops a dead letter the DLQ cannot take at
    // that moment; at-least-once keeps it until the DLQ has it, and needs
    // reject-publish (no length limit is set, so nothing is refused for it).
    arguments.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    arguments.insert("x-overflow".into(), text("reject-publish"));
    queue(channel, &settings.queue, arguments).await?;
    bind(channel, &settings.queue, &settings.exchange, ROUTING_KEY).await
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

fn quorum() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), text("quorum"));
    arguments
}

async fn exchange(channel: &Channel, name: &str, kind: ExchangeKind) -> anyhow::Result<()> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let declare = channel.exchange_declare(name.into(), kind, options, FieldTable::default());
    bounded(declare).await
}

async fn queue(channel: &Channel, name: &str, arguments: FieldTable) -> anyhow::Result<()> {
    // Quorum queues are durable, and neither exclusive nor auto-delete.
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    bounded(channel.queue_declare(name.into(), options, arguments)).await?;
    Ok(())
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> anyhow::Result<()> {
    let options = QueueBindOptions::default();
    let bind = channel.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        options,
        FieldTable::default(),
    );
    bounded(bind).await
}
