//! What the relay tests arrange: outbox rows written directly, a broker link
//! that counts connections and can hang, and queues read one message at a time.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use invite_service::{domain::EventKind, pb, store::entities::invite_event};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    message::BasicGetMessage,
    options::{BasicGetOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};
use prost::Message as _;
use sea_orm::{ActiveValue::Set, Database, EntityTrait, TransactionTrait};
use tokio::{net::TcpStream, sync::broadcast, task::JoinHandle};
use uuid::Uuid;

use crate::helpers::amqp_url;

/// An outbox row as a use case would write it, or broken on purpose.
pub struct RawEvent {
    pub id: Uuid,
    pub invite_id: Uuid,
    pub sequence: i64,
    pub kind: EventKind,
    pub payload: Vec<u8>,
    pub token: Option<String>,
}

impl RawEvent {
    pub fn new(invite_id: Uuid, sequence: i64, kind: EventKind) -> Self {
        let id = Uuid::now_v7();
        let body = pb::InviteEvent {
            event_id: id.to_string(),
            r#type: pb::InviteEventType::from(kind).into(),
            occurred_at: Some(pb::timestamp(chrono::Utc::now())),
            sequence,
            invite: Some(pb::Invite {
                id: invite_id.to_string(),
                inviter_id: "alice".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        Self {
            id,
            invite_id,
            sequence,
            kind,
            payload: body.encode_to_vec(),
            token: None,
        }
    }

    pub fn with_payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.into());
        self
    }

    fn row(self) -> invite_event::ActiveModel {
        invite_event::ActiveModel {
            id: Set(self.id),
            invite_id: Set(self.invite_id),
            sequence: Set(self.sequence),
            event_type: Set(self.kind.as_str().to_owned()),
            actor_id: Set("alice".into()),
            occurred_at: Set(chrono::Utc::now()),
            payload: Set(self.payload),
            token: Set(self.token),
            published_at: Set(None),
            ..Default::default()
        }
    }
}

/// Writes the rows in one transaction, so the relay finds them all at once.
pub async fn insert_events(database_url: &str, events: Vec<RawEvent>) {
    let db = Database::connect(database_url).await.unwrap();
    let txn = db.begin().await.unwrap();
    let rows: Vec<_> = events.into_iter().map(RawEvent::row).collect();
    for chunk in rows.chunks(500) {
        invite_event::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();
    db.close().await.ok();
}

/// A TCP forwarder to RabbitMQ that counts the connections made through it
/// and can hang the open ones: bytes stop flowing, the sockets stay open, as
/// with a broker that stopped answering. Connections made later flow.
pub struct Link {
    port: u16,
    accepted: Arc<AtomicUsize>,
    hang: broadcast::Sender<()>,
    forwarding: JoinHandle<()>,
}

impl Link {
    pub async fn up() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (hang, _) = broadcast::channel(1);
        let forwarding = tokio::spawn(forward(listener, accepted.clone(), hang.clone()));
        Self {
            port,
            accepted,
            hang,
            forwarding,
        }
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn hang_open_connections(&self) {
        let _ = self.hang.send(());
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.forwarding.abort();
    }
}

/// Aborting this task drops every connection, hung or not.
async fn forward(
    listener: tokio::net::TcpListener,
    accepted: Arc<AtomicUsize>,
    hang: broadcast::Sender<()>,
) {
    let broker: lapin::uri::AMQPUri = amqp_url().parse().unwrap();
    let target = format!("{}:{}", broker.authority.host, broker.authority.port);
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((mut inbound, _)) = listener.accept().await {
        accepted.fetch_add(1, Ordering::SeqCst);
        let target = target.clone();
        let mut hung = hang.subscribe();
        connections.spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = hung.recv() => std::future::pending().await,
            }
        });
    }
}

/// A queue of the test's own, bound with `#`, read with basic.get.
pub struct Queue {
    connection: Connection,
    channel: Channel,
    name: String,
    exchange: String,
}

impl Queue {
    pub async fn bind(exchange: &str, arguments: FieldTable) -> Self {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        invite_service::broker::declare_exchange(&channel, exchange)
            .await
            .unwrap();
        let name = format!("relay-test-{}", Uuid::now_v7().simple());
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        };
        channel
            .queue_declare(name.as_str().into(), exclusive, arguments)
            .await
            .unwrap();
        channel
            .queue_bind(
                name.as_str().into(),
                exchange.into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self {
            connection,
            channel,
            name,
            exchange: exchange.to_owned(),
        }
    }

    /// A consumer's queue that holds one message and refuses more
    /// (`x-overflow=reject-publish`), already full.
    pub async fn full(exchange: &str) -> Self {
        let mut arguments = FieldTable::default();
        arguments.insert("x-max-length".into(), AMQPValue::LongInt(1));
        arguments.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
        let queue = Self::bind(exchange, arguments).await;
        queue.put_filler().await;
        queue
    }

    async fn put_filler(&self) {
        self.channel
            .basic_publish(
                "".into(),
                self.name.as_str().into(),
                BasicPublishOptions::default(),
                b"filler",
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        for _ in 0..100 {
            if self.depth().await == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the filler did not reach the queue");
    }

    async fn depth(&self) -> u32 {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        self.channel
            .queue_declare(self.name.as_str().into(), passive, FieldTable::default())
            .await
            .unwrap()
            .message_count()
    }

    /// Takes the filler out: the queue has room for one message.
    pub async fn drain_filler(&self) {
        let filler = self.get().await.expect("the filler");
        assert_eq!(filler.data, b"filler");
    }

    async fn get(&self) -> Option<BasicGetMessage> {
        let no_ack = BasicGetOptions { no_ack: true };
        self.channel
            .basic_get(self.name.as_str().into(), no_ack)
            .await
            .unwrap()
    }

    /// The next event the relay put in, waiting up to `limit` for it.
    pub async fn next_within(&self, limit: Duration) -> pb::InviteEvent {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(message) = self.get().await {
                return pb::InviteEvent::decode(message.data.as_slice()).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no event within {limit:?}");
    }

    /// Removes the test's exchange; the queue goes with the connection.
    pub async fn close(self) {
        let _ = self
            .channel
            .exchange_delete(self.exchange.as_str().into(), Default::default())
            .await;
        let _ = self.connection.close(200, "done".into()).await;
    }
}
