//! `spawn_app`: a real server on an ephemeral port, its own database (a fresh
//! PostgreSQL database or a fresh SQLite file) and its own exchange, plus a
//! queue bound to that exchange to read what it publishes.

use std::{path::PathBuf, sync::Once, time::Duration};

use clap::Parser as _;
use futures_util::StreamExt as _;
use invite_service::{
    config::{Cli, Settings},
    domain::Grant,
    grpc::auth::{DEFAULT_GRANTS_CLAIM, TokenRequest, mint},
    pb::{self, invite_service_client::InviteServiceClient},
    startup::Application,
};
use lapin::{
    Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicConsumeOptions, ExchangeDeleteOptions, QueueBindOptions,
        QueueDeclareOptions,
    },
    types::FieldTable,
};
use prost::Message as _;
use sea_orm::{ConnectionTrait, Database};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{Request, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use uuid::Uuid;

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Generates one test per database from an `async fn name(db: Db)`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Db::Postgres).await
            }
        }
    )*};
}

pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn init_logs() {
    static ONCE: Once = Once::new();
    // Silent unless asked: TEST_LOG=1 cargo test.
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            invite_service::telemetry::init();
        }
    });
}

/// A database of the test's own, named after a fresh UUID.
pub async fn fresh_database(db: Db) -> String {
    forget_old_test_data(db).await;
    let name = format!("invites_test_{}", Uuid::now_v7().simple());
    match db {
        Db::Sqlite => {
            let dir: PathBuf = std::env::temp_dir().join(&name);
            format!("sqlite://{}/invites.db?mode=rwc", dir.display())
        }
        Db::Postgres => {
            let admin_url = postgres_admin_url();
            let admin = Database::connect(&admin_url).await.unwrap_or_else(|err| {
                panic!(
                    "PostgreSQL is not reachable at {admin_url} ({err}). Start it: \
                     pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
                )
            });
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create the test database");
            admin.close().await.ok();
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(base, _)| base);
            format!("{base}/{name}")
        }
    }
}

/// Test databases are left behind for post-mortems; those of runs over an
/// hour old (their names are UUIDv7s, which carry the time) are removed once
/// per test process. A run going on beside this one is not touched.
async fn forget_old_test_data(db: Db) {
    static SQLITE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    static POSTGRES: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let is_old = |name: &str| {
        let Some(id) = name.strip_prefix("invites_test_") else {
            return false;
        };
        let Some(made) = Uuid::parse_str(id).ok().and_then(|id| id.get_timestamp()) else {
            return false;
        };
        let age = chrono::Utc::now().timestamp() - made.to_unix().0 as i64;
        age > 3600
    };
    match db {
        Db::Sqlite => {
            SQLITE
                .get_or_init(|| async {
                    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
                        return;
                    };
                    for entry in entries.flatten() {
                        if is_old(&entry.file_name().to_string_lossy()) {
                            let _ = std::fs::remove_dir_all(entry.path());
                        }
                    }
                })
                .await;
        }
        Db::Postgres => {
            POSTGRES
                .get_or_init(|| async {
                    let Ok(admin) = Database::connect(&postgres_admin_url()).await else {
                        return;
                    };
                    let names = admin
                        .query_all_raw(sea_orm::Statement::from_string(
                            sea_orm::DbBackend::Postgres,
                            "SELECT datname FROM pg_database WHERE datname LIKE 'invites_test_%'",
                        ))
                        .await
                        .unwrap_or_default();
                    for row in names {
                        let Ok(name) = row.try_get::<String>("", "datname") else {
                            continue;
                        };
                        if is_old(&name) {
                            let _ = admin
                                .execute_unprepared(&format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                ))
                                .await;
                        }
                    }
                    admin.close().await.ok();
                })
                .await;
        }
    }
}

/// A TCP forwarder to RabbitMQ that a test cuts and restores, to take the
/// broker away from one service without stopping the broker other tests use.
pub struct BrokerLink {
    port: u16,
    forwarding: Option<JoinHandle<()>>,
}

impl BrokerLink {
    pub async fn up() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        Self {
            port,
            forwarding: Some(tokio::spawn(forward(listener))),
        }
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Drops every forwarded connection and refuses new ones.
    pub fn cut(&mut self) {
        if let Some(forwarding) = self.forwarding.take() {
            forwarding.abort();
        }
    }

    pub async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.forwarding = Some(tokio::spawn(forward(listener)));
    }
}

