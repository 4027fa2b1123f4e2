//! Wiring: `Application::build` binds, opens the store and resolves the JWT
//! key; `run_until_stopped` serves until the shutdown signal, then drains.

use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use tokio::{net::TcpListener, sync::watch, time::Instant};
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    app::Invites,
    config::Settings,
    domain::{CreatePolicy, Policy},
    grpc::{
        InviteApi,
        auth::{Authenticator, VerifyingKey},
    },
    outbox::{RelayWakeup, relay::Relay},
    pb::{self, invite_service_server::InviteServiceServer},
    store::{self, Store},
};

const SERVICE_NAME: &str = "invites.v1.InviteService";
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);

pub struct Application {
    listener: TcpListener,
    store: Store,
    authenticator: Authenticator,
    policy: Policy,
    settings: Settings,
}

impl Application {
    /// Everything that can fail because of configuration fails here, before
    /// serving. The database is not needed yet: see `run_until_stopped`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let authenticator = authenticator(&settings)?;
        let policy = policy(&settings)?;
        let store = Store::open(&settings.database_url)
            .await
            .context("--database-url / DATABASE_URL is not usable")?;
        let listener = TcpListener::bind(settings.listen).await.with_context(|| {
            format!(
                "cannot listen on {} (--listen / INVITES_LISTEN)",
                settings.listen
            )
        })?;
        Ok(Self {
            listener,
            store,
            authenticator,
            policy,
            settings,
        })
    }

    /// The bound address: with `--listen 127.0.0.1:0`, the port picked.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then: NOT_SERVING, drain in-flight
    /// calls, flush the relay, all within the drain timeout.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            listener,
            store,
            authenticator,
            policy,
            settings,
        } = self;
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::NotServing).await;
        // Background work stops when draining starts; the relay only once
        // the last call is done, so that it publishes what those calls wrote.
        let (stop_tx, stop_rx) = watch::channel(false);
        let (relay_stop_tx, relay_stop_rx) = watch::channel(false);

        let supervisor = tokio::spawn(supervise_database(store.clone(), health.clone()));
        let wakeup = RelayWakeup::default();
        let relay = Relay::new(
            store.clone(),
            settings.amqp_url.clone(),
            settings.exchange.clone(),
            wakeup.clone(),
        );
        let mut relay = tokio::spawn(relay.run(relay_stop_rx));

        let invites = Invites::new(store.clone(), wakeup, policy);
        let sweeper = tokio::spawn(sweep(invites.clone(), settings.sweep_interval, stop_rx));
        let api = InviteApi::new(invites);
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                // So grpcurl can print the ErrorInfo / BadRequest details.
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        };
        // Two services: grpcurl speaks v1, older clients only v1alpha.
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        let (draining_tx, mut draining_rx) = watch::channel(None::<Instant>);
        let health_on_stop = health.clone();
        let supervisor_abort = supervisor.abort_handle();
        let drain_timeout = settings.drain_timeout;
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: NOT_SERVING, draining in-flight calls");
            // Stopped (and awaited) first, so it cannot turn health back on
            // while we drain.
            supervisor.abort();
            let _ = supervisor.await;
            let _ = stop_tx.send(true);
            set_health(&health_on_stop, ServingStatus::NotServing).await;
            let _ = draining_tx.send(Some(Instant::now()));
            // Health Watch streams never end on their own and would hold the
            // drain to its timeout: after a moment in which checks and
            // watchers see NOT_SERVING, the statuses are dropped, which ends them.
            tokio::spawn(async move {
                tokio::time::sleep((drain_timeout / 4).min(Duration::from_secs(2))).await;
                let mut health = health_on_stop;
                health.clear_service_status("").await;
                health.clear_service_status(SERVICE_NAME).await;
            });
        };
        let server = Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(InviteServiceServer::with_interceptor(api, authenticator))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), signal);
        tokio::pin!(server);
        // In-flight calls get four fifths of the drain timeout; the relay's
        // last flush has the rest.
        let calls_budget = drain_timeout * 4 / 5;
        let give_up = async {
            let started = loop {
                if let Some(started) = *draining_rx.borrow_and_update() {
                    break started;
                }
                if draining_rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::time::sleep_until(started + calls_budget).await;
            started
        };
        let started = tokio::select! {
            served = &mut server => {
                served.context("the gRPC server failed")?;
                (*draining_rx.borrow()).unwrap_or_else(Instant::now)
            }
            started = give_up => {
                tracing::warn!(?calls_budget, "in-flight calls did not finish in their share of the drain timeout");
                started
            }
        };

        let _ = relay_stop_tx.send(true);
        let deadline = started + drain_timeout;
        if tokio::time::timeout_at(deadline, &mut relay).await.is_err() {
            relay.abort();
            tracing::warn!(
                "the relay did not flush within the drain timeout; events stay in the outbox"
            );
        }
        supervisor_abort.abort();
        sweeper.abort();
        // Closing waits for connections still in use: bounded like the rest.
        if tokio::time::timeout_at(deadline, store.close())
            .await
            .is_err()
        {
            tracing::warn!("database connections were still busy at the drain timeout");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    health.set_service_status(SERVICE_NAME, status).await;
}

/// Migrates as soon as the database answers, then keeps health in step with
/// it: NOT_SERVING while it is unreachable (calls answer UNAVAILABLE), SERVING
/// when it is back. The broker plays no part: events wait in the outbox.
async fn supervise_database(store: Store, health: HealthReporter) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match store.migrate().await {
            Ok(()) => break,
            Err(err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "the database is not ready; retrying"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    let mut serving = None;
    loop {
        let healthy = store.is_healthy().await;
        if serving != Some(healthy) {
            if healthy {
                tracing::info!("database ready: SERVING");
                set_health(&health, ServingStatus::Serving).await;
            } else {
                tracing::warn!("database unreachable: NOT_SERVING");
                set_health(&health, ServingStatus::NotServing).await;
            }
            serving = Some(healthy);
        }
        tokio::time::sleep(HEALTH_CHECK_INTERVAL).await;
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

/// Expires what is due and forgets old idempotency keys, every interval.
/// Replicas may all sweep: they claim different rows.
async fn sweep(invites: Invites, interval: Duration, mut stop: watch::Receiver<bool>) {
    tokio::select! {
        _ = invites.ready() => {}
        _ = stop.changed() => return,
    }
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        match invites.expire_due().await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "expired pending invites past their expiry"),
            Err(err) => tracing::warn!(error = %err, "the expiry sweep failed; will retry"),
        }
        if let Err(err) = invites.forget_old_answers().await {
            tracing::warn!(error = %err, "forgetting old idempotency keys failed; will retry");
        }
    }
}

fn authenticator(settings: &Settings) -> anyhow::Result<Authenticator> {
    let key = if let Some(secret) = &settings.jwt_secret {
        VerifyingKey::Secret(secret.as_bytes().to_vec())
    } else if let Some(path) = &settings.jwt_public_key {
        let pem = std::fs::read(path).with_context(|| {
            format!(
                "cannot read --jwt-public-key / INVITES_JWT_PUBLIC_KEY {}",
                path.display()
            )
        })?;
        VerifyingKey::PublicKeyPem(pem)
    } else {
        let (secret, path) = development_secret(&settings.database_url)?;
        tracing::warn!(
            secret_file = %path.display(),
            "no JWT key configured: using the development secret beside the SQLite file. \
             Mint a token with: invite-service token --sub alice --email alice@example.org"
        );
        VerifyingKey::Secret(secret)
    };
    Ok(Authenticator::new(
        key,
        settings.jwt_issuer.as_deref(),
        settings.jwt_audience.as_deref(),
    )
    .context("--jwt-public-key / INVITES_JWT_PUBLIC_KEY")?
    .with_grants_claim(&settings.grants_claim))
}

/// The secret `token` signs with: the configured one, or the development one.
pub fn signing_secret(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &settings.jwt_secret {
        return Ok(secret.as_bytes().to_vec());
    }
    if settings.jwt_public_key.is_some() {
        anyhow::bail!(
            "tokens are verified with a public key (--jwt-public-key): mint them with the matching private key, or configure --jwt-secret"
        );
    }
    Ok(development_secret(&settings.database_url)?.0)
}

/// The embedded default needs a key without configuration, yet must never be
/// an open door: a random secret, created once, kept beside the SQLite file
/// (readable by its owner only), so the service and `token` agree on it.
fn development_secret(database_url: &str) -> anyhow::Result<(Vec<u8>, PathBuf)> {
    let Some(db_file) = store::sqlite_path(database_url) else {
        anyhow::bail!(
            "no JWT key configured: set --jwt-secret / INVITES_JWT_SECRET (HS256) or \
             --jwt-public-key / INVITES_JWT_PUBLIC_KEY (RS256/ES256)"
        );
    };
    let path = PathBuf::from(format!("{}.jwt-secret", db_file.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    match write_private(&path, &URL_SAFE_NO_PAD.encode(bytes)) {
        Ok(()) => {}
        // Made earlier, or by a `token` run at the same moment: use that one.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err).with_context(|| format!("cannot write {}", path.display())),
    }
    let secret = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let secret = secret.trim();
    // A short or empty file (a crash mid-write) would be a key anyone can
    // guess: refuse it rather than sign with it.
    anyhow::ensure!(
        secret.len() >= 32,
        "the development secret {} is damaged (shorter than 32 bytes): delete it to make a new one",
        path.display()
    );
    Ok((secret.as_bytes().to_vec(), path))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}
