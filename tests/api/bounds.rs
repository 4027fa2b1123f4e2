//! Bounded answers: none over the 4 MiB gRPC clients accept; and the same
//! answer from both databases whatever the client sends.

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::pb;
use prost::Message as _;
use prost_types::{Struct, Timestamp};
use tonic::Code;
use uuid::Uuid;

on_both_databases!(
    a_batch_whose_answer_would_pass_4_mib_is_refused_before_anything_is_written,
    list_pages_stop_at_a_byte_budget_and_continue_right_after_the_last_invite,
    history_pages_stop_at_a_byte_budget_and_continue_right_after_the_last_event,
    a_refused_address_holding_a_nul_byte_is_answered_and_replayed_alike,
    client_timestamps_are_cut_to_microseconds_so_a_read_returns_what_the_write_returned,
);

/// What gRPC clients accept by default.
const FOUR_MIB: usize = 4 * 1024 * 1024;

/// Metadata of about `chars` bytes, under the 16 KiB an invite may carry.
fn big_metadata(chars: usize) -> Option<Struct> {
    pb::json_to_struct(&serde_json::json!({ "spawn": "x".repeat(chars) }))
}

fn batch(
    target_id: &str,
    emails: Vec<String>,
    metadata: Option<Struct>,
) -> pb::BatchCreateInvitesRequest {
    pb::BatchCreateInvitesRequest {
        target_type: "account_group".into(),
        target_id: target_id.into(),
        emails,
        metadata,
        ..Default::default()
    }
}

fn addresses(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}@example.org")).collect()
}

async fn a_batch_whose_answer_would_pass_4_mib_is_refused_before_anything_is_written(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    // 1,000 invites of 8 KiB each: an 8 MiB answer.
    let request = batch("grp-1", addresses("u", 1000), big_metadata(8000));

    let refused = client
        .batch_create_invites(authed(request, &alice))
        .await
        .unwrap_err();

    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_eq!(bad_fields(&refused), ["emails", "metadata"]);
    let listed = client
        .list_invites(authed(pb::ListInvitesRequest::default(), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_size, 0, "nothing was written");
    app.stop().await;
}

/// Creates `n` invites of about 16 KiB each, in batches that fit an answer.
async fn many_big_invites(app: &TestApp, alice: &str, n: usize) -> Vec<String> {
    let mut client = app.client().await;
    let mut ids = Vec::new();
    for (round, chunk) in addresses("u", n).chunks(150).enumerate() {
        let request = batch("grp-1", chunk.to_vec(), big_metadata(16_000));
        let answer = client
            .batch_create_invites(authed(request, alice))
            .await
            .unwrap_or_else(|err| panic!("batch {round}: {err:?}"))
            .into_inner();
        ids.extend(answer.created.into_iter().map(|c| c.invite.unwrap().id));
    }
    ids
}

async fn list_pages_stop_at_a_byte_budget_and_continue_right_after_the_last_invite(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    // About 4.8 MiB in all: more than one answer may hold.
    let mut created = many_big_invites(&app, &alice, 300).await;

    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let request = pb::ListInvitesRequest {
            page_size: 500,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let page = client
            .list_invites(authed(request, &alice))
            .await
            .unwrap_or_else(|err| panic!("page {pages}: {err:?}"))
            .into_inner();
        assert!(page.encoded_len() <= FOUR_MIB);
        assert!(!page.invites.is_empty());
        assert_eq!(page.total_size, 300);
        seen.extend(page.invites.into_iter().map(|i| i.id));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }

    assert_eq!(pages, 2, "cut by size, not by count");
    created.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, created, "each exactly once, newest first");
    app.stop().await;
}

async fn history_pages_stop_at_a_byte_budget_and_continue_right_after_the_last_event(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let mut request = email_invite("org-1", "bob@example.org");
    request.invite.as_mut().unwrap().metadata = big_metadata(16_000);
    let (mut invite, _) = create(&mut client, request, &alice).await;
    // 271 events of about 16 KiB each: about 4.3 MiB of history.
    for n in 0..270 {
        invite.role = if n % 2 == 0 { "viewer" } else { "member" }.into();
        let update = pb::UpdateInviteRequest {
            invite: Some(invite.clone()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["role".into()],
            }),
        };
        invite = client
            .update_invite(authed(update, &alice))
            .await
            .unwrap()
            .into_inner();
    }

    let mut sequences = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let request = pb::ListInviteEventsRequest {
            invite_id: invite.id.clone(),
            page_size: 1000,
            page_token: page_token.clone(),
        };
        let page = client
            .list_invite_events(authed(request, &alice))
            .await
            .unwrap_or_else(|err| panic!("page {pages}: {err:?}"))
            .into_inner();
        assert!(page.encoded_len() <= FOUR_MIB);
        assert!(!page.events.is_empty());
        sequences.extend(page.events.iter().map(|e| e.sequence));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }

    assert_eq!(pages, 2, "cut by size, not by count");
    assert_eq!(sequences, (1..=271).collect::<Vec<_>>());
    app.stop().await;
}

