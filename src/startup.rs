//! Wiring: `Application::build` binds, opens the store and resolves the keys;
//! `start` serves in the background; `Running::drain` stops it in order.

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle, time::Instant};
use tonic::transport::{Server, server::TcpIncoming};

use crate::{
    app::{Invites, RateLimits, ReplaySeal, Watchers},
    config::Settings,
    domain::{CreatePolicy, Policy},
    grpc::{
        CallBounds, Calls, InviteApi,
        auth::{
            Authenticated,
            keys::{self, TokenKeys},
        },
    },
    metrics::Metrics,
    outbox::{CommitWakeup, sequencer::LogGrowth},
    pb::{self, invite_service_server::InviteServiceServer},
    store::{self, Store},
};

mod background;
mod metrics_endpoint;

use background::Background;

pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    store: Store,
    keys: TokenKeys,
    policy: Policy,
    seal: ReplaySeal,
    settings: Settings,
}

impl Application {
    /// Everything that can fail because of configuration fails here, before
    /// serving. The database and the JWKS are not needed yet: until they
    /// answer, health says NOT_SERVING and calls UNAVAILABLE.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let keys = keys::resolve(&settings)?;
        let seal = replay_seal(&settings)?;
        let policy = policy(&settings)?;
        let store = Store::open(settings.database_url.expose(), settings.pool())
            .await
            .context("--database-url / DATABASE_URL is not usable")?;
        let listener = TcpListener::bind(settings.listen).await.with_context(|| {
            format!(
                "cannot listen on {} (--listen / INVITES_LISTEN)",
                settings.listen
            )
        })?;
        let metrics_listener = match settings.operating.metrics_listen {
            Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                format!("cannot listen on {address} (--metrics-listen / INVITES_METRICS_LISTEN)")
            })?),
            None => None,
        };
        Ok(Self {
            listener,
            metrics_listener,
            store,
            keys,
            policy,
            seal,
            settings,
        })
    }

    /// The bound address: with `--listen 127.0.0.1:0`, the port picked.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where `/metrics` is served, when `--metrics-listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then drains (see [`Running::drain`]).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let mut running = self.start().await?;
        tokio::select! {
            () = shutdown => {}
            failed = running.server_ended() => return failed,
        }
        running.drain().await
    }

    /// Serves in the background: the gRPC server, and the work beside it
    /// (health, the JWKS, the relay, the expiry sweep).
    pub async fn start(self) -> anyhow::Result<Running> {
        let Self {
            listener,
            metrics_listener,
            store,
            keys,
            policy,
            seal,
            settings,
        } = self;
        let wakeup = CommitWakeup::default();
        let growth = LogGrowth::default();
        let watchers = Watchers::new(growth.clone(), settings.operating.watch_send_timeout);
        let invites = Invites::new(store.clone(), wakeup.clone(), policy, seal)
            .with_rate_limits(RateLimits::per_minute(
                settings.create_rate_limit,
                settings.token_rate_limit,
            ))
            .with_watchers(watchers.clone());
        let metrics = Metrics::new(
            &crate::grpc::method_names()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        let (background, health_service) = Background::start(
            background::Parts {
                store: store.clone(),
                invites: invites.clone(),
                jwks: keys.jwks,
                wakeup,
                growth,
                watchers,
                metrics: metrics.clone(),
            },
            &settings,
        )
        .await;
        let operating = &settings.operating;
        let api = InviteServiceServer::new(InviteApi::new(invites))
            .max_decoding_message_size(operating.max_request_size);
        let bounds = CallBounds::new(
            operating.max_concurrent_calls as usize,
            operating.call_timeout,
        )
        .with_max_watchers(operating.max_watchers as usize);
        let (stop_serving, stopped) = oneshot::channel::<()>();
        let server = Server::builder()
            .http2_keepalive_interval(Some(operating.http2_keepalive_interval))
            .http2_keepalive_timeout(Some(operating.http2_keepalive_timeout))
            .add_service(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?)
            .add_service(Calls::new(
                Authenticated::new(api, keys.authenticator),
                bounds,
                metrics.clone(),
            ))
            // Without TCP_NODELAY an answer written in several segments
            // waits for the client's delayed ACK: 40 ms on a list page.
            // (The builder's own nodelay applies only to addresses it binds.)
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                async {
                    let _ = stopped.await;
                },
            );
        let (stop_metrics, metrics_stopped) = oneshot::channel::<()>();
        if let Some(listener) = metrics_listener {
            tokio::spawn(metrics_endpoint::serve(
                listener,
                metrics,
                store,
                metrics_stopped,
            ));
        }
        Ok(Running {
            server: tokio::spawn(server),
            stop_serving,
            _stop_metrics: stop_metrics,
            background,
            drain_timeout: settings.drain_timeout,
        })
    }
}

