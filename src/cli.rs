//! The subcommands besides `serve`.

mod health;

use std::io::Write as _;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use crate::{
    broker,
    config::Settings,
    grpc::auth::{self, TokenRequest},
    pb,
    store::Store,
};

pub use health::probe as health;

pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let store = Store::open(settings.database_url.expose(), settings.pool()).await?;
    store.migrate().await?;
    store.close().await;
    tracing::info!("the database is migrated");
    Ok(())
}

/// Prints only the token, so that `$(invite-service token --sub alice)` works.
pub fn token(settings: &Settings, request: &TokenRequest<'_>) -> anyhow::Result<()> {
    let secret = auth::keys::signing_secret(settings)?;
    println!("{}", auth::mint(secret.expose_secret(), request)?);
    Ok(())
}

/// What a consumer's developer runs to watch the stream: a temporary queue
/// (exclusive, deleted on exit) bound to the exchange, one JSON line per event.
pub async fn events_tail(settings: &Settings, binding: &str) -> anyhow::Result<()> {
    let connection = broker::connect(settings.amqp_url.expose())
        .await
        .context("cannot reach RabbitMQ (--amqp-url / AMQP_URL)")?;
    let channel = connection.create_channel().await?;
    broker::declare_exchange(&channel, &settings.exchange).await?;
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
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            settings.exchange.as_str().into(),
            binding.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let event_type = invite_event_descriptor()?;
    tracing::info!(exchange = %settings.exchange, binding, "tailing events; Ctrl-C to stop");
    let mut stdout = std::io::stdout();
    loop {
        let delivery = tokio::select! {
            next = consumer.next() => match next {
                Some(delivery) => delivery?,
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        };
        let line = json!({
            "routing_key": delivery.routing_key.as_str(),
            "message_id": delivery.properties.message_id().as_ref().map(ToString::to_string),
            "redelivered": delivery.redelivered,
            "event": event_json(&event_type, &delivery.data),
        });
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        delivery.ack(BasicAckOptions::default()).await?;
    }
    Ok(())
}

/// The body in canonical protobuf JSON (proto field names, 64-bit integers
/// as strings, enums by name), or why it does not decode.
fn event_json(event_type: &MessageDescriptor, body: &[u8]) -> Value {
    let options = SerializeOptions::new().use_proto_field_name(true);
    DynamicMessage::decode(event_type.clone(), body)
        .map_err(|err| err.to_string())
        .and_then(|event| {
            event
                .serialize_with_options(serde_json::value::Serializer, &options)
                .map_err(|err| err.to_string())
        })
        .unwrap_or_else(|error| json!({ "undecodable": error }))
}

fn invite_event_descriptor() -> anyhow::Result<MessageDescriptor> {
    DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET)
        .context("the embedded descriptors")?
        .get_message_by_name(broker::MESSAGE_TYPE)
        .context("the embedded descriptors lack the event message")
}
