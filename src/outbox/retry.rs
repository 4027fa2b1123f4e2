//! How long the relay waits before trying again, and what it tells the
//! operator while RabbitMQ refuses events.

use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder};
use tokio::time::Instant;

/// Reconnecting to a broker that is down, or reading a database that fails:
/// nothing is lost by waiting, so the wait grows to spare both, up to 5 s:
/// commits do not cut it short (see `Next::Hold`), so this is also how long
/// events may wait after the broker is back.
pub(super) const RECONNECT: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(100))
    .with_max_delay(Duration::from_secs(5))
    .without_max_times();

/// Offering refused events again on the same connection. A full queue has
/// room again as soon as its consumer catches up, and every other consumer
/// waits for the retry too, so the cap is a few seconds, not half a minute.
pub(super) const REOFFER: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(250))
    .with_max_delay(Duration::from_secs(5))
    .without_max_times();

/// An exponential backoff that starts over once things work again.
pub(super) struct Backoff {
    policy: ExponentialBuilder,
    delays: ExponentialBackoff,
}

impl Backoff {
    pub(super) fn new(policy: ExponentialBuilder) -> Self {
        Self {
            policy,
            delays: policy.build(),
        }
    }

    pub(super) fn next(&mut self) -> Duration {
        // Built without a limit on tries, so this never runs dry.
        self.delays.next().unwrap_or(Duration::from_secs(1))
    }

    pub(super) fn reset(&mut self) {
        self.delays = self.policy.build();
    }
}

/// How often a broker still refusing events is mentioned again.
const REMIND_EVERY: Duration = Duration::from_secs(60);

/// A run of batches in which RabbitMQ refused events: said when it starts,
/// repeated every minute while it lasts, and said when it ends.
#[derive(Default)]
pub(super) struct Refusals {
    since: Option<Instant>,
    last_said: Option<Instant>,
    refused: usize,
}

impl Refusals {
    pub(super) fn refused(&mut self, events: usize) {
        let now = Instant::now();
        self.refused += events;
        let since = *self.since.get_or_insert(now);
        if self.last_said.is_some_and(|said| now - said < REMIND_EVERY) {
            return;
        }
        self.last_said = Some(now);
        tracing::warn!(
            refused = self.refused,
            for_secs = (now - since).as_secs(),
            "RabbitMQ refuses events (a consumer's queue is full?); they are offered again every few seconds"
        );
    }

    pub(super) fn cleared(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                refused = self.refused,
                after_secs = since.elapsed().as_secs(),
                "RabbitMQ takes the refused events again"
            );
        }
        *self = Self::default();
    }
}