/// Forwards each connection to the broker; aborting this task drops them all.
async fn forward(listener: tokio::net::TcpListener) {
    let broker: lapin::uri::AMQPUri = amqp_url().parse().expect("TEST_AMQP_URL");
    let target = format!("{}:{}", broker.authority.host, broker.authority.port);
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((mut inbound, _)) = listener.accept().await {
        let target = target.clone();
        connections.spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub database_url: String,
    pub exchange: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

#[derive(Clone)]
pub struct Options {
    pub database_url: String,
    pub exchange: String,
    pub amqp_url: String,
    pub sweep_interval: Duration,
    /// More flags, as an operator would pass them (`--create-policy open`).
    pub flags: Vec<String>,
}

impl Options {
    pub async fn fresh(db: Db) -> Self {
        Self {
            database_url: fresh_database(db).await,
            exchange: format!("invites-test-{}", Uuid::now_v7().simple()),
            amqp_url: amqp_url(),
            sweep_interval: Duration::from_secs(3600),
            flags: Vec::new(),
        }
    }
}

/// The settings a server under test runs with, parsed by clap like the
/// binary's, so that every default is the one users get.
pub fn settings(options: &Options) -> Settings {
    let sweep_interval = humantime::format_duration(options.sweep_interval).to_string();
    let mut args: Vec<&str> = vec![
        "invite-service",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &options.database_url,
        "--amqp-url",
        &options.amqp_url,
        "--exchange",
        &options.exchange,
        "--jwt-secret",
        SECRET,
        "--sweep-interval",
        &sweep_interval,
        "--drain-timeout",
        "10s",
    ];
    args.extend(options.flags.iter().map(String::as_str));
    Cli::try_parse_from(args)
        .expect("the test settings parse")
        .settings
}

/// A server on its own database and exchange, serving once this returns.
pub async fn spawn_app(db: Db) -> TestApp {
    TestApp::start(Options::fresh(db).await).await
}

impl TestApp {
    pub async fn start(options: Options) -> Self {
        let app = Self::start_unready(&options).await;
        app.wait_until_serving().await;
        app
    }

    /// Starts without waiting for the database.
    pub async fn start_unready(options: &Options) -> Self {
        init_logs();
        let application = Application::build(settings(options))
            .await
            .expect("build the app");
        let addr = application.local_addr();
        let (stop, stopped) = oneshot::channel();
        let server = tokio::spawn(application.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            database_url: options.database_url.clone(),
            exchange: options.exchange.clone(),
            stop: Some(stop),
            server: Some(server),
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("connect to the test server")
    }

    pub async fn client(&self) -> InviteServiceClient<Channel> {
        InviteServiceClient::new(self.channel().await)
    }

    pub async fn health(&self) -> ServingStatus {
        let mut health = HealthClient::new(self.channel().await);
        let response = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health check");
        response.into_inner().status()
    }

    pub async fn wait_until_serving(&self) {
        for _ in 0..200 {
            if self.health().await == ServingStatus::Serving {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not become SERVING within 10 s");
    }

    /// Stops the server as SIGTERM would, and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

/// The target types the tests invite to: every test user may invite to any
/// of them with any role, unless a test says otherwise with [`token_granting`].
pub const TEST_GRANTS: [&str; 3] = ["organization/*", "party/*", "account_group/*"];

/// A signed bearer token for `sub`, optionally with a verified email / admin
/// scope, granted [`TEST_GRANTS`].
pub fn token(sub: &str, email: Option<&str>, admin: bool) -> String {
    token_granting(sub, email, admin, &TEST_GRANTS)
}

/// A signed bearer token with exactly these grants (`TYPE/ID[=ROLE,ROLE]`).
pub fn token_granting(sub: &str, email: Option<&str>, admin: bool, grants: &[&str]) -> String {
    let grants: Vec<Grant> = grants.iter().map(|g| g.parse().unwrap()).collect();
    mint(
        SECRET.as_bytes(),
        &TokenRequest {
            sub,
            email,
            admin,
            ttl: Duration::from_secs(3600),
            issuer: None,
            audience: None,
            grants: &grants,
            grants_claim: DEFAULT_GRANTS_CLAIM,
        },
    )
    .unwrap()
}

/// Wraps a message with `authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// One received message, decoded, with what the broker carried around it.
pub struct Received {
    pub routing_key: String,
    pub event: pb::InviteEvent,
    pub properties: lapin::BasicProperties,
}

/// A queue of the test's own, bound with `#` to the test's exchange.
pub struct Events {
    connection: Connection,
    exchange: String,
    consumer: lapin::Consumer,
}

impl Events {
    pub async fn bind(exchange: &str) -> Self {
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
                "#".into(),
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
    pub async fn assert_no_more(&mut self, quiet: Duration) {
        if let Ok(Some(Ok(delivery))) = tokio::time::timeout(quiet, self.consumer.next()).await {
            panic!("unexpected event with routing key {}", delivery.routing_key);
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

/// An invite to `target_id` for the given email, as a CreateInviteRequest.
pub fn email_invite(target_id: &str, email: &str) -> pb::CreateInviteRequest {
    pb::CreateInviteRequest {
        invite: Some(pb::Invite {
            target_type: "organization".into(),
            target_id: target_id.into(),
            invitee: Some(pb::invite::Invitee::InviteeEmail(email.into())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An open link to `target_id` that `max_uses` users may use.
pub fn open_link(target_id: &str, max_uses: Option<i32>) -> pb::CreateInviteRequest {
    pb::CreateInviteRequest {
        invite: Some(pb::Invite {
            target_type: "party".into(),
            target_id: target_id.into(),
            max_uses,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `ErrorInfo.reason` of a status.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

/// The fields a status's `BadRequest` names.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .bad_request()
        .map(|br| {
            br.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

pub fn accept_by_token(token: impl Into<String>) -> pb::AcceptInviteRequest {
    pb::AcceptInviteRequest {
        invite_ref: Some(pb::accept_invite_request::InviteRef::Token(token.into())),
        passcode: String::new(),
    }
}

pub fn accept_by_id(id: impl Into<String>) -> pb::AcceptInviteRequest {
    pb::AcceptInviteRequest {
        invite_ref: Some(pb::accept_invite_request::InviteRef::Id(id.into())),
        passcode: String::new(),
    }
}

/// Creates an invite as `inviter` and returns it with its token.
pub async fn create(
    client: &mut InviteServiceClient<Channel>,
    request: pb::CreateInviteRequest,
    inviter: &str,
) -> (pb::Invite, String) {
    let created = client
        .create_invite(authed(request, inviter))
        .await
        .expect("create the invite")
        .into_inner();
    (created.invite.expect("an invite"), created.token)
}

/// A timestamp `offset` from now.
pub fn timestamp_in(offset: chrono::Duration) -> prost_types::Timestamp {
    invite_service::pb::timestamp(chrono::Utc::now() + offset)
}

/// The usual start of a test: a server, a queue bound to its exchange, a
/// client, and alice's pending invite for bob@example.org (made after the
/// queue was bound, so its `invite.created` is the first event).
pub struct Scene {
    pub app: TestApp,
    pub events: Events,
    pub client: InviteServiceClient<Channel>,
    /// alice's bearer token: the inviter.
    pub alice: String,
    /// bob's bearer token, with his verified email: the invitee.
    pub bob: String,
    pub invite: pb::Invite,
    /// The invite's token.
    pub link: String,
}

pub async fn alice_invites_bob(db: Db) -> Scene {
    let app = spawn_app(db).await;
    let events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let (invite, link) = create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &alice,
    )
    .await;
    Scene {
        app,
        events,
        client,
        alice,
        bob: token("bob", Some("bob@example.org"), false),
        invite,
        link,
    }
}

impl Scene {
    /// Deletes the test's exchange and stops the server.
    pub async fn end(self) {
        self.events.delete_exchange().await;
        self.app.stop().await;
    }
}

/// The settings of [`settings`] without the shared [`SECRET`], for a server
/// that verifies tokens another way: `options.flags` says how
/// (`--jwt-jwks-url …`, `--jwt-public-key …`).
pub fn settings_without_secret(options: &Options) -> Settings {
    let sweep_interval = humantime::format_duration(options.sweep_interval).to_string();
    let mut args: Vec<&str> = vec![
        "invite-service",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &options.database_url,
        "--amqp-url",
        &options.amqp_url,
        "--exchange",
        &options.exchange,
        "--sweep-interval",
        &sweep_interval,
        "--drain-timeout",
        "10s",
    ];
    args.extend(options.flags.iter().map(String::as_str));
    Cli::try_parse_from(args)
        .expect("the test settings parse")
        .settings
}

impl TestApp {
    /// Starts a server with these settings, without waiting for it to be ready.
    pub async fn start_unready_with(options: &Options, settings: Settings) -> Self {
        init_logs();
        let application = Application::build(settings).await.expect("build the app");
        let addr = application.local_addr();
        let (stop, stopped) = oneshot::channel();
        let server = tokio::spawn(application.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            database_url: options.database_url.clone(),
            exchange: options.exchange.clone(),
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Waits up to `limit` for health to say SERVING.
    pub async fn wait_until_serving_within(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.health().await != ServingStatus::Serving {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server did not become SERVING within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits until the relay has stamped every event as published: until then a
/// broker cut may lose a confirm, and the event is rightly published again.
pub async fn wait_until_outbox_is_empty(database_url: &str) {
    use invite_service::store::entities::invite_event;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let db = Database::connect(database_url).await.unwrap();
    for _ in 0..200 {
        let waiting = invite_event::Entity::find()
            .filter(invite_event::Column::PublishedAt.is_null())
            .count(&db)
            .await
            .unwrap();
        if waiting == 0 {
            db.close().await.ok();
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the outbox was not empty within 10 s");
}
