//! ResendInvite and UpdateInvite.

use std::time::Duration;

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::pb::{self, InviteEventType};
use tonic::Code;

on_both_databases!(
    resending_replaces_the_token_moves_the_expiry_and_publishes_invite_resent,
    an_update_with_the_current_etag_publishes_invite_updated,
    an_update_with_a_stale_etag_is_aborted,
    updating_an_invite_that_is_no_longer_pending_fails,
    an_update_applies_every_masked_field_and_refuses_empty_masks_and_invitees,
);

async fn resending_replaces_the_token_moves_the_expiry_and_publishes_invite_resent(db: Db) {
    let Scene {
        app,
        mut events,
        mut client,
        alice,
        invite,
        link: old_token,
        ..
    } = alice_invites_bob(db).await;

    let resend = pb::ResendInviteRequest {
        id: invite.id.clone(),
        notify: true,
        ttl: Some(prost_types::Duration {
            seconds: 3 * 86_400,
            nanos: 0,
        }),
    };
    let resent = client
        .resend_invite(authed(resend, &alice))
        .await
        .unwrap()
        .into_inner();

    let new_invite = resent.invite.unwrap();
    assert_ne!(resent.token, old_token);
    let new_expiry = new_invite.expires_at.unwrap().seconds;
    let expected = (chrono::Utc::now() + chrono::Duration::days(3)).timestamp();
    assert!(
        (new_expiry - expected).abs() <= 5,
        "expiry moved to now + ttl"
    );
    let bob = token("bob", Some("bob@example.org"), false);
    let stale = client
        .accept_invite(authed(accept_by_token(old_token), &bob))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::NotFound, "the old token stops working");
    let received = events.take(2).await;
    assert_events(
        &received,
        &[
            ("invite.created", &new_invite.id, "alice", 1),
            ("invite.resent", &new_invite.id, "alice", 2),
        ],
    );
    assert_eq!(received[1].event.r#type(), InviteEventType::Resent);
    assert_eq!(received[1].event.token, resent.token);
    client
        .accept_invite(authed(accept_by_token(resent.token), &bob))
        .await
        .unwrap();
    events.delete_exchange().await;
    app.stop().await;
}

fn update(invite: pb::Invite, paths: &[&str]) -> pb::UpdateInviteRequest {
    pb::UpdateInviteRequest {
        invite: Some(invite),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    }
}

async fn an_update_with_the_current_etag_publishes_invite_updated(db: Db) {
    let Scene {
        app,
        mut events,
        mut client,
        alice,
        invite,
        ..
    } = alice_invites_bob(db).await;

    let mut changed = invite.clone();
    changed.role = "admin".into();
    changed.expires_at = Some(timestamp_in(chrono::Duration::days(2)));
    changed.metadata = pb::json_to_struct(&serde_json::json!({"channel": "ops"}));
    changed.target_id = "ignored-not-in-mask".into();
    let updated = client
        .update_invite(authed(
            update(changed, &["role", "expires_at", "metadata"]),
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(updated.role, "admin");
    assert_eq!(updated.target_id, "org-1");
    assert_ne!(updated.etag, invite.etag);
    assert_eq!(
        updated.metadata,
        pb::json_to_struct(&serde_json::json!({"channel": "ops"}))
    );
    let received = events.take(2).await;
    assert_events(
        &received,
        &[
            ("invite.created", &invite.id, "alice", 1),
            ("invite.updated", &invite.id, "alice", 2),
        ],
    );
    assert_eq!(received[1].event.invite.as_ref(), Some(&updated));
    let got = client
        .get_invite(authed(pb::GetInviteRequest { id: invite.id }, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.etag, updated.etag,
        "every response carries the current etag"
    );
    events.assert_no_more(Duration::from_millis(300)).await;
    events.delete_exchange().await;
    app.stop().await;
}

async fn an_update_with_a_stale_etag_is_aborted(db: Db) {
    let Scene {
        app,
        mut client,
        alice,
        invite,
        ..
    } = alice_invites_bob(db).await;
    let mut first = invite.clone();
    first.role = "admin".into();
    client
        .update_invite(authed(update(first, &["role"]), &alice))
        .await
        .unwrap();

    let mut offline_edit = invite.clone();
    offline_edit.role = "viewer".into();
    let stale = client
        .update_invite(authed(update(offline_edit, &["role"]), &alice))
        .await
        .unwrap_err();
    let unknown_path = client
        .update_invite(authed(update(invite.clone(), &["target_id"]), &alice))
        .await
        .unwrap_err();

    assert_eq!(stale.code(), Code::Aborted);
    assert_eq!(reason(&stale), "ETAG_MISMATCH");
    assert_eq!(unknown_path.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&unknown_path), ["update_mask"]);
    app.stop().await;
}

async fn updating_an_invite_that_is_no_longer_pending_fails(db: Db) {
    let Scene {
        app,
        mut client,
        alice,
        invite,
        ..
    } = alice_invites_bob(db).await;
    let revoked = client
        .revoke_invite(authed(
            pb::RevokeInviteRequest {
                id: invite.id.clone(),
                reason: String::new(),
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();

    let mut changed = revoked.clone();
    changed.role = "admin".into();
    let refused = client
        .update_invite(authed(update(changed, &["role"]), &alice))
        .await
        .unwrap_err();

    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "INVITE_NOT_PENDING");
    app.stop().await;
}

async fn an_update_applies_every_masked_field_and_refuses_empty_masks_and_invitees(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let mut request = open_link("party-1", Some(5));
    request.invite.as_mut().unwrap().starts_at = Some(timestamp_in(chrono::Duration::hours(1)));
    let (link, _) = create(&mut client, request, &alice).await;
    let mut changed = link.clone();
    changed.role = "host".into();
    changed.expires_at = Some(timestamp_in(chrono::Duration::days(3)));
    changed.starts_at = None;
    changed.max_uses = Some(9);
    changed.metadata = pb::json_to_struct(&serde_json::json!({"table": 4}));
    let every_field = ["role", "expires_at", "starts_at", "max_uses", "metadata"];

    let updated = client
        .update_invite(authed(update(changed.clone(), &every_field), &alice))
        .await
        .unwrap()
        .into_inner();
    let empty_mask = client
        .update_invite(authed(update(updated.clone(), &[]), &alice))
        .await
        .unwrap_err();
    let mut readdressed = updated.clone();
    readdressed.invitee = Some(pb::invite::Invitee::InviteeEmail("eve@example.org".into()));
    let invitee = client
        .update_invite(authed(update(readdressed, &["invitee_email"]), &alice))
        .await
        .unwrap_err();

    let micros =
        |t: &Option<prost_types::Timestamp>| t.as_ref().map(|t| (t.seconds, t.nanos / 1000));
    assert_eq!(updated.role, "host");
    assert_eq!(micros(&updated.expires_at), micros(&changed.expires_at));
    assert_eq!(updated.starts_at, None, "in the mask but unset: cleared");
    assert_eq!(updated.max_uses, Some(9));
    assert_eq!(updated.metadata, changed.metadata);
    for refused in [&empty_mask, &invitee] {
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(bad_fields(refused), ["update_mask"]);
    }
    app.stop().await;
}
