//! Logs to stderr (stdout belongs to `token` and `events tail`), filtered by
//! `RUST_LOG`.

use tracing_subscriber::EnvFilter;

const DEFAULT_FILTER: &str =
    "info,lapin=warn,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,h2=warn,tower=warn";

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
