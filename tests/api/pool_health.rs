//! Health under load: a PostgreSQL pool whose every connection is busy is a
//! queue, not an outage.

use std::time::Duration;

use invite_service::pb;
use sea_orm::{ConnectionTrait as _, Database, DbBackend, Statement, TransactionTrait as _};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::*;

/// Connections waiting on a lock in this test's database.
pub async fn lock_waiters(admin: &sea_orm::DatabaseConnection, database: &str) -> i64 {
    let row = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*) AS waiting FROM pg_stat_activity \
             WHERE datname = $1 AND wait_event_type = 'Lock'",
            [database.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "waiting").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_pool_busy_with_slow_calls_stays_serving() {
    let app = spawn_app(Db::Postgres).await;
    let database = app.database_url.rsplit('/').next().unwrap().to_owned();
    let admin = Database::connect(&app.database_url).await.unwrap();
    // Holds inserts into invites back, so every create call keeps its
    // pooled connection while it waits. Each has a request id: creates
    // without one share a group's connection.
    let blocker = admin.begin().await.unwrap();
    blocker
        .execute_unprepared("LOCK TABLE invites IN SHARE MODE")
        .await
        .unwrap();
    let alice = token("alice", None, false);
    let mut calls = Vec::new();
    for n in 0..20 {
        let mut client = app.client().await;
        let alice = alice.clone();
        calls.push(tokio::spawn(async move {
            client
                .create_invite(authed(
                    pb::CreateInviteRequest {
                        request_id: uuid::Uuid::now_v7().to_string(),
                        ..email_invite("org-1", &format!("u{n}@example.org"))
                    },
                    &alice,
                ))
                .await
        }));
    }
    let observer = Database::connect(&app.database_url).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while lock_waiters(&observer, &database).await < 16 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pool never filled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Longer than the pool's acquire timeout (5 s) plus a health check.
    for _ in 0..24 {
        assert_eq!(app.health().await, ServingStatus::Serving);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    blocker.rollback().await.unwrap();
    let mut created = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => created += 1,
            Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        }
    }
    assert!(created >= 16, "the queued calls went through: {created}");
    observer.close().await.ok();
    admin.close().await.ok();
    app.stop().await;
}
