//! RabbitMQ through lapin: the events exchange, and a publisher with confirms.

use std::time::Duration;

use tokio::time::Instant;

use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
    PublisherConfirm,
    options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions},
    types::{AMQPValue, FieldTable},
};

/// Every broker call is bounded: lapin can wait forever on a broker that is
/// shutting down or a network that drops packets.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

pub const CONTENT_TYPE: &str = "application/x-protobuf";
pub const MESSAGE_TYPE: &str = "invites.v1.InviteEvent";
pub const APP_ID: &str = "invite-service";
/// The CloudEvents `source`: a URI reference naming this service; with the
/// event id (a UUIDv7) it names each event uniquely.
pub const CLOUD_EVENTS_SOURCE: &str = "/invite-service";

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("RabbitMQ did not answer within {0:?}")]
    Timeout(Duration),
}

async fn bounded<T>(call: impl Future<Output = Result<T, lapin::Error>>) -> Result<T, BrokerError> {
    tokio::time::timeout(BROKER_TIMEOUT, call)
        .await
        .map_err(|_| BrokerError::Timeout(BROKER_TIMEOUT))?
        .map_err(BrokerError::from)
}

pub async fn connect(amqp_url: &str) -> Result<Connection, BrokerError> {
    let properties = ConnectionProperties::default().with_connection_name(APP_ID.into());
    bounded(Connection::connect(amqp_url, properties)).await
}

/// The events exchange: topic, durable. Declaring is idempotent, so the
/// service, `events tail` and consumers may all declare it.
pub async fn declare_exchange(channel: &Channel, exchange: &str) -> Result<(), BrokerError> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    bounded(channel.exchange_declare(
        exchange.into(),
        ExchangeKind::Topic,
        options,
        FieldTable::default(),
    ))
    .await
}

/// One connection and one confirm-mode channel to the events exchange.
pub struct Publisher {
    connection: Connection,
    channel: Channel,
    exchange: String,
}

/// The broker's answer to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// Acked: the broker has it.
    Taken,
    /// Acked, but routed nowhere: no queue is bound for its key (see `confirmed`).
    Unrouted,
    /// Nacked: a queue it was routed to refused it, typically because it is full.
    Refused,
}

/// One event as it goes on the wire.
pub struct Message<'a> {
    pub routing_key: &'a str,
    pub message_id: &'a str,
    pub timestamp_secs: u64,
    pub body: &'a [u8],
    /// Also in the body; as headers, a consumer can route, deduplicate or
    /// order without decoding it.
    pub invite_id: &'a str,
    pub sequence: i64,
    pub request_id: Option<&'a str>,
    /// When the change was committed, RFC 3339 to the microsecond.
    pub time: &'a str,
}

impl Message<'_> {
    /// The message's AMQP properties: persistent, with its id, types, time
    /// and headers.
    pub fn properties(&self) -> BasicProperties {
        BasicProperties::default()
            .with_message_id(self.message_id.into())
            .with_content_type(CONTENT_TYPE.into())
            .with_type(MESSAGE_TYPE.into())
            .with_app_id(APP_ID.into())
            .with_timestamp(self.timestamp_secs)
            .with_headers(self.headers())
            .with_delivery_mode(2)
    }

    /// `invite_id`, `sequence`, `event_type` (the routing key) and, for an
    /// event a call caused, `x-request-id`; and the CloudEvents 1.0
    /// attributes with the `cloudEvents:` prefix of its AMQP binding, so that
    /// a consumer built on a CloudEvents SDK reads the event as it is.
    fn headers(&self) -> FieldTable {
        let mut headers = FieldTable::default();
        let text = |value: &str| AMQPValue::LongString(value.into());
        headers.insert("invite_id".into(), text(self.invite_id));
        headers.insert("sequence".into(), AMQPValue::LongLongInt(self.sequence));
        headers.insert("event_type".into(), text(self.routing_key));
        if let Some(request_id) = self.request_id {
            headers.insert("x-request-id".into(), text(request_id));
        }
        for (attribute, value) in [
            ("id", self.message_id),
            ("source", CLOUD_EVENTS_SOURCE),
            ("specversion", "1.0"),
            ("type", self.routing_key),
            ("time", self.time),
            ("subject", self.invite_id),
            ("datacontenttype", CONTENT_TYPE),
        ] {
            headers.insert(format!("cloudEvents:{attribute}").into(), text(value));
        }
        headers
    }
}

impl Publisher {
    pub async fn connect(amqp_url: &str, exchange: &str) -> Result<Self, BrokerError> {
        let connection = connect(amqp_url).await?;
        let channel = bounded(connection.create_channel()).await?;
        bounded(channel.confirm_select(ConfirmSelectOptions::default())).await?;
        declare_exchange(&channel, exchange).await?;
        Ok(Self {
            connection,
            channel,
            exchange: exchange.to_owned(),
        })
    }

    pub fn is_connected(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    /// Sends a message; the returned future resolves to the broker's confirm.
    /// Messages are persistent and mandatory.
    pub async fn send(&self, message: &Message<'_>) -> Result<PublisherConfirm, BrokerError> {
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        bounded(self.channel.basic_publish(
            self.exchange.as_str().into(),
            message.routing_key.into(),
            options,
            message.body,
            message.properties(),
        ))
        .await
    }

    /// Waits for one confirm until `deadline`, which a whole batch shares:
    /// a broker that stopped answering costs one timeout, not one per message.
    ///
    /// An ack with a returned message (312 NO_ROUTE) means no queue is bound
    /// for that routing key: the broker has taken the message and routed it
    /// nowhere. That counts as published: a topic exchange's consumers choose
    /// their keys, and one key nobody binds must not hold every later event
    /// back. The relay logs it, so it is not silent. A nack (a full queue with
    /// `x-overflow=reject-publish`) refuses this message only: the channel
    /// stays usable, so it is an answer, not an error.
    pub async fn confirmed(
        confirm: PublisherConfirm,
        deadline: Instant,
    ) -> Result<Confirmed, BrokerError> {
        let answer = tokio::time::timeout_at(deadline, confirm)
            .await
            .map_err(|_| BrokerError::Timeout(BROKER_TIMEOUT))??;
        match answer {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(Confirmed::Taken),
            Confirmation::Ack(Some(_returned)) => Ok(Confirmed::Unrouted),
            Confirmation::Nack(_) => Ok(Confirmed::Refused),
        }
    }

    pub async fn close(self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.connection.close(200, "invite-service stopping".into()),
        )
        .await;
    }
}
