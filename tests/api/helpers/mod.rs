//! `spawn_app`: a real server on an ephemeral port, its own database (a fresh
//! PostgreSQL database or a fresh SQLite file) and its own exchange, plus a
//! queue bound to that exchange to read what it publishes.

mod app;
mod database;
mod events;
mod links;
mod process;
mod requests;
mod watching;

pub use app::*;
pub use database::*;
pub use events::*;
pub use links::*;
pub use process::*;
pub use requests::*;
pub use watching::*;

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Generates one test per database from an `async fn name(db: Db)`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Db::Postgres).await
            }
        }
    )*};
}
