//! What operators see: health, the CLI, SIGTERM.

use std::{process::Stdio, time::Duration};

use futures_util::StreamExt as _;
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::Command,
};

use crate::helpers::*;
use tonic_health::pb::health_check_response::ServingStatus;

const BIN: &str = env!("CARGO_BIN_EXE_invite-service");

fn command(database_url: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("INVITES_JWT_SECRET", SECRET)
        .env("AMQP_URL", amqp_url())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn migrate_twice_succeeds_and_changes_nothing_the_second_time() {
    let url = fresh_database(Db::Sqlite).await;
    for _ in 0..2 {
        let output = command(&url).arg("migrate").output().await.unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn token_prints_only_a_token_the_service_accepts() {
    let url = fresh_database(Db::Sqlite).await;
    let output = command(&url)
        .args([
            "token",
            "--sub",
            "alice",
            "--email",
            "alice@example.org",
            "--admin",
        ])
        .output()
        .await
        .unwrap();

    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let jwt = stdout.trim_end();
    assert_eq!(stdout.lines().count(), 1);
    let authenticator = invite_service::grpc::auth::Authenticator::new(
        invite_service::grpc::auth::VerifyingKey::Secret(SECRET.as_bytes().to_vec()),
        None,
        None,
    )
    .unwrap();
    let caller = authenticator
        .authenticate(Some(&format!("Bearer {jwt}")))
        .unwrap();
    assert_eq!(caller.user_id.as_str(), "alice");
    assert!(caller.is_admin);
    assert_eq!(caller.verified_email.unwrap().as_str(), "alice@example.org");
}

#[tokio::test]
async fn a_bad_setting_stops_start_up_with_a_message_naming_it() {
    let url = fresh_database(Db::Sqlite).await;
    let output = command(&url)
        .env("INVITES_LISTEN", "not-an-address")
        .output()
        .await
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--listen"), "{stderr}");
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let url = fresh_database(Db::Sqlite).await;
    let mut child = command(&url)
        .env("INVITES_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let serving = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("SERVING") && !line.contains("NOT_SERVING") {
                return;
            }
        }
        panic!("the server exited before serving");
    });
    serving.await.expect("SERVING within 20 s");

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exit within the drain timeout")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn events_tail_prints_each_published_event_as_a_json_line() {
    let app = spawn_app(Db::Sqlite).await;
    let mut tail = command(&app.database_url)
        .args(["events", "tail", "--binding", "invite.*"])
        .env("INVITES_EXCHANGE", &app.exchange)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(tail.stderr.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = log.next_line().await.unwrap() {
            if line.contains("tailing events") {
                return;
            }
        }
        panic!("events tail exited before binding its queue");
    })
    .await
    .expect("events tail ready within 20 s");

    let mut client = app.client().await;
    let (invite, _) = create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &token("alice", None, false),
    )
    .await;

    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
        .await
        .expect("a line within 15 s")
        .unwrap()
        .expect("a line");
    let line: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
    assert_eq!(line["routing_key"], "invite.created");
    assert_eq!(line["redelivered"], false);
    let event = &line["event"];
    assert_eq!(line["message_id"], event["event_id"]);
    assert_eq!(event["type"], "INVITE_EVENT_TYPE_CREATED");
    // Canonical protobuf JSON: 64-bit integers as strings, RFC 3339 times,
    // every field of the proto (request_id was added after this printer).
    assert_eq!(event["sequence"], "1");
    assert!(
        event["occurred_at"].as_str().unwrap().ends_with('Z'),
        "{event}"
    );
    assert!(!event["request_id"].as_str().unwrap().is_empty(), "{event}");
    assert_eq!(event["invite"]["id"], invite.id.as_str());
    assert_eq!(event["invite"]["invitee_email"], "bob@example.org");
    tail.kill().await.ok();
    app.stop().await;
}

#[tokio::test]
async fn stopping_tells_health_watchers_not_serving_then_ends_their_streams() {
    let app = spawn_app(Db::Sqlite).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel().await);
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    let mut liveness = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: "liveness".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        liveness.next().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );

    // The README promises: watchers see NOT_SERVING, their streams end after
    // a quarter of the drain timeout (10 s here) but at most 2 s, and the
    // whole stop stays within the drain timeout. The bounds below leave room
    // for a loaded machine and still fail if a watcher held the drain.
    let stopping = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        app.stop().await;
        started.elapsed()
    });

    let next = watch.next().await.unwrap().unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    let end = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("the watch stream ends soon after NOT_SERVING");
    assert!(end.is_none(), "the stream ends cleanly, not with {end:?}");
    let dying = liveness.next().await.unwrap().unwrap();
    assert_eq!(
        dying.status(),
        ServingStatus::NotServing,
        "liveness turns only when shutdown starts"
    );
    let end = tokio::time::timeout(Duration::from_secs(5), liveness.next())
        .await
        .expect("the liveness stream ends too");
    assert!(end.is_none(), "{end:?}");
    let took = tokio::time::timeout(Duration::from_secs(30), stopping)
        .await
        .expect("the server stops")
        .unwrap();
    assert!(
        took < Duration::from_secs(8),
        "stopping took {took:?} of a 10 s drain"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_starting_together_on_one_postgres_both_serve() {
    use sea_orm::ConnectionTrait as _;
    let options = Options::fresh(Db::Postgres).await;

    let (first, second) = tokio::join!(
        TestApp::start(options.clone()),
        TestApp::start(options.clone())
    );

    let db = sea_orm::Database::connect(&options.database_url)
        .await
        .unwrap();
    let applied = db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT version FROM seaql_migrations",
        ))
        .await
        .unwrap();
    use migration::MigratorTrait as _;
    assert_eq!(
        applied.len(),
        migration::Migrator::migrations().len(),
        "each migration applied once"
    );
    db.close().await.ok();
    first.stop().await;
    second.stop().await;
}
