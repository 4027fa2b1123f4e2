//! Broker down, database down: nothing lost, clear answers.

use std::time::Duration;

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::pb;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

on_both_databases!(
    events_written_while_the_broker_is_unreachable_are_published_once_it_is_back,
    the_relay_reconnects_when_the_broker_comes_back_and_publishes_the_backlog_in_order,
);

/// Nothing listens on port 1.
const CLOSED_AMQP_PORT: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

async fn events_written_while_the_broker_is_unreachable_are_published_once_it_is_back(db: Db) {
    let mut options = Options::fresh(db).await;
    let mut events = Events::bind(&options.exchange).await;
    options.amqp_url = CLOSED_AMQP_PORT.into();
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let mut ids = Vec::new();
    for n in 0..5 {
        let created = client
            .create_invite(authed(
                email_invite("org-1", &format!("u{n}@example.org")),
                &alice,
            ))
            .await
            .expect("the RPCs work while the broker is down");
        ids.push(created.into_inner().invite.unwrap().id);
    }
    client
        .revoke_invite(authed(
            pb::RevokeInviteRequest {
                id: ids[0].clone(),
                reason: String::new(),
            },
            &alice,
        ))
        .await
        .unwrap();
    assert_eq!(
        app.health().await,
        ServingStatus::Serving,
        "the broker is not the database"
    );
    events.assert_no_more(Duration::from_millis(300)).await;
    let database_url = app.database_url.clone();
    let exchange = app.exchange.clone();
    app.stop().await;

    let restarted = TestApp::start(Options {
        database_url,
        exchange,
        amqp_url: amqp_url(),
        sweep_interval: Duration::from_secs(3600),
        flags: Vec::new(),
    })
    .await;
    let received = events.take(6).await;

    let keys: Vec<_> = received.iter().map(|r| r.routing_key.as_str()).collect();
    assert_eq!(
        keys,
        ["invite.created"; 5]
            .into_iter()
            .chain(["invite.revoked"])
            .collect::<Vec<_>>()
    );
    let created_ids: Vec<_> = received[..5]
        .iter()
        .map(|r| r.event.invite.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(created_ids, ids, "in the order they were written");
    assert_eq!(received[5].event.sequence, 2);
    events.assert_no_more(Duration::from_millis(500)).await;
    events.delete_exchange().await;
    restarted.stop().await;
}

#[tokio::test]
async fn while_the_database_is_unreachable_health_is_not_serving_and_calls_are_unavailable() {
    let options = Options {
        database_url: "postgres://postgres@127.0.0.1:1/invites".into(),
        exchange: format!("invites-test-{}", uuid::Uuid::now_v7().simple()),
        amqp_url: amqp_url(),
        sweep_interval: Duration::from_secs(3600),
        flags: Vec::new(),
    };
    let app = TestApp::start_unready(&options).await;

    assert_eq!(app.health().await, ServingStatus::NotServing);
    let mut client = app.client().await;
    let refused = client
        .create_invite(authed(
            email_invite("org-1", "bob@example.org"),
            &token("alice", None, false),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(reason(&refused), "DATABASE_UNAVAILABLE");
    app.stop().await;
}

async fn the_relay_reconnects_when_the_broker_comes_back_and_publishes_the_backlog_in_order(
    db: Db,
) {
    let mut link = BrokerLink::up().await;
    let mut options = Options::fresh(db).await;
    options.amqp_url = link.amqp_url();
    let mut events = Events::bind(&options.exchange).await;
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    create(
        &mut client,
        email_invite("org-1", "first@example.org"),
        &alice,
    )
    .await;
    assert_eq!(events.next().await.routing_key, "invite.created");
    wait_until_outbox_is_empty(&app.database_url).await;

    link.cut();
    let mut ids = Vec::new();
    for n in 0..3 {
        let (invite, _) = create(
            &mut client,
            email_invite("org-1", &format!("u{n}@example.org")),
            &alice,
        )
        .await;
        ids.push(invite.id);
    }
    assert_eq!(app.health().await, ServingStatus::Serving);
    events.assert_no_more(Duration::from_millis(500)).await;
    link.restore().await;

    let received = events.take(3).await;
    let published: Vec<_> = received
        .iter()
        .map(|r| r.event.invite.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(
        published, ids,
        "the backlog, in order, once the broker is back"
    );
    events.assert_no_more(Duration::from_millis(500)).await;
    events.delete_exchange().await;
    app.stop().await;
}

/// PostgreSQL lost after start-up, not only at it: health follows the
/// database down and back up, and calls meanwhile say why they fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_postgres_after_start_is_not_serving_until_it_is_back() {
    let mut options = Options::fresh(Db::Postgres).await;
    let mut link = TcpLink::to_postgres_of(&options.database_url).await;
    options.database_url = link.postgres_url(&options.database_url);
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &alice,
    )
    .await;

    link.cut();
    wait_for_health(&app, ServingStatus::NotServing).await;
    let alive_while_cut = app.health_of("liveness").await;
    let refused = client
        .create_invite(authed(email_invite("org-1", "carol@example.org"), &alice))
        .await
        .unwrap_err();
    link.restore().await;
    wait_for_health(&app, ServingStatus::Serving).await;
    let after = client
        .create_invite(authed(email_invite("org-1", "dave@example.org"), &alice))
        .await;

    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(reason(&refused), "DATABASE_UNAVAILABLE");
    assert_eq!(
        alive_while_cut,
        ServingStatus::Serving,
        "liveness never follows the database"
    );
    assert!(
        after.is_ok(),
        "a create once the database is back: {after:?}"
    );
    app.stop().await;
}

async fn wait_for_health(app: &TestApp, wanted: ServingStatus) {
    for _ in 0..300 {
        if app.health().await == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("health did not become {wanted:?} within 30 s");
}

#[tokio::test]
async fn with_the_broker_down_commits_do_not_cut_the_reconnect_backoff_short() {
    // A "broker" that takes each connection and closes it: every attempt is
    // one accepted connection, counted here.
    let broker = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broker_url = format!("amqp://{}/%2f", broker.local_addr().unwrap());
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = attempts.clone();
    let counter = tokio::spawn(async move {
        while let Ok((socket, _)) = broker.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(socket);
        }
    });
    let options = Options {
        amqp_url: broker_url,
        ..Options::fresh(Db::Sqlite).await
    };
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = attempts.load(std::sync::atomic::Ordering::SeqCst);

    // 60 commits, each waking the relay, over about 1.5 s.
    for n in 0..60 {
        create(
            &mut client,
            email_invite("org-1", &format!("u{n}@example.org")),
            &alice,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let during = attempts.load(std::sync::atomic::Ordering::SeqCst) - before;

    // The backoff (100 ms, doubling) allows a handful in 1.5 s, not 60.
    assert!(
        during <= 8,
        "{during} connection attempts during 60 commits"
    );
    counter.abort();
    app.stop().await;
}
