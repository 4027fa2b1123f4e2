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

/// The invites table locked in `mode` by a transaction of the test's own,
/// until it rolls back.
pub async fn hold_table(
    app: &TestApp,
    mode: &str,
) -> (sea_orm::DatabaseConnection, sea_orm::DatabaseTransaction) {
    let admin = Database::connect(&app.database_url).await.unwrap();
    let blocker = admin.begin().await.unwrap();
    blocker
        .execute_unprepared(&format!("LOCK TABLE invites IN {mode} MODE"))
        .await
        .unwrap();
    (admin, blocker)
}

/// Whether creates carry a request id (an idempotency key).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Keyed {
    Yes,
    No,
}

/// `n` concurrent creates by alice, each to its own address.
pub async fn spawn_creates(
    app: &TestApp,
    n: usize,
    keyed: Keyed,
) -> Vec<tokio::task::JoinHandle<Result<tonic::Response<pb::CreateInviteResponse>, tonic::Status>>>
{
    let alice = token("alice", None, false);
    let mut calls = Vec::new();
    for n in 0..n {
        let mut client = app.client().await;
        let alice = alice.clone();
        let request = pb::CreateInviteRequest {
            request_id: match keyed {
                Keyed::Yes => uuid::Uuid::now_v7().to_string(),
                Keyed::No => String::new(),
            },
            ..email_invite("org-1", &format!("u{n}@example.org"))
        };
        calls.push(tokio::spawn(async move {
            client.create_invite(authed(request, &alice)).await
        }));
    }
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_pool_busy_with_slow_calls_stays_serving() {
    let app = spawn_app(Db::Postgres).await;
    let database = app.database_url.rsplit('/').next().unwrap().to_owned();
    // Holds inserts into invites back, so every create call keeps its
    // pooled connection while it waits. Each has a request id: creates
    // without one share a group's connection.
    let (admin, blocker) = hold_table(&app, "SHARE").await;
    let calls = spawn_creates(&app, 20, Keyed::Yes).await;
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
