//! `/metrics` at `--metrics-listen`: the registry in Prometheus text, with
//! the outbox and the pool sampled at each scrape (no work when nobody looks).

use std::time::Duration;

use axum::{Router, extract::State, routing::get};
use chrono::Utc;
use tokio::{net::TcpListener, sync::oneshot};

use crate::{
    metrics::Metrics,
    store::{self, Store},
};

/// A scrape never waits longer than this on the database: the last
/// sampled outbox figures are shown instead.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct Scraped {
    metrics: Metrics,
    store: Store,
}

/// Serves until `stop` fires (or its sender is dropped).
pub(super) async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    store: Store,
    stop: oneshot::Receiver<()>,
) {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(Scraped { metrics, store });
    let served = axum::serve(listener, app).with_graceful_shutdown(async {
        let _ = stop.await;
    });
    if let Err(err) = served.await {
        tracing::error!(error = %err, "the metrics endpoint stopped");
    }
}

async fn scrape(State(Scraped { metrics, store }): State<Scraped>) -> String {
    let (in_use, idle) = store.pool_usage();
    metrics
        .database_connections
        .with_label_values(&["in_use"])
        .set(in_use.into());
    metrics
        .database_connections
        .with_label_values(&["idle"])
        .set(idle.into());
    if let Ok(conn) = store.conn() {
        match tokio::time::timeout(SAMPLE_TIMEOUT, store::outbox_backlog(conn)).await {
            Ok(Ok(backlog)) => {
                let waited = backlog.oldest.map_or(0.0, |oldest| {
                    (Utc::now() - oldest).as_seconds_f64().max(0.0)
                });
                metrics
                    .outbox_backlog
                    .set(i64::try_from(backlog.events).unwrap_or(i64::MAX));
                metrics.outbox_oldest_unpublished_seconds.set(waited);
            }
            Ok(Err(err)) => tracing::debug!(error = %err, "outbox not sampled for /metrics"),
            Err(_) => tracing::debug!("outbox not sampled for /metrics: the database is slow"),
        }
    }
    metrics.render()
}
