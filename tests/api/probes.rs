//! What a container platform probes: `liveness` follows the process only,
//! readiness follows the database, and `health` answers a HEALTHCHECK.

use std::{process::Stdio, time::Duration};

use tokio::process::Command;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_invite-service");
const SERVICE: &str = "invites.v1.InviteService";

/// PostgreSQL refusing connections: the kind of outage a restart would not
/// mend, so liveness must not fail, while readiness takes the pod out.
fn options_with_no_database() -> Options {
    Options {
        database_url: "postgres://postgres@127.0.0.1:1/invites".into(),
        exchange: format!("invites-test-{}", uuid::Uuid::now_v7().simple()),
        amqp_url: amqp_url(),
        sweep_interval: Duration::from_secs(3600),
        flags: Vec::new(),
    }
}

#[tokio::test]
async fn without_a_database_liveness_serves_while_readiness_does_not() {
    let app = TestApp::start_unready(&options_with_no_database()).await;

    assert_eq!(app.health_of("liveness").await, ServingStatus::Serving);
    assert_eq!(app.health_of("").await, ServingStatus::NotServing);
    assert_eq!(app.health_of(SERVICE).await, ServingStatus::NotServing);
    app.stop().await;
}

#[tokio::test]
async fn the_health_subcommand_succeeds_only_when_serving() {
    let ready = spawn_app(Db::Sqlite).await;
    let unready = TestApp::start_unready(&options_with_no_database()).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };

    let serving = probe(&ready.addr.to_string(), &[]).await;
    let serving_api = probe(&ready.addr.to_string(), &["--service", SERVICE]).await;
    let not_ready = probe(&unready.addr.to_string(), &[]).await;
    let alive = probe(&unready.addr.to_string(), &["--service", "liveness"]).await;
    let nobody = probe(&closed.to_string(), &[]).await;
    let everywhere = probe(&format!("0.0.0.0:{}", ready.addr.port()), &[]).await;

    assert!(serving.status.success(), "{serving:?}");
    assert!(serving_api.status.success(), "{serving_api:?}");
    assert!(!not_ready.status.success());
    assert!(
        stderr(&not_ready).contains("NOT_SERVING"),
        "{}",
        stderr(&not_ready)
    );
    assert!(alive.status.success(), "{alive:?}");
    assert!(!nobody.status.success());
    assert!(
        stderr(&nobody).contains("nothing answers"),
        "{}",
        stderr(&nobody)
    );
    assert!(
        everywhere.status.success(),
        "0.0.0.0 is probed on loopback: {everywhere:?}"
    );
    ready.stop().await;
    unready.stop().await;
}

async fn probe(listen: &str, args: &[&str]) -> std::process::Output {
    let run = Command::new(BIN)
        .env_clear()
        .args(["health", "--listen", listen])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the probe answers within its timeout")
        .expect("run the binary")
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
