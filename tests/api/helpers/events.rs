//! A queue of the test's own, bound to the test's exchange, to read what the server publishes.

use std::time::Duration;

use futures_util::StreamExt as _;
use invite_service::pb::{self};
use lapin::{
    Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicConsumeOptions, ExchangeDeleteOptions, QueueBindOptions,
        QueueDeclareOptions,
    },
    types::FieldTable,
};
use prost::Message as _;

use super::*;

/// One received message, decoded, with what the broker carried around it.
pub struct Received {
    pub routing_key: String,
    pub event: pb::InviteEvent,
    /// The message body as the broker carried it, before decoding.
    pub body: Vec<u8>,
    pub properties: lapin::BasicProperties,
}

impl Received {
    /// An AMQP header of the message, as text (numbers as their digits).
    pub fn header(&self, name: &str) -> Option<String> {
        use lapin::types::AMQPValue;
        let headers = self.properties.headers().as_ref()?;
        Some(match headers.inner().get(name)? {
            AMQPValue::LongString(text) => text.to_string(),
            AMQPValue::ShortString(text) => text.to_string(),
            AMQPValue::LongLongInt(n) => n.to_string(),
            other => panic!("header {name} is {other:?}"),
        })
    }
}

/// Asserts what each received event says, in the order received: routing
/// key, invite id, actor and the invite's sequence number.
pub fn assert_events(received: &[Received], expected: &[(&str, &str, &str, i64)]) {
    let got: Vec<_> = received
        .iter()
        .map(|r| {
            (
                r.routing_key.as_str(),
                r.event.invite.as_ref().map_or("", |i| i.id.as_str()),
                r.event.actor_id.as_str(),
                r.event.sequence,
            )
        })
        .collect();
    assert_eq!(got, expected, "(routing key, invite, actor, sequence)");
}

/// A queue of the test's own, bound with `#` to the test's exchange.
pub struct Events {
    connection: Connection,
    exchange: String,
    consumer: lapin::Consumer,
}

impl Events {
    pub async fn bind(exchange: &str) -> Self {
        Self::bind_to(exchange, "#").await
    }

    /// A queue of the test's own bound with `binding` only, as a consumer
    /// that cares for some routing keys binds.
    pub async fn bind_to(exchange: &str, binding: &str) -> Self {
        let url = amqp_url();
        let connection = Connection::connect(&url, ConnectionProperties::default())
            .await
            .unwrap_or_else(|err| {
                panic!("RabbitMQ is not reachable at {url} ({err}). Start it: rabbitmq-server -detached")
            });
        let channel = connection.create_channel().await.unwrap();
        invite_service::broker::declare_exchange(&channel, exchange)
            .await
            .unwrap();
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.into(),
                binding.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self {
            connection,
            exchange: exchange.to_owned(),
            consumer,
        }
    }

    pub async fn next(&mut self) -> Received {
        let delivery = tokio::time::timeout(Duration::from_secs(15), self.consumer.next())
            .await
            .expect("no event within 15 s")
            .expect("the consumer ended")
            .expect("a delivery");
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        Received {
            routing_key: delivery.routing_key.to_string(),
            event: pb::InviteEvent::decode(delivery.data.as_slice()).expect("an InviteEvent body"),
            body: delivery.data.clone(),
            properties: delivery.properties.clone(),
        }
    }

    /// The next `n` events.
    pub async fn take(&mut self, n: usize) -> Vec<Received> {
        let mut received = Vec::with_capacity(n);
        for _ in 0..n {
            received.push(self.next().await);
        }
        received
    }

    /// Fails if anything else arrives within `quiet`.
    /// Only a wait that times out counts as quiet: a consumer that failed or
    /// ended would hear nothing either, and must not pass for one.
    pub async fn assert_no_more(&mut self, quiet: Duration) {
        match tokio::time::timeout(quiet, self.consumer.next()).await {
            Err(_quiet) => {}
            Ok(Some(Ok(delivery))) => {
                panic!("unexpected event with routing key {}", delivery.routing_key)
            }
            Ok(Some(Err(err))) => panic!("the consumer failed, which is not quiet: {err}"),
            Ok(None) => panic!("the consumer ended: a dead consumer is not quiet"),
        }
    }

    /// Removes the test's exchange; its queue goes with the connection.
    pub async fn delete_exchange(self) {
        if let Ok(channel) = self.connection.create_channel().await {
            let _ = channel
                .exchange_delete(
                    self.exchange.as_str().into(),
                    ExchangeDeleteOptions::default(),
                )
                .await;
        }
        let _ = self.connection.close(200, "done".into()).await;
    }
}

#[tokio::test]
#[should_panic(expected = "not quiet")]
async fn a_dead_consumer_does_not_pass_for_a_quiet_one() {
    let exchange = format!("invites-test-{}", uuid::Uuid::now_v7().simple());
    let mut events = Events::bind(&exchange).await;
    events.connection.close(200, "gone".into()).await.unwrap();
    events.assert_no_more(Duration::from_secs(2)).await;
}