/// Two services: grpcurl speaks v1, older clients only v1alpha.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // So grpcurl can print the ErrorInfo / BadRequest details.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// A server serving in the background.
pub struct Running {
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    stop_serving: oneshot::Sender<()>,
    /// Dropped with the server: `/metrics` stays up through the drain.
    _stop_metrics: oneshot::Sender<()>,
    background: Background,
    drain_timeout: Duration,
}

impl Running {
    /// Resolves only if the server stops by itself: that is a failure.
    async fn server_ended(&mut self) -> anyhow::Result<()> {
        (&mut self.server)
            .await
            .context("the gRPC server task")?
            .context("the gRPC server failed")?;
        anyhow::bail!("the gRPC server stopped before it was asked to")
    }

    /// NOT_SERVING, then in-flight calls finish (four fifths of the drain
    /// timeout), then the relay flushes what they wrote (the rest of it).
    pub async fn drain(self) -> anyhow::Result<()> {
        let Self {
            mut server,
            stop_serving,
            _stop_metrics,
            mut background,
            drain_timeout,
        } = self;
        let started = Instant::now();
        tracing::info!("shutting down: NOT_SERVING, draining in-flight calls");
        background.stop_serving(drain_timeout).await;
        let _ = stop_serving.send(());
        let calls_budget = drain_timeout * 4 / 5;
        match tokio::time::timeout_at(started + calls_budget, &mut server).await {
            Ok(served) => served
                .context("the gRPC server task")?
                .context("the gRPC server failed")?,
            Err(_) => {
                server.abort();
                tracing::warn!(
                    ?calls_budget,
                    "in-flight calls did not finish in their share of the drain timeout"
                );
            }
        }
        background.finish(started + drain_timeout).await;
        tracing::info!("stopped");
        Ok(())
    }
}

fn policy(settings: &Settings) -> anyhow::Result<Policy> {
    let ttl = |d: Duration, flag: &str| {
        chrono::Duration::from_std(d).with_context(|| format!("{flag} is too long"))
    };
    let policy = Policy {
        default_ttl: ttl(settings.default_ttl, "--default-ttl")?,
        max_ttl: ttl(settings.max_ttl, "--max-ttl")?,
        create: settings.create_policy,
    };
    if policy.create == CreatePolicy::Open {
        tracing::warn!(
            "--create-policy open: any caller may invite anyone to any target with any role, \
             and membership services trust invite.accepted. Use `grants` in production"
        );
    }
    anyhow::ensure!(
        policy.default_ttl <= policy.max_ttl,
        "--default-ttl / INVITES_DEFAULT_TTL must not be longer than --max-ttl / INVITES_MAX_TTL"
    );
    Ok(policy)
}

/// The secret replayed tokens are sealed under: the configured one, else
/// the HS256 secret, else the development secret beside a SQLite file.
/// (Each is used through HKDF with a salt of its own, apart from signing.)
fn replay_seal(settings: &Settings) -> anyhow::Result<ReplaySeal> {
    if let Some(secret) = settings.seal_secret()? {
        return Ok(ReplaySeal::new(secret.expose_secret().as_bytes()));
    }
    if let Some(secret) = settings.hs256_secret()? {
        return Ok(ReplaySeal::new(secret.expose_secret().as_bytes()));
    }
    anyhow::ensure!(
        store::sqlite_path(settings.database_url.expose()).is_some(),
        "no secret to seal the tokens of idempotent replays: set --replay-seal-secret / \
         INVITES_REPLAY_SEAL_SECRET (or INVITES_REPLAY_SEAL_SECRET_FILE), at least 32 bytes"
    );
    let (secret, _) = keys::development_secret(settings)?;
    Ok(ReplaySeal::new(secret.expose_secret()))
}
