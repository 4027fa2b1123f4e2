//! request_id: a retry returns the first answer and publishes nothing new.

use std::time::Duration;

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::{
    pb,
    store::entities::{idempotency_key, invite, invite_event},
};
use sea_orm::{Database, EntityTrait};
use tonic::Code;

on_both_databases!(
    a_retried_create_returns_the_same_invite_and_token_and_publishes_once,
    a_request_id_reused_for_another_request_is_invalid_argument,
    a_retry_that_echoes_output_only_fields_is_the_same_request,
    a_retried_batch_returns_the_same_answer,
    concurrent_retries_with_one_key_all_get_the_first_answer,
    no_token_is_stored_in_plain_text,
);

const KEY: &str = "0196a3c2-5f1e-7c9a-8b1d-2e3f4a5b6c7d";

fn keyed(request_id: &str, email: &str) -> pb::CreateInviteRequest {
    pb::CreateInviteRequest {
        request_id: request_id.into(),
        notify: true,
        ..email_invite("org-1", email)
    }
}

async fn a_retried_create_returns_the_same_invite_and_token_and_publishes_once(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);

    let first = create(&mut client, keyed(KEY, "bob@example.org"), &alice).await;
    let retry = create(&mut client, keyed(KEY, "bob@example.org"), &alice).await;

    assert_eq!(first, retry);
    // Another caller's identical key is their own.
    let carol = create(
        &mut client,
        keyed(KEY, "dan@example.org"),
        &token("carol", None, false),
    )
    .await;
    assert_ne!(carol.0.id, first.0.id);
    assert_events(
        &events.take(2).await,
        &[
            ("invite.created", &first.0.id, "alice", 1),
            ("invite.created", &carol.0.id, "carol", 1),
        ],
    );
    events.assert_no_more(Duration::from_millis(500)).await;
    events.delete_exchange().await;
    app.stop().await;
}

async fn a_retry_that_echoes_output_only_fields_is_the_same_request(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let first = create(&mut client, keyed(KEY, "bob@example.org"), &alice).await;

    // A client that retries with the invite it got back: output-only
    // fields, id and etag set, all of which a create ignores (AIP-203).
    let mut echoed = keyed(KEY, "bob@example.org");
    let sent = echoed.invite.as_mut().unwrap();
    sent.id = first.0.id.clone();
    sent.etag = first.0.etag.clone();
    sent.status = pb::InviteStatus::Accepted.into();
    sent.use_count = 3;
    sent.create_time = first.0.create_time;
    let retry = create(&mut client, echoed, &alice).await;

    assert_eq!(retry, first);
    app.stop().await;
}

async fn a_request_id_reused_for_another_request_is_invalid_argument(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    create(&mut client, keyed(KEY, "bob@example.org"), &alice).await;

    let other = client
        .create_invite(authed(keyed(KEY, "eve@example.org"), &alice))
        .await
        .unwrap_err();
    let not_a_uuid = client
        .create_invite(authed(keyed("retry-1", "eve@example.org"), &alice))
        .await
        .unwrap_err();

    assert_eq!(other.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&other), ["request_id"]);
    assert_eq!(bad_fields(&not_a_uuid), ["request_id"]);
    app.stop().await;
}

async fn a_retried_batch_returns_the_same_answer(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let request = pb::BatchCreateInvitesRequest {
        target_type: "account_group".into(),
        target_id: "grp-1".into(),
        emails: vec![
            "a@example.org".into(),
            "nope".into(),
            "b@example.org".into(),
        ],
        request_id: KEY.into(),
        ..Default::default()
    };

    let first = client
        .batch_create_invites(authed(request.clone(), &alice))
        .await
        .unwrap()
        .into_inner();
    let retry = client
        .batch_create_invites(authed(request, &alice))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(first, retry);
    assert_eq!(first.created.len(), 2);
    assert_eq!(first.invalid.len(), 1);
    let ids: Vec<_> = first
        .created
        .iter()
        .map(|c| c.invite.as_ref().unwrap().id.as_str())
        .collect();
    assert_events(
        &events.take(2).await,
        &[
            ("invite.created", ids[0], "alice", 1),
            ("invite.created", ids[1], "alice", 1),
        ],
    );
    events.assert_no_more(Duration::from_millis(500)).await;
    events.delete_exchange().await;
    app.stop().await;
}

