//! A database of each test's own, and what tests read from it directly.

use std::{path::PathBuf, time::Duration};

use sea_orm::{ConnectionTrait, Database};
use uuid::Uuid;

use super::*;

pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of the test's own, named after a fresh UUID.
pub async fn fresh_database(db: Db) -> String {
    forget_old_test_data(db).await;
    let name = format!("invites_test_{}", Uuid::now_v7().simple());
    match db {
        Db::Sqlite => {
            let dir: PathBuf = std::env::temp_dir().join(&name);
            format!("sqlite://{}/invites.db?mode=rwc", dir.display())
        }
        Db::Postgres => {
            let admin_url = postgres_admin_url();
            let admin = Database::connect(&admin_url).await.unwrap_or_else(|err| {
                panic!(
                    "PostgreSQL is not reachable at {admin_url} ({err}). Start it: \
                     pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
                )
            });
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create the test database");
            admin.close().await.ok();
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(base, _)| base);
            format!("{base}/{name}")
        }
    }
}

/// Test databases are left behind for post-mortems; those of runs over an
/// hour old (their names are UUIDv7s, which carry the time) are removed once
/// per test process. A run going on beside this one is not touched.
async fn forget_old_test_data(db: Db) {
    static SQLITE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    static POSTGRES: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let is_old = |name: &str| {
        let Some(id) = name.strip_prefix("invites_test_") else {
            return false;
        };
        let Some(made) = Uuid::parse_str(id).ok().and_then(|id| id.get_timestamp()) else {
            return false;
        };
        let age = chrono::Utc::now().timestamp() - made.to_unix().0 as i64;
        age > 3600
    };
    match db {
        Db::Sqlite => {
            SQLITE
                .get_or_init(|| async {
                    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
                        return;
                    };
                    for entry in entries.flatten() {
                        if is_old(&entry.file_name().to_string_lossy()) {
                            let _ = std::fs::remove_dir_all(entry.path());
                        }
                    }
                })
                .await;
        }
        Db::Postgres => {
            POSTGRES
                .get_or_init(|| async {
                    let Ok(admin) = Database::connect(&postgres_admin_url()).await else {
                        return;
                    };
                    let names = admin
                        .query_all_raw(sea_orm::Statement::from_string(
                            sea_orm::DbBackend::Postgres,
                            "SELECT datname FROM pg_database WHERE datname LIKE 'invites_test_%'",
                        ))
                        .await
                        .unwrap_or_default();
                    for row in names {
                        let Ok(name) = row.try_get::<String>("", "datname") else {
                            continue;
                        };
                        if is_old(&name) {
                            let _ = admin
                                .execute_unprepared(&format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                ))
                                .await;
                        }
                    }
                    admin.close().await.ok();
                })
                .await;
        }
    }
}

/// Waits until the relay has stamped every event as published: until then a
/// broker cut may lose a confirm, and the event is rightly published again.
pub async fn wait_until_outbox_is_empty(database_url: &str) {
    use invite_service::store::entities::invite_event;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let db = Database::connect(database_url).await.unwrap();
    for _ in 0..200 {
        let waiting = invite_event::Entity::find()
            .filter(invite_event::Column::PublishedAt.is_null())
            .count(&db)
            .await
            .unwrap();
        if waiting == 0 {
            db.close().await.ok();
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the outbox was not empty within 10 s");
}
