//! Bounded answers: none over the 4 MiB gRPC clients accept; and the same
//! answer from both databases whatever the client sends.

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::pb;
use prost_types::{Struct, Timestamp};
use uuid::Uuid;

on_both_databases!(
    a_refused_address_holding_a_nul_byte_is_answered_and_replayed_alike,
    client_timestamps_are_cut_to_microseconds_so_a_read_returns_what_the_write_returned,
);

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
