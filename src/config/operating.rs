//! The settings an operator tunes: where metrics are served, how logs look,
//! the bounds that keep one replica answering under overload, and how long
//! finished invites are kept.

use std::{net::SocketAddr, time::Duration};

use clap::Args;

use super::parse_positive_duration;
use crate::{domain::Retention, telemetry::LogFormat};

#[derive(Debug, Clone, Args)]
pub struct OperatingSettings {
    /// Address serving Prometheus metrics at `/metrics` (off when unset).
    #[arg(long, env = "INVITES_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,

    /// Log lines as `text` or `json` (one object per line).
    #[arg(
        long,
        env = "INVITES_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    /// Calls served at once; past it a call is refused RESOURCE_EXHAUSTED
    /// (OVERLOADED) at once instead of queueing. Health is not counted.
    #[arg(long, env = "INVITES_MAX_CONCURRENT_CALLS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_concurrent_calls: u32,

    /// WatchInvites streams open at once, apart from `--max-concurrent-calls`
    /// (a stream lasts as long as its client wants); past it a watch is
    /// refused RESOURCE_EXHAUSTED (TOO_MANY_WATCHERS). Each holds at most
    /// 256 events for a slow client.
    #[arg(long, env = "INVITES_MAX_WATCHERS", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub max_watchers: u32,

    /// How long a watcher's full buffer may wait for its client to read;
    /// then the stream ends RESOURCE_EXHAUSTED (WATCHER_TOO_SLOW) with the
    /// cursor to resume from.
    #[arg(long, env = "INVITES_WATCH_SEND_TIMEOUT", default_value = "5s",
          value_parser = parse_positive_duration, global = true)]
    pub watch_send_timeout: Duration,

    /// The longest a call may take; a client's shorter `grpc-timeout` wins.
    /// Past it: DEADLINE_EXCEEDED, and its transaction is rolled back.
    #[arg(long, env = "INVITES_CALL_TIMEOUT", default_value = "30s",
          value_parser = parse_positive_duration, global = true)]
    pub call_timeout: Duration,

    /// How often an idle HTTP/2 connection is pinged, so that dead clients
    /// and load balancers that drop quiet connections are noticed.
    #[arg(long, env = "INVITES_HTTP2_KEEPALIVE_INTERVAL", default_value = "30s",
          value_parser = parse_positive_duration, global = true)]
    pub http2_keepalive_interval: Duration,

    /// How long a keepalive ping may go unanswered before the connection closes.
    #[arg(long, env = "INVITES_HTTP2_KEEPALIVE_TIMEOUT", default_value = "10s",
          value_parser = parse_positive_duration, global = true)]
    pub http2_keepalive_timeout: Duration,

    /// The largest request message accepted, e.g. `4MiB`, `512KiB` or bytes;
    /// a larger one is refused RESOURCE_EXHAUSTED before it is decoded.
    #[arg(long, env = "INVITES_MAX_REQUEST_SIZE", default_value = "4MiB",
          value_parser = parse_size, global = true)]
    pub max_request_size: usize,

    /// Connections in the PostgreSQL pool (SQLite always uses one).
    #[arg(long, env = "INVITES_DATABASE_POOL_SIZE", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub database_pool_size: u32,

    /// How long a call waits for a pooled connection before it is answered
    /// UNAVAILABLE.
    #[arg(long, env = "INVITES_DATABASE_ACQUIRE_TIMEOUT", default_value = "5s",
          value_parser = parse_positive_duration, global = true)]
    pub database_acquire_timeout: Duration,

    /// How long finished invites (accepted, rejected, revoked, expired) and
    /// deleted invites' histories are kept, e.g. `400d`; then they are
    /// removed with their redemptions and history. At least `1h`. Unset:
    /// kept forever.
    #[arg(long, env = "INVITES_RETENTION", value_parser = parse_retention, global = true)]
    pub retention: Option<Retention>,
}

/// Deletion is for good: a retention under an hour is likelier a slip
/// (`1s` for `1y`) than a policy, and would remove an invite's history
/// before anyone could look at it.
const SHORTEST_RETENTION: Duration = Duration::from_secs(3600);

fn parse_retention(raw: &str) -> Result<Retention, String> {
    let keep = parse_positive_duration(raw)?;
    if keep < SHORTEST_RETENTION {
        return Err("must be at least 1h: deleted history cannot come back".into());
    }
    Retention::new(keep).ok_or_else(|| "is too long".into())
}

/// `4MiB`, `512KiB` or a number of bytes; at least 1 KiB, at most 64 MiB.
fn parse_size(raw: &str) -> Result<usize, String> {
    let raw = raw.trim();
    let (number, unit) = match raw.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => raw.split_at(at),
        None => (raw, ""),
    };
    let multiplier = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        other => {
            return Err(format!(
                "unknown unit {other:?} (write 4MiB, 512KiB or bytes)"
            ));
        }
    };
    let bytes = number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or("is not a size (write 4MiB, 512KiB or bytes)")?;
    if !(1 << 10..=64 << 20).contains(&bytes) {
        return Err("must be between 1KiB and 64MiB".into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cli;
    use clap::Parser as _;

    #[test]
    fn retention_is_off_unless_set_and_a_bad_one_names_its_flag() {
        let cli = Cli::try_parse_from(["invite-service"]).unwrap();
        assert_eq!(cli.settings.operating.retention, None);
        let cli = Cli::try_parse_from(["invite-service", "--retention", "400d"]).unwrap();
        let four_hundred_days = Retention::new(Duration::from_secs(400 * 86_400));
        assert_eq!(cli.settings.operating.retention, four_hundred_days);
        assert!(
            Cli::try_parse_from(["invite-service", "--retention", "1h"])
                .unwrap()
                .settings
                .operating
                .retention
                .is_some()
        );
        for bad in ["0s", "1s", "59m", "forever", "400", "20000d"] {
            let err = Cli::try_parse_from(["invite-service", "--retention", bad]).unwrap_err();
            assert!(err.to_string().contains("--retention"), "{bad}: {err}");
        }
    }

    #[test]
    fn sizes_are_read_in_bytes_kib_or_mib_within_bounds() {
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert_eq!(parse_size("1 MiB"), Ok(1 << 20));
        for bad in [
            "",
            "MiB",
            "4MB",
            "-1",
            "100",
            "65MiB",
            "99999999999999999999",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
