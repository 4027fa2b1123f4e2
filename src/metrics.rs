//! The figures an operator scrapes at `--metrics-listen`, in Prometheus text.
//!
//! Implementation notes: one registry per server, not a process-wide one, so
//! that servers sharing a process (the tests run dozens) each count only
//! their own calls. Every series is created at start-up, so a dashboard shows
//! 0 rather than nothing before the first call; labels take values from
//! fixed sets only (method names from the proto, code names, routing keys),
//! never from what a caller sends.

use prometheus::{
    Encoder as _, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use tonic::Code;

use crate::domain::EventKind;

/// Call latencies from 1 ms to 10 s: a create takes a few ms, a passcode
/// check tens, a call queued behind a full pool seconds.
const HANDLING_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The RPCs that take `validate_only`.
const DRY_RUN_METHODS: [&str; 2] = ["CreateInvite", "BatchCreateInvites"];
/// The reasons a call is refused (or a stream ended) RESOURCE_EXHAUSTED with.
const THROTTLE_REASONS: [&str; 6] = [
    "RATE_LIMITED",
    "OVERLOADED",
    "PASSCODE_BUSY",
    "REQUEST_TOO_LARGE",
    "TOO_MANY_WATCHERS",
    "WATCHER_TOO_SLOW",
];

/// Every figure the service exports, cheap to clone (each is shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    handled: IntCounterVec,
    dry_runs: IntCounterVec,
    handling_seconds: HistogramVec,
    events_published: IntCounterVec,
    publish_failures: IntCounter,
    expired: IntCounter,
    sweep_failures: IntCounter,
    retention_deleted: IntCounter,
    retention_failures: IntCounter,
    throttled: IntCounterVec,
    /// Sampled when scraped.
    pub outbox_backlog: IntGauge,
    /// Sampled when scraped; 0 with an empty outbox.
    pub outbox_oldest_unpublished_seconds: Gauge,
    /// Sampled when scraped, by `state`: `in_use` or `idle`.
    pub database_connections: IntGaugeVec,
    /// WatchInvites streams open now.
    pub open_watchers: IntGauge,
}

impl Metrics {
    /// The registry with every series at 0, `grpc_method` taking its values
    /// from `methods` (the service's RPC names).
    pub fn new(methods: &[&str]) -> Self {
        let registry = Registry::new();
        let metrics = Self {
            handled: counters(
                &registry,
                "grpc_server_handled_total",
                "gRPC calls completed, by method and status code.",
                &["grpc_method", "grpc_code"],
            ),
            dry_runs: counters(
                &registry,
                "invites_dry_runs_total",
                "Of the calls in grpc_server_handled_total, the dry runs (validate_only) \
                 their handler saw: they answer like the real call but write nothing.",
                &["grpc_method", "grpc_code"],
            ),
            handling_seconds: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "grpc_server_handling_seconds",
                        "Time from a call's arrival to its status, by method.",
                    )
                    .buckets(HANDLING_BUCKETS.to_vec()),
                    &["grpc_method"],
                ),
            ),
            events_published: counters(
                &registry,
                "invites_events_published_total",
                "Events the broker confirmed, by routing key.",
                &["routing_key"],
            ),
            publish_failures: register(
                &registry,
                IntCounter::new(
                    "invites_publish_failures_total",
                    "Publishes that failed or were refused; the event stays in the outbox.",
                ),
            ),
            expired: register(
                &registry,
                IntCounter::new(
                    "invites_expired_total",
                    "Pending invites this replica's sweep turned EXPIRED.",
                ),
            ),
            sweep_failures: register(
                &registry,
                IntCounter::new(
                    "invites_sweep_failures_total",
                    "Expiry sweeps that failed (retried at the next interval).",
                ),
            ),
            retention_deleted: register(
                &registry,
                IntCounter::new(
                    "invites_retention_deleted_total",
                    "Invites whose data this replica's retention pass removed: finished \
                     invites with their redemptions and history, and deleted invites' histories.",
                ),
            ),
            retention_failures: register(
                &registry,
                IntCounter::new(
                    "invites_retention_failures_total",
                    "Retention passes that failed (retried at the next interval).",
                ),
            ),
            throttled: counters(
                &registry,
                "invites_throttled_total",
                "Calls refused RESOURCE_EXHAUSTED, by reason: RATE_LIMITED (a caller's \
                 rate limit), OVERLOADED (concurrent calls), PASSCODE_BUSY (passcode checks), \
                 REQUEST_TOO_LARGE, TOO_MANY_WATCHERS (--max-watchers), WATCHER_TOO_SLOW \
                 (a watch stream its client did not read).",
                &["reason"],
            ),
            outbox_backlog: register(
                &registry,
                IntGauge::new("invites_outbox_backlog", "Events not yet published."),
            ),
            outbox_oldest_unpublished_seconds: register(
                &registry,
                Gauge::new(
                    "invites_outbox_oldest_unpublished_seconds",
                    "Age of the oldest event not yet published; 0 when none waits.",
                ),
            ),
            database_connections: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "invites_database_connections",
                        "Database pool connections, by state (in_use, idle).",
                    ),
                    &["state"],
                ),
            ),
            open_watchers: register(
                &registry,
                IntGauge::new(
                    "invites_watchers",
                    "WatchInvites streams open now (at most --max-watchers).",
                ),
            ),
            registry,
        };
        metrics.start_at_zero(methods);
        metrics
    }

    fn start_at_zero(&self, methods: &[&str]) {
        for method in methods {
            self.handled
                .with_label_values(&[*method, code_name(Code::Ok)]);
            self.handling_seconds.with_label_values(&[*method]);
            if DRY_RUN_METHODS.contains(method) {
                self.dry_runs
                    .with_label_values(&[*method, code_name(Code::Ok)]);
            }
        }
        for kind in EventKind::ALL {
            self.events_published
                .with_label_values(&[kind.routing_key().as_str()]);
        }
        for reason in THROTTLE_REASONS {
            self.throttled.with_label_values(&[reason]);
        }
        for state in ["in_use", "idle"] {
            self.database_connections.with_label_values(&[state]);
        }
    }

    /// One call finished: `method` must be one of the service's RPC names.
    pub fn call_handled(&self, method: &str, code: Code, seconds: f64, dry_run: bool) {
        self.handled
            .with_label_values(&[method, code_name(code)])
            .inc();
        if dry_run {
            self.dry_runs
                .with_label_values(&[method, code_name(code)])
                .inc();
        }
        self.handling_seconds
            .with_label_values(&[method])
            .observe(seconds);
    }

    pub fn event_published(&self, kind: EventKind) {
        self.events_published
            .with_label_values(&[kind.routing_key().as_str()])
            .inc();
    }

    pub fn publish_failed(&self) {
        self.publish_failures.inc();
    }

    pub fn invites_expired(&self, count: usize) {
        self.expired.inc_by(count as u64);
    }

    pub fn sweep_failed(&self) {
        self.sweep_failures.inc();
    }

    /// Invites (or deleted invites' histories) a retention pass removed.
    pub fn retention_deleted(&self, invites: u64) {
        self.retention_deleted.inc_by(invites);
    }

    pub fn retention_failed(&self) {
        self.retention_failures.inc();
    }

    /// A call refused RESOURCE_EXHAUSTED with the service's `reason`; any
    /// other reason counts as `OTHER`, so labels stay a fixed set.
    pub fn throttled(&self, reason: &str) {
        let reason = THROTTLE_REASONS
            .into_iter()
            .find(|known| *known == reason)
            .unwrap_or("OTHER");
        self.throttled.with_label_values(&[reason]).inc();
    }

    /// Every series in Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut text)
            .expect("the text encoder writes to memory");
        String::from_utf8(text).expect("Prometheus text is UTF-8")
    }
}

