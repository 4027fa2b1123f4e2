//! Logs to stderr (stdout belongs to `token` and `events tail`), filtered by
//! `RUST_LOG`, as text or one JSON object per line; and the request id that
//! ties a call's log line to its events.

mod request_id;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

pub use request_id::RequestId;

const DEFAULT_FILTER: &str =
    "info,lapin=warn,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,h2=warn,tower=warn";

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people: one readable line per event.
    Text,
    /// For log collectors: one JSON object per line, with the call's fields
    /// (method, request id, caller, invite id) under `span`.
    Json,
}

/// lapin logs each message RabbitMQ returns (no queue bound) at warn, body
/// and all, and an `invite.created` body asked to notify holds the invite's
/// token. The relay reports unrouted keys itself, so this stays off whatever
/// `RUST_LOG` says.
const NEVER: &str = "lapin::returned_messages=off";

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
        .add_directive(NEVER.parse().expect("a valid directive"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => logs.try_init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
