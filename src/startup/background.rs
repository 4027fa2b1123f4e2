//! The work beside the gRPC server: health kept in step with the database and
//! the signing keys, the JWKS kept fresh, the outbox relay, the sequencer
//! that numbers events for watchers, the expiry sweep and the retention
//! pass that follows it.

use std::time::Duration;

use tokio::{sync::watch, task::JoinHandle, time::Instant};
use tonic_health::{
    ServingStatus,
    pb::health_server::{Health, HealthServer},
    server::HealthReporter,
};

use crate::{
    app::{Invites, Retired, Watchers},
    config::Settings,
    domain::Retention,
    grpc::auth::Jwks,
    metrics::Metrics,
    outbox::{
        CommitWakeup,
        relay::Relay,
        sequencer::{LogGrowth, Sequencer},
    },
    pb::invite_service_server::SERVICE_NAME,
    store::Store,
};

/// Follows only the process: a liveness probe must not restart a replica
/// because the database is down, which a restart would not mend.
const LIVENESS: &str = "liveness";
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);

pub(super) struct Background {
    health: HealthReporter,
    supervisor: JoinHandle<()>,
    jwks: Option<JoinHandle<()>>,
    sweeper: JoinHandle<()>,
    stop_sweeping: watch::Sender<bool>,
    relay: JoinHandle<()>,
    /// Stops the relay and the sequencer.
    stop_relay: watch::Sender<bool>,
    sequencer: JoinHandle<()>,
    /// Ended at shutdown, so that the server can stop.
    watchers: Watchers,
    store: Store,
}

/// What the background work is made of, built by `Application::start`.
pub(super) struct Parts {
    pub store: Store,
    pub invites: Invites,
    pub jwks: Option<Jwks>,
    /// Commits wake the relay and the sequencer with it.
    pub wakeup: CommitWakeup,
    /// The sequencer tells this process's watchers with it.
    pub growth: LogGrowth,
    /// WatchInvites streams, ended when shutdown starts.
    pub watchers: Watchers,
    pub metrics: Metrics,
}

impl Background {
    /// Starts it all, NOT_SERVING until the database and the keys are there;
    /// returns the health service that reports it.
    pub(super) async fn start(
        parts: Parts,
        settings: &Settings,
    ) -> (Self, HealthServer<impl Health>) {
        let Parts {
            store,
            invites,
            jwks,
            wakeup,
            growth,
            watchers,
            metrics,
        } = parts;
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::NotServing).await;
        health
            .set_service_status(LIVENESS, ServingStatus::Serving)
            .await;
        let sequencer = Sequencer::new(store.clone(), wakeup.clone(), growth);
        let relay = Relay::new(
            store.clone(),
            settings.amqp_url.expose().to_owned(),
            settings.exchange.clone(),
            wakeup,
        )
        .with_metrics(metrics.clone());
        let (stop_relay, relay_stopped) = watch::channel(false);
        let (stop_sweeping, sweeping_stopped) = watch::channel(false);
        let background = Self {
            supervisor: tokio::spawn(supervise(store.clone(), jwks.clone(), health.clone())),
            jwks: jwks.map(|jwks| tokio::spawn(jwks.keep_fresh())),
            sweeper: tokio::spawn(sweep(
                invites,
                metrics,
                settings.sweep_interval,
                settings.operating.retention,
                sweeping_stopped,
            )),
            stop_sweeping,
            sequencer: tokio::spawn(sequencer.run(relay_stopped.clone())),
            relay: tokio::spawn(relay.run(relay_stopped)),
            stop_relay,
            watchers,
            health,
            store,
        };
        (background, health_service)
    }

    /// NOT_SERVING for good: health stops following the database, the keys
    /// are no longer refreshed, the sweep stops.
    pub(super) async fn stop_serving(&mut self, drain_timeout: Duration) {
        // Stopped (and awaited) first, so it cannot turn health back on.
        self.supervisor.abort();
        let _ = (&mut self.supervisor).await;
        if let Some(jwks) = &self.jwks {
            jwks.abort();
        }
        let _ = self.stop_sweeping.send(true);
        // Each ends with the cursor to resume from, on another replica.
        self.watchers.stop_all();
        set_health(&self.health, ServingStatus::NotServing).await;
        self.health
            .set_service_status(LIVENESS, ServingStatus::NotServing)
            .await;
        // Health Watch streams never end on their own and would hold the
        // drain to its timeout: after a moment in which checks and watchers
        // see NOT_SERVING, the statuses are dropped, which ends them.
        let mut health = self.health.clone();
        tokio::spawn(async move {
            tokio::time::sleep((drain_timeout / 4).min(Duration::from_secs(2))).await;
            health.clear_service_status("").await;
            health.clear_service_status(SERVICE_NAME).await;
            health.clear_service_status(LIVENESS).await;
        });
    }

    /// Once the calls are done: the relay publishes what they wrote, then
    /// the database connections close, all by `deadline`.
    pub(super) async fn finish(self, deadline: Instant) {
        let _ = self.stop_relay.send(true);
        let mut relay = self.relay;
        if tokio::time::timeout_at(deadline, &mut relay).await.is_err() {
            relay.abort();
            tracing::warn!(
                "the relay did not flush within the drain timeout; events stay in the outbox"
            );
        }
        self.sweeper.abort();
        // Stopped with the relay; a batch in flight is one short statement.
        let mut sequencer = self.sequencer;
        if tokio::time::timeout_at(deadline, &mut sequencer)
            .await
            .is_err()
        {
            sequencer.abort();
        }
        // Closing waits for connections still in use: bounded like the rest.
        if tokio::time::timeout_at(deadline, self.store.close())
            .await
            .is_err()
        {
            tracing::warn!("database connections were still busy at the drain timeout");
        }
    }
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    health.set_service_status(SERVICE_NAME, status).await;
}