async fn no_token_is_stored_in_plain_text(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let (invite, first_token) = create(
        &mut client,
        keyed(KEY, "bob@example.org"),
        &token("alice", None, false),
    )
    .await;
    let invite_id = invite.id.clone();
    let resend = pb::ResendInviteRequest {
        id: invite.id,
        notify: true,
        ..Default::default()
    };
    let resent = client
        .resend_invite(authed(resend, &token("alice", None, false)))
        .await
        .unwrap()
        .into_inner();
    let received = events.take(2).await;
    assert_events(
        &received,
        &[
            ("invite.created", &invite_id, "alice", 1),
            ("invite.resent", &invite_id, "alice", 2),
        ],
    );
    assert_eq!(
        received[1].event.token, resent.token,
        "the event carried it"
    );
    // Published and confirmed: the relay's stamp (and erasure) follows the ack.
    wait_until_outbox_is_empty(&app.database_url).await;
    let db = Database::connect(&app.database_url).await.unwrap();
    let stored_events = invite_event::Entity::find().all(&db).await.unwrap();
    let rows = format!(
        "{:?}{:?}",
        invite::Entity::find().all(&db).await.unwrap(),
        idempotency_key::Entity::find().all(&db).await.unwrap(),
    );
    for secret in [&first_token, &resent.token] {
        assert!(
            !rows.contains(secret.as_str()),
            "a token is stored in plain text"
        );
        for event in &stored_events {
            // The payload's bytes, not their Debug list of numbers.
            let payload = &event.payload;
            let in_payload = payload
                .windows(secret.len())
                .any(|window| window == secret.as_bytes());
            assert!(!in_payload, "a token in event {}'s payload", event.id);
            assert_eq!(event.token, None, "event {} kept its token", event.id);
        }
    }
    db.close().await.ok();
    events.delete_exchange().await;
    app.stop().await;
}

async fn concurrent_retries_with_one_key_all_get_the_first_answer(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let client = app.client().await;
    let alice = token("alice", None, false);

    let retries = (0..6).map(|_| {
        let mut client = client.clone();
        let request = authed(keyed(KEY, "bob@example.org"), &alice);
        tokio::spawn(async move { client.create_invite(request).await })
    });
    let answers: Vec<_> = futures_util::future::join_all(retries)
        .await
        .into_iter()
        .map(|r| r.unwrap().expect("every retry succeeds").into_inner())
        .collect();

    assert!(
        answers.windows(2).all(|pair| pair[0] == pair[1]),
        "one answer for all"
    );
    let id = &answers[0].invite.as_ref().unwrap().id;
    assert_events(&events.take(1).await, &[("invite.created", id, "alice", 1)]);
    events.assert_no_more(Duration::from_millis(500)).await;
    events.delete_exchange().await;
    app.stop().await;
}

/// A retry after the seal secret changed cannot get its token back: it is
/// told to use a new request_id, not INTERNAL.
#[tokio::test]
async fn a_retry_the_server_can_no_longer_unseal_names_request_id() {
    let mut options = Options::fresh(Db::Sqlite).await;
    let seal = |secret: &str| vec!["--replay-seal-secret".to_owned(), secret.repeat(32)];
    options.flags = seal("a");
    let app = TestApp::start(options.clone()).await;
    let alice = token("alice", None, false);
    let mut client = app.client().await;
    client
        .create_invite(authed(keyed(KEY, "bob@example.org"), &alice))
        .await
        .unwrap();
    app.stop().await;

    options.flags = seal("b");
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let retry = client
        .create_invite(authed(keyed(KEY, "bob@example.org"), &alice))
        .await
        .unwrap_err();

    assert_eq!(retry.code(), Code::InvalidArgument, "{retry:?}");
    assert_eq!(bad_fields(&retry), ["request_id"]);
    app.stop().await;
}

/// A batch answered within 4 MiB whose invites then grew (metadata updated)
/// is not replayed past what a client can read.
#[tokio::test]
async fn a_replay_that_grew_past_4_mib_is_refused_not_sent() {
    let app = spawn_app(Db::Sqlite).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let batch = pb::BatchCreateInvitesRequest {
        target_type: "account_group".into(),
        target_id: "grp-1".into(),
        emails: (0..300).map(|n| format!("u{n}@example.org")).collect(),
        request_id: KEY.into(),
        ..Default::default()
    };
    let first = client
        .batch_create_invites(authed(batch.clone(), &alice))
        .await
        .unwrap()
        .into_inner();
    let big = pb::json_to_struct(&serde_json::json!({ "notes": "x".repeat(15_000) })).unwrap();
    for created in first.created {
        let mut invite = created.invite.unwrap();
        invite.metadata = Some(big.clone());
        let update = pb::UpdateInviteRequest {
            invite: Some(invite),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["metadata".into()],
            }),
        };
        client.update_invite(authed(update, &alice)).await.unwrap();
    }

    let replay = client
        .batch_create_invites(authed(batch, &alice))
        .await
        .unwrap_err();

    assert_eq!(replay.code(), Code::InvalidArgument, "{replay:?}");
    assert_eq!(bad_fields(&replay), ["request_id"]);
    app.stop().await;
}