/// The canonical name of a status code, as gRPC tooling prints it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn counters(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels))
}

/// The names and labels are fixed in this file: a failure is a bug here.
fn register<M>(registry: &Registry, metric: prometheus::Result<M>) -> M
where
    M: prometheus::core::Collector + Clone + 'static,
{
    let metric = metric.expect("a valid metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric registered once");
    metric
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_exported_at_zero_before_anything_is_counted() {
        let text = Metrics::new(&["CreateInvite"]).render();

        for line in [
            r#"grpc_server_handled_total{grpc_code="OK",grpc_method="CreateInvite"} 0"#,
            r#"invites_dry_runs_total{grpc_code="OK",grpc_method="CreateInvite"} 0"#,
            r#"grpc_server_handling_seconds_count{grpc_method="CreateInvite"} 0"#,
            r#"grpc_server_handling_seconds_bucket{grpc_method="CreateInvite",le="0.005"} 0"#,
            r#"invites_events_published_total{routing_key="invite.accepted"} 0"#,
            "invites_publish_failures_total 0",
            "invites_expired_total 0",
            "invites_sweep_failures_total 0",
            "invites_retention_deleted_total 0",
            "invites_retention_failures_total 0",
            r#"invites_throttled_total{reason="RATE_LIMITED"} 0"#,
            "invites_outbox_backlog 0",
            "invites_outbox_oldest_unpublished_seconds 0",
            r#"invites_database_connections{state="idle"} 0"#,
            "invites_watchers 0",
            r#"invites_throttled_total{reason="WATCHER_TOO_SLOW"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn a_call_counts_under_its_method_and_code_name() {
        let metrics = Metrics::new(&["GetInvite"]);

        metrics.call_handled("GetInvite", Code::NotFound, 0.003, false);

        let text = metrics.render();
        assert!(text.contains(
            r#"grpc_server_handled_total{grpc_code="NOT_FOUND",grpc_method="GetInvite"} 1"#
        ));
        assert!(text.contains(
            r#"grpc_server_handling_seconds_bucket{grpc_method="GetInvite",le="0.0025"} 0"#
        ));
        assert!(text.contains(
            r#"grpc_server_handling_seconds_bucket{grpc_method="GetInvite",le="0.005"} 1"#
        ));
    }
}
