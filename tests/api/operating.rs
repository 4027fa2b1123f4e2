//! What an operator sees and bounds: `/metrics`, the request id, the cap on
//! concurrent calls, the call deadline, the request size.

use std::time::Duration;

use invite_service::pb::{self, invite_service_client::InviteServiceClient};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::*;
use crate::on_both_databases;

on_both_databases!(
    metrics_count_each_call_by_method_and_code_and_each_event_by_key,
    one_request_id_follows_a_call_into_its_answer_its_event_and_the_history,
);

fn with_metrics(mut options: Options) -> Options {
    options
        .flags
        .extend(["--metrics-listen".into(), "127.0.0.1:0".into()]);
    options
}

async fn metrics_count_each_call_by_method_and_code_and_each_event_by_key(db: Db) {
    let options = with_metrics(Options::fresh(db).await);
    let mut events = Events::bind(&options.exchange).await;
    let app = TestApp::start(options).await;
    let before = app.scrape().await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let (invite, link) = create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &alice,
    )
    .await;
    let bob = token("bob", Some("bob@example.org"), false);
    client
        .accept_invite(authed(accept_by_token(link), &bob))
        .await
        .unwrap();
    let missing = pb::GetInviteRequest {
        id: uuid::Uuid::now_v7().to_string(),
    };
    let not_found = client
        .get_invite(authed(missing, &alice))
        .await
        .unwrap_err();
    events.take(2).await;
    wait_until_outbox_is_empty(&app.database_url).await;

    let after = app.scrape().await;

    assert_eq!(not_found.code(), Code::NotFound);
    for series in [
        r#"grpc_server_handled_total{grpc_code="OK",grpc_method="CreateInvite"}"#,
        r#"grpc_server_handled_total{grpc_code="OK",grpc_method="AcceptInvite"}"#,
        r#"grpc_server_handling_seconds_count{grpc_method="CreateInvite"}"#,
        r#"invites_events_published_total{routing_key="invite.created"}"#,
        "invites_publish_failures_total",
        "invites_expired_total",
        r#"invites_throttled_total{reason="RATE_LIMITED"}"#,
        "invites_outbox_backlog",
        "invites_outbox_oldest_unpublished_seconds",
    ] {
        assert_eq!(series_value(&before, series), 0.0, "{series} at start-up");
    }
    // Sampled, not counted: the relay may hold a connection at any moment.
    series_value(&before, r#"invites_database_connections{state="in_use"}"#);
    for (series, counted) in [
        (
            r#"grpc_server_handled_total{grpc_code="OK",grpc_method="CreateInvite"}"#,
            1.0,
        ),
        (
            r#"grpc_server_handled_total{grpc_code="OK",grpc_method="AcceptInvite"}"#,
            1.0,
        ),
        (
            r#"grpc_server_handled_total{grpc_code="NOT_FOUND",grpc_method="GetInvite"}"#,
            1.0,
        ),
        (
            r#"grpc_server_handling_seconds_count{grpc_method="CreateInvite"}"#,
            1.0,
        ),
        (
            r#"grpc_server_handling_seconds_bucket{grpc_method="CreateInvite",le="+Inf"}"#,
            1.0,
        ),
        (
            r#"invites_events_published_total{routing_key="invite.created"}"#,
            1.0,
        ),
        (
            r#"invites_events_published_total{routing_key="invite.accepted"}"#,
            1.0,
        ),
        ("invites_publish_failures_total", 0.0),
        ("invites_outbox_backlog", 0.0),
    ] {
        assert_eq!(series_value(&after, series), counted, "{series}");
    }
    assert!(
        series_value(
            &after,
            r#"grpc_server_handling_seconds_sum{grpc_method="CreateInvite"}"#
        ) > 0.0
    );
    let open_connections = series_value(&after, r#"invites_database_connections{state="in_use"}"#)
        + series_value(&after, r#"invites_database_connections{state="idle"}"#);
    assert!(open_connections >= 1.0, "{after}");
    assert!(
        !after.contains("bob@example.org") && !after.contains(&invite.id),
        "no address or id in a label"
    );
    events.delete_exchange().await;
    app.stop().await;
}

/// A dry run answers like the real call; its count says which it was, also
/// when it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_are_counted_apart_from_the_calls_that_write() {
    let app = TestApp::start(with_metrics(Options::fresh(Db::Sqlite).await)).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let dry = |request: pb::CreateInviteRequest| pb::CreateInviteRequest {
        validate_only: true,
        ..request
    };
    let mut nameless = email_invite("org-1", "carol@example.org");
    nameless.invite.as_mut().unwrap().target_type.clear();
    let batch = pb::BatchCreateInvitesRequest {
        target_type: "organization".into(),
        target_id: "org-1".into(),
        emails: vec!["dan@example.org".into(), "erin@example.org".into()],
        validate_only: true,
        ..Default::default()
    };

    let previewed = client
        .create_invite(authed(
            dry(email_invite("org-1", "bob@example.org")),
            &alice,
        ))
        .await;
    let refused = client.create_invite(authed(dry(nameless), &alice)).await;
    let batched = client.batch_create_invites(authed(batch, &alice)).await;
    create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &alice,
    )
    .await;
    let scraped = app.scrape().await;

    assert!(previewed.is_ok() && batched.is_ok());
    assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument);
    for (series, counted) in [
        (
            r#"grpc_server_handled_total{grpc_code="OK",grpc_method="CreateInvite"}"#,
            2.0,
        ),
        (
            r#"invites_dry_runs_total{grpc_code="OK",grpc_method="CreateInvite"}"#,
            1.0,
        ),
        (
            r#"invites_dry_runs_total{grpc_code="INVALID_ARGUMENT",grpc_method="CreateInvite"}"#,
            1.0,
        ),
        (
            r#"invites_dry_runs_total{grpc_code="OK",grpc_method="BatchCreateInvites"}"#,
            1.0,
        ),
    ] {
        assert_eq!(series_value(&scraped, series), counted, "{series}");
    }
    app.stop().await;
}

