//! The subcommands besides `serve`.

mod health;

use std::io::Write as _;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};
use prost::Message as _;
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
        let line = match pb::InviteEvent::decode(delivery.data.as_slice()) {
            Ok(event) => event_json(&event, delivery.routing_key.as_str()),
            Err(err) => {
                json!({ "routing_key": delivery.routing_key.as_str(), "error": err.to_string() })
            }
        };
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        delivery.ack(BasicAckOptions::default()).await?;
    }
    Ok(())
}

fn rfc3339(ts: &Option<prost_types::Timestamp>) -> Value {
    ts.as_ref()
        .and_then(pb::from_timestamp)
        .map_or(Value::Null, |at| {
            Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        })
}

fn event_json(event: &pb::InviteEvent, routing_key: &str) -> Value {
    let mut line = json!({
        "routing_key": routing_key,
        "event_id": event.event_id,
        "type": event.r#type().as_str_name(),
        "occurred_at": rfc3339(&event.occurred_at),
        "actor_id": event.actor_id,
        "sequence": event.sequence,
        "invite": event.invite.as_ref().map(invite_json),
    });
    if !event.token.is_empty() {
        line["token"] = Value::String(event.token.clone());
    }
    line
}

fn invite_json(invite: &pb::Invite) -> Value {
    let invitee = match &invite.invitee {
        Some(pb::invite::Invitee::InviteeEmail(email)) => json!({ "invitee_email": email }),
        Some(pb::invite::Invitee::InviteePhone(phone)) => json!({ "invitee_phone": phone }),
        Some(pb::invite::Invitee::InviteeUserId(id)) => json!({ "invitee_user_id": id }),
        None => json!({ "allowed_email_domains": invite.allowed_email_domains }),
    };
    let mut value = json!({
        "id": invite.id,
        "target_type": invite.target_type,
        "target_id": invite.target_id,
        "inviter_id": invite.inviter_id,
        "role": invite.role,
        "status": invite.status().as_str_name(),
        "starts_at": rfc3339(&invite.starts_at),
        "expires_at": rfc3339(&invite.expires_at),
        "max_uses": invite.max_uses,
        "use_count": invite.use_count,
        "requires_passcode": invite.requires_passcode,
        "metadata": invite.metadata.as_ref().map(pb::struct_to_json),
        "accepted_by": invite.accepted_by,
        "accepted_at": rfc3339(&invite.accepted_at),
        "rejected_at": rfc3339(&invite.rejected_at),
        "revoked_by": invite.revoked_by,
        "revoked_at": rfc3339(&invite.revoked_at),
        "revoke_reason": invite.revoke_reason,
        "create_time": rfc3339(&invite.create_time),
        "update_time": rfc3339(&invite.update_time),
        "etag": invite.etag,
    });
    if let (Value::Object(fields), Value::Object(who)) = (&mut value, invitee) {
        fields.extend(who);
    }
    value
}
