//! A real server on an ephemeral port, its own database and exchange, and its settings parsed by clap.

use std::{sync::Once, time::Duration};

use clap::Parser as _;
use invite_service::{
    config::{Cli, Settings},
    pb::invite_service_client::InviteServiceClient,
    startup::Application,
};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use uuid::Uuid;

use super::*;

fn init_logs() {
    static ONCE: Once = Once::new();
    // Silent unless asked: TEST_LOG=1 cargo test.
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            invite_service::telemetry::init(invite_service::telemetry::LogFormat::Text);
        }
    });
}

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    /// Where `/metrics` is served, with `--metrics-listen` among the flags.
    pub metrics_addr: Option<std::net::SocketAddr>,
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

/// The settings a server under test runs with: [`settings_without_secret`]
/// plus the shared [`SECRET`] that [`token`] signs with.
pub fn settings(options: &Options) -> Settings {
    let with_secret = Options {
        flags: [
            &["--jwt-secret".to_owned(), SECRET.to_owned()],
            &options.flags[..],
        ]
        .concat(),
        ..options.clone()
    };
    settings_without_secret(&with_secret)
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
        Self::start_unready_with(options, settings(options)).await
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

    /// The whole server's health (`""`), which follows the database.
    pub async fn health(&self) -> ServingStatus {
        self.health_of("").await
    }

    pub async fn health_of(&self, service: &str) -> ServingStatus {
        let mut health = HealthClient::new(self.channel().await);
        let response = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
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

/// The settings a server under test runs with, parsed by clap like the
/// binary's, so that every default is the one users get; no JWT key unless
/// `options.flags` gives one (`--jwt-jwks-url …`, `--jwt-public-key …`).
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
        let metrics_addr = application.metrics_addr();
        let (stop, stopped) = oneshot::channel();
        let server = tokio::spawn(application.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            metrics_addr,
            database_url: options.database_url.clone(),
            exchange: options.exchange.clone(),
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// The Prometheus text at `/metrics`, read as a scraper would.
    pub async fn scrape(&self) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let addr = self.metrics_addr.expect("started with --metrics-listen");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        body.to_owned()
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

/// The value of the series `name{labels}` (written as Prometheus prints it)
/// in a scrape.
pub fn series_value(scraped: &str, series: &str) -> f64 {
    scraped
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} is not exported:\n{scraped}"))
        .parse()
        .unwrap()
}