/// A backlog the broker cannot take shows in the outbox gauges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_gauges_show_what_waits_while_the_broker_is_away() {
    let mut link = BrokerLink::up().await;
    let mut options = with_metrics(Options::fresh(Db::Postgres).await);
    options.amqp_url = link.amqp_url();
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    link.cut();
    let alice = token("alice", None, false);
    for n in 0..3 {
        create(
            &mut client,
            email_invite("org-1", &format!("u{n}@example.org")),
            &alice,
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let scraped = app.scrape().await;

    assert_eq!(series_value(&scraped, "invites_outbox_backlog"), 3.0);
    assert!(series_value(&scraped, "invites_outbox_oldest_unpublished_seconds") >= 1.0);
    link.restore().await;
    wait_until_outbox_is_empty(&app.database_url).await;
    assert_eq!(
        series_value(&app.scrape().await, "invites_outbox_backlog"),
        0.0
    );
    app.stop().await;
}

#[tokio::test]
async fn health_is_never_counted_nor_capped() {
    let app = TestApp::start(with_metrics(Options::fresh(Db::Sqlite).await)).await;

    for _ in 0..3 {
        assert_eq!(app.health().await, ServingStatus::Serving);
    }

    let scraped = app.scrape().await;
    assert!(!scraped.contains("grpc_method=\"Check\""), "{scraped}");
    app.stop().await;
}

fn request_id_of<T>(response: &tonic::Response<T>) -> String {
    response
        .metadata()
        .get("x-request-id")
        .expect("every answer carries its request id")
        .to_str()
        .unwrap()
        .to_owned()
}

async fn one_request_id_follows_a_call_into_its_answer_its_event_and_the_history(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let mut traced = authed(email_invite("org-1", "bob@example.org"), &alice);
    traced
        .metadata_mut()
        .insert("x-request-id", "checkout-7f3a/attempt:2".parse().unwrap());

    let created = client.create_invite(traced).await.unwrap();
    let created_id = request_id_of(&created);
    let created = created.into_inner();
    let invite = created.invite.unwrap();
    let accepted = client
        .accept_invite(authed(
            accept_by_token(created.token),
            &token("bob", Some("bob@example.org"), false),
        ))
        .await
        .unwrap();
    let accepted_id = request_id_of(&accepted);
    let [on_create, on_accept] = <[Received; 2]>::try_from(events.take(2).await)
        .unwrap_or_else(|_| unreachable!("take(2) returns two"));
    let history = client
        .list_invite_events(authed(
            pb::ListInviteEventsRequest {
                invite_id: invite.id.clone(),
                ..Default::default()
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner()
        .events;

    assert_eq!(created_id, "checkout-7f3a/attempt:2", "the caller's own id");
    assert!(
        uuid::Uuid::parse_str(&accepted_id).is_ok(),
        "a new one when the caller sent none: {accepted_id}"
    );
    for (received, id, event_type, sequence) in [
        (&on_create, &created_id, "invite.created", "1"),
        (&on_accept, &accepted_id, "invite.accepted", "2"),
    ] {
        assert_eq!(received.routing_key, event_type);
        assert_eq!(received.event.request_id, *id);
        assert_eq!(received.header("x-request-id").as_ref(), Some(id));
        assert_eq!(received.header("invite_id").as_ref(), Some(&invite.id));
        assert_eq!(received.header("sequence").as_deref(), Some(sequence));
        assert_eq!(received.header("event_type").as_deref(), Some(event_type));
        let occurred_at = received.event.occurred_at.unwrap();
        let time = chrono::DateTime::from_timestamp(occurred_at.seconds, occurred_at.nanos as u32)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let message_id = received
            .properties
            .message_id()
            .as_ref()
            .unwrap()
            .to_string();
        for (attribute, value) in [
            ("id", message_id.as_str()),
            ("source", "/invite-service"),
            ("specversion", "1.0"),
            ("type", event_type),
            ("time", time.as_str()),
            ("subject", invite.id.as_str()),
            ("datacontenttype", "application/x-protobuf"),
        ] {
            let name = format!("cloudEvents:{attribute}");
            assert_eq!(received.header(&name).as_deref(), Some(value), "{name}");
        }
    }
    let recorded: Vec<_> = history.iter().map(|e| e.request_id.as_str()).collect();
    assert_eq!(recorded, [created_id.as_str(), accepted_id.as_str()]);
    events.delete_exchange().await;
    app.stop().await;
}

/// Holds the invite's row locked from outside the service, so that calls
/// changing it wait on PostgreSQL for as long as the test wants.
struct RowHeld {
    txn: sea_orm::DatabaseTransaction,
}

impl RowHeld {
    async fn lock(database_url: &str, invite_id: &str) -> Self {
        use sea_orm::{ConnectionTrait as _, TransactionTrait as _};
        let db = sea_orm::Database::connect(database_url).await.unwrap();
        let txn = db.begin().await.unwrap();
        txn.execute_unprepared(&format!(
            "SELECT id FROM invites WHERE id = '{invite_id}' FOR UPDATE"
        ))
        .await
        .unwrap();
        Self { txn }
    }

    async fn release(self) {
        self.txn.rollback().await.unwrap();
    }
}

/// A client over plain HTTP/2 that sends `grpc-timeout` but, unlike
/// tonic's channel, does not end the call itself when it passes: whatever
/// comes back is the server's answer.
fn patient_client(
    app: &TestApp,
) -> pb::invite_service_client::InviteServiceClient<
    hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        tonic::body::Body,
    >,
> {
    let http2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let origin = format!("http://{}", app.addr).parse().unwrap();
    pb::invite_service_client::InviteServiceClient::with_origin(http2, origin)
}

/// A server on PostgreSQL with these flags, and alice's invite whose row the
/// test holds locked, so that calls changing it wait.
struct Held {
    app: TestApp,
    client: InviteServiceClient<tonic::transport::Channel>,
    alice: String,
    invite: pb::Invite,
    held: RowHeld,
}

async fn an_invite_held_locked(flags: &[&str]) -> Held {
    let mut options = with_metrics(Options::fresh(Db::Postgres).await);
    options.flags.extend(flags.iter().map(|f| f.to_string()));
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let (invite, _) = create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &alice,
    )
    .await;
    let held = RowHeld::lock(&app.database_url, &invite.id).await;
    Held {
        app,
        client,
        alice,
        invite,
        held,
    }
}

fn revoke(id: &str, alice: &str) -> tonic::Request<pb::RevokeInviteRequest> {
    authed(
        pb::RevokeInviteRequest {
            id: id.to_owned(),
            reason: String::new(),
        },
        alice,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_concurrent_call_cap_calls_are_refused_at_once_and_health_holds() {
    let Held {
        app,
        mut client,
        alice,
        invite,
        held,
    } = an_invite_held_locked(&["--max-concurrent-calls", "2"]).await;
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let mut client = client.clone();
        let request = revoke(&invite.id, &alice);
        waiting.push(tokio::spawn(
            async move { client.revoke_invite(request).await },
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = tokio::time::Instant::now();
    let refused = client
        .get_invite(authed(
            pb::GetInviteRequest {
                id: invite.id.clone(),
            },
            &alice,
        ))
        .await
        .unwrap_err();
    let took = started.elapsed();
    let health = app.health().await;
    held.release().await;
    let mut served = Vec::new();
    for call in waiting {
        served.push(call.await.unwrap().map(|_| ()).map_err(|s| s.code()));
    }
    let after = client
        .get_invite(authed(pb::GetInviteRequest { id: invite.id }, &alice))
        .await;

    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(reason(&refused), "OVERLOADED");
    assert!(
        took < Duration::from_millis(250),
        "refused at once, not queued: {took:?}"
    );
    assert_eq!(health, ServingStatus::Serving, "probes are not capped");
    served.sort_by_key(|r| r.is_err());
    assert_eq!(
        served,
        [Ok(()), Err(Code::FailedPrecondition)],
        "the held calls were served once the row was free (the second finds it revoked)"
    );
    assert!(after.is_ok(), "the cap frees its places: {after:?}");
    let scraped = app.scrape().await;
    assert_eq!(
        series_value(&scraped, r#"invites_throttled_total{reason="OVERLOADED"}"#),
        1.0
    );
    assert_eq!(
        series_value(
            &scraped,
            r#"grpc_server_handled_total{grpc_code="RESOURCE_EXHAUSTED",grpc_method="GetInvite"}"#
        ),
        1.0
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_deadline_is_ended_by_the_server_and_changes_nothing() {
    let Held {
        app,
        mut client,
        alice,
        invite,
        held,
    } = an_invite_held_locked(&["--call-timeout", "600ms"]).await;

    // Bounded here too: without a deadline in the server, the calls would
    // wait for the row as long as the test holds it.
    let bounded = Duration::from_secs(5);
    let server_deadline =
        tokio::time::timeout(bounded, client.revoke_invite(revoke(&invite.id, &alice)))
            .await
            .expect("the server ends the call at its deadline")
            .unwrap_err();
    let mut hurried = revoke(&invite.id, &alice);
    hurried.set_timeout(Duration::from_millis(200));
    let started = tokio::time::Instant::now();
    let client_deadline =
        tokio::time::timeout(bounded, patient_client(&app).revoke_invite(hurried))
            .await
            .expect("the server ends the call at the client's deadline")
            .unwrap_err();
    let client_deadline_took = started.elapsed();
    held.release().await;
    let after = client
        .get_invite(authed(pb::GetInviteRequest { id: invite.id }, &alice))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(
        server_deadline.code(),
        Code::DeadlineExceeded,
        "{server_deadline:?}"
    );
    assert!(
        server_deadline.message().contains("600 ms"),
        "{server_deadline:?}"
    );
    // tonic ends a call past the client's `grpc-timeout` as CANCELLED.
    assert_eq!(
        client_deadline.code(),
        Code::Cancelled,
        "{client_deadline:?}"
    );
    assert!(
        client_deadline_took < Duration::from_millis(550),
        "the client's shorter deadline wins: {client_deadline_took:?}"
    );
    assert_eq!(
        after.status(),
        pb::InviteStatus::Pending,
        "the revokes' transactions were rolled back"
    );
    let scraped = app.scrape().await;
    for code in ["DEADLINE_EXCEEDED", "CANCELLED"] {
        let series = format!(
            r#"grpc_server_handled_total{{grpc_code="{code}",grpc_method="RevokeInvite"}}"#
        );
        assert_eq!(
            series_value(&scraped, &series),
            1.0,
            "{series} in\n{scraped}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_request_larger_than_the_limit_is_refused_before_it_is_read() {
    let mut options = Options::fresh(Db::Sqlite).await;
    options
        .flags
        .extend(["--max-request-size".into(), "2KiB".into()]);
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let mut large = email_invite("org-1", "bob@example.org");
    large.passcode = "x".repeat(3000);

    let refused = client
        .create_invite(authed(large, &alice))
        .await
        .unwrap_err();
    let small = client
        .create_invite(authed(email_invite("org-1", "bob@example.org"), &alice))
        .await;

    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(reason(&refused), "REQUEST_TOO_LARGE");
    assert!(
        refused.message().contains("--max-request-size"),
        "{refused:?}"
    );
    assert!(small.is_ok(), "{small:?}");
    app.stop().await;
}