async fn a_refused_address_holding_a_nul_byte_is_answered_and_replayed_alike(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let request = pb::BatchCreateInvitesRequest {
        request_id: Uuid::now_v7().to_string(),
        ..batch(
            "grp-1",
            vec!["ann@example.org".into(), "b\0b@example.org".into()],
            None,
        )
    };

    let first = client
        .batch_create_invites(authed(request.clone(), &alice))
        .await
        .unwrap()
        .into_inner();
    let replayed = client
        .batch_create_invites(authed(request, &alice))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(first.created.len(), 1);
    assert_eq!(
        first.invalid,
        [pb::InvalidEmail {
            email: "b\0b@example.org".into(),
            reason: "INVALID_EMAIL".into(),
        }]
    );
    assert_eq!(replayed, first, "the retry gets the first answer");
    app.stop().await;
}

/// A timestamp `offset` from now, with nanoseconds no database keeps.
fn with_nanos(offset: chrono::Duration, nanos: i32) -> Timestamp {
    Timestamp {
        nanos,
        ..timestamp_in(offset)
    }
}

async fn client_timestamps_are_cut_to_microseconds_so_a_read_returns_what_the_write_returned(
    db: Db,
) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let mut request = email_invite("org-1", "bob@example.org");
    let expires_at = with_nanos(chrono::Duration::days(1), 123_456_789);
    request.invite.as_mut().unwrap().expires_at = Some(expires_at);
    request.invite.as_mut().unwrap().starts_at =
        Some(with_nanos(chrono::Duration::hours(-1), 987_654_321));
    let (reader, viewer) = (client.clone(), alice.clone());
    let get = move |id: String| {
        let mut client = reader.clone();
        let alice = viewer.clone();
        async move {
            client
                .get_invite(authed(pb::GetInviteRequest { id }, &alice))
                .await
                .unwrap()
                .into_inner()
        }
    };

    let (created, _) = create(&mut client, request, &alice).await;
    assert_eq!(created.expires_at.unwrap().nanos, 123_456_000);
    assert_eq!(created.starts_at.unwrap().nanos, 987_654_000);
    assert_eq!(get(created.id.clone()).await, created, "create, then get");

    let update = pb::UpdateInviteRequest {
        invite: Some(pb::Invite {
            expires_at: Some(with_nanos(chrono::Duration::days(2), 555_555_555)),
            ..created.clone()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["expires_at".into()],
        }),
    };
    let updated = client
        .update_invite(authed(update, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.expires_at.unwrap().nanos, 555_555_000);
    assert_eq!(get(updated.id.clone()).await, updated, "update, then get");

    let resend = pb::ResendInviteRequest {
        id: created.id.clone(),
        notify: false,
        ttl: Some(prost_types::Duration {
            seconds: 3 * 86_400,
            nanos: 999,
        }),
    };
    let resent = client
        .resend_invite(authed(resend, &alice))
        .await
        .unwrap()
        .into_inner()
        .invite
        .unwrap();
    assert_eq!(resent.expires_at.unwrap().nanos % 1000, 0);
    assert_eq!(get(resent.id.clone()).await, resent, "resend, then get");

    let request = pb::BatchCreateInvitesRequest {
        expires_at: Some(with_nanos(chrono::Duration::days(1), 1)),
        ..batch("grp-1", vec!["ann@example.org".into()], None)
    };
    let batched = client
        .batch_create_invites(authed(request, &alice))
        .await
        .unwrap()
        .into_inner()
        .created
        .remove(0)
        .invite
        .unwrap();
    assert_eq!(batched.expires_at.unwrap().nanos, 0);
    assert_eq!(get(batched.id.clone()).await, batched, "batch, then get");
    app.stop().await;
}
