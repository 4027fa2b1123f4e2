//! The example consumer as a task the test starts and stops, the test's own
//! view of RabbitMQ (publish by hand, count a queue, read the dead letters)
//! and of the consumer's database.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use clap::Parser as _;
use invite_service::store::entities::invite_event;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    message::BasicGetMessage,
    options::{
        BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
        QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, EntityTrait, QueryFilter, QueryOrder, Statement,
};
use tokio::{sync::oneshot, task::JoinHandle};
use uuid::Uuid;

use super::{
    churn::Acceptance,
    membership_consumer::{self as consumer, Settings, Tally},
};
use crate::helpers::*;

/// The consumer's settings as its flags give them: the app's exchange, a
/// queue and a database of the test's own (SQLite or PostgreSQL, as the app).
pub async fn consumer_settings(app: &TestApp, db: Db, delivery_limit: u16) -> Settings {
    let database_url = match db {
        Db::Postgres => fresh_database(Db::Postgres).await,
        Db::Sqlite => {
            let name = format!("invites_test_{}", Uuid::now_v7().simple());
            let dir = std::env::temp_dir().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            format!("sqlite://{}/memberships.db?mode=rwc", dir.display())
        }
    };
    let queue = format!("membership-test-{}", Uuid::now_v7().simple());
    let limit = delivery_limit.to_string();
    let args = [
        "membership_consumer",
        "--amqp-url",
        &amqp_url(),
        "--exchange",
        &app.exchange,
        "--queue",
        &queue,
        "--database-url",
        &database_url,
        "--delivery-limit",
        &limit,
    ];
    Settings::try_parse_from(args).expect("the consumer's flags parse")
}

/// `consumer::run` in a task, until `stop`.
pub struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub fn start(settings: &Settings, tally: &Arc<Tally>) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let (settings, tally) = (settings.clone(), tally.clone());
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            consumer::run(&settings, &tally, stopped).await
        });
        Self { stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("the consumer stops within 15 s")
            .expect("the consumer task")
            .expect("the consumer stops without an error");
    }
}

/// The test's own connection: declares the consumer's topology before any
/// event is published, publishes by hand, and reads the queues.
pub struct Broker {
    connection: Connection,
    channel: Channel,
}

impl Broker {
    pub async fn declare(settings: &Settings) -> Self {
        let url = amqp_url();
        let connection = Connection::connect(&url, ConnectionProperties::default())
            .await
            .unwrap_or_else(|err| panic!("RabbitMQ is not reachable at {url} ({err})"));
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        consumer::declare_topology(&channel, settings)
            .await
            .expect("declare the consumer's topology");
        Self {
            connection,
            channel,
        }
    }

    /// Publishes to the events exchange under `invite.accepted` with a message
    /// id and no headers: all the consumer reads.
    pub async fn publish(&self, exchange: &str, message_id: &str, body: &[u8]) {
        let properties = BasicProperties::default()
            .with_message_id(message_id.into())
            .with_delivery_mode(2);
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                "invite.accepted".into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap();
        let answer = confirm.await.unwrap();
        assert!(answer.is_ack(), "RabbitMQ took the message: {answer:?}");
    }

    /// Messages ready in `queue` (not those a consumer holds unacked).
    pub async fn ready(&self, queue: &str) -> u32 {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let declared = self
            .channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .unwrap();
        declared.message_count()
    }

    pub async fn take(&self, queue: &str) -> Option<BasicGetMessage> {
        let no_ack = BasicGetOptions { no_ack: true };
        self.channel.basic_get(queue.into(), no_ack).await.unwrap()
    }

    /// Removes the test's queues and exchanges.
    pub async fn delete(self, settings: &Settings) {
        for queue in [settings.queue.clone(), settings.dead_letter_queue()] {
            let options = QueueDeleteOptions::default();
            let _ = self.channel.queue_delete(queue.into(), options).await;
        }
        for exchange in [settings.dead_letter_exchange(), settings.exchange.clone()] {
            let options = ExchangeDeleteOptions::default();
            let _ = self.channel.exchange_delete(exchange.into(), options).await;
        }
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// A header of a message read from a queue, as text.
pub fn header(message: &BasicGetMessage, name: &str) -> Option<String> {
    let headers = message.delivery.properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(text) => Some(text.to_string()),
        AMQPValue::ShortString(text) => Some(text.to_string()),
        AMQPValue::LongLongInt(n) => Some(n.to_string()),
        AMQPValue::LongInt(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// Every membership row, in the shape of the acceptances.
pub async fn memberships(settings: &Settings) -> BTreeSet<Acceptance> {
    use secrecy::ExposeSecret as _;
    let db = Database::connect(settings.database_url.expose_secret())
        .await
        .unwrap();
    let sql = "SELECT target_type, target_id, user_id, invite_id FROM memberships";
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    db.close().await.ok();
    rows.iter()
        .map(|row| Acceptance {
            target_type: row.try_get("", "target_type").unwrap(),
            target_id: row.try_get("", "target_id").unwrap(),
            user: row.try_get("", "user_id").unwrap(),
            invite_id: row.try_get("", "invite_id").unwrap(),
        })
        .collect()
}

/// The service's `invite.accepted` events, from its outbox, by invite and sequence.
pub async fn accepted_events(database_url: &str) -> Vec<invite_event::Model> {
    let db = Database::connect(database_url).await.unwrap();
    let events = invite_event::Entity::find()
        .filter(invite_event::Column::EventType.eq("accepted"))
        .order_by_asc(invite_event::Column::InviteId)
        .order_by_asc(invite_event::Column::Sequence)
        .all(&db)
        .await
        .unwrap();
    db.close().await.ok();
    events
}

/// Polls `check` every 100 ms until it holds; fails after 30 s with what
/// the last look saw.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let limit = Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let seen = check().await;
        match seen {
            Ok(()) => return,
            Err(seen) if tokio::time::Instant::now() >= deadline => {
                panic!("{what}: not within {limit:?}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