/// Migrates as soon as the database answers, then keeps health in step:
/// NOT_SERVING while the database is unreachable or the signing keys have not
/// come (calls answer UNAVAILABLE), SERVING when both are there. The broker
/// plays no part: events wait in the outbox.
async fn supervise(store: Store, jwks: Option<Jwks>, health: HealthReporter) {
    migrate_when_reachable(&store).await;
    let mut serving = None;
    loop {
        let missing = if !store.is_healthy().await {
            Some("database unreachable")
        } else if jwks.as_ref().is_some_and(|jwks| !jwks.is_loaded()) {
            Some("no signing keys from the JWKS yet")
        } else {
            None
        };
        if serving != Some(missing.is_none()) {
            match missing {
                None => tracing::info!("database and signing keys ready: SERVING"),
                Some(what) => tracing::warn!("{what}: NOT_SERVING"),
            }
            let status = match missing {
                None => ServingStatus::Serving,
                Some(_) => ServingStatus::NotServing,
            };
            set_health(&health, status).await;
            serving = Some(missing.is_none());
        }
        tokio::time::sleep(HEALTH_CHECK_INTERVAL).await;
    }
}

async fn migrate_when_reachable(store: &Store) {
    let mut backoff = Duration::from_millis(200);
    while let Err(err) = store.migrate().await {
        tracing::warn!(
            error = format!("{err:#}"),
            "the database is not ready; retrying"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Expires what is due, forgets old idempotency keys and, with a retention,
/// removes what was kept long enough, every interval. Replicas may all
/// sweep: they claim different rows (and take turns at retention).
async fn sweep(
    invites: Invites,
    metrics: Metrics,
    interval: Duration,
    retention: Option<Retention>,
    mut stop: watch::Receiver<bool>,
) {
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
        let (expired, outcome) = invites.expire_due().await;
        if expired > 0 {
            metrics.invites_expired(expired);
            tracing::info!(expired, "expired pending invites past their expiry");
        }
        if let Err(err) = outcome {
            metrics.sweep_failed();
            tracing::warn!(error = %err, "the expiry sweep failed; will retry");
        }
        if let Err(err) = invites.forget_old_answers().await {
            tracing::warn!(error = %err, "forgetting old idempotency keys failed; will retry");
        }
        if let Some(retention) = retention {
            forget_retired(&invites, &metrics, retention).await;
        }
    }
}

/// One retention pass, counted and logged when it removed something, also
/// when a later batch of it failed.
async fn forget_retired(invites: &Invites, metrics: &Metrics, retention: Retention) {
    let (retired, outcome) = invites.forget_retired(retention).await;
    if retired != Retired::default() {
        let Retired {
            invites,
            histories,
            events,
        } = retired;
        metrics.retention_deleted(invites + histories);
        tracing::info!(
            invites,
            histories,
            events,
            "retention removed finished invites and deleted invites' histories"
        );
    }
    if let Err(err) = outcome {
        metrics.retention_failed();
        tracing::warn!(error = %err, "the retention pass failed; will retry");
    }
}
