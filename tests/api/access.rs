//! Who may do what, and the errors that say so.

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::pb;
use tonic::{Code, Request};

on_both_databases!(
    a_call_without_a_token_is_unauthenticated,
    another_users_invite_is_not_found,
    accepting_as_someone_other_than_the_invitee_is_permission_denied,
    bad_input_is_invalid_argument_naming_every_field,
    only_an_admin_creates_on_behalf_of_another_user,
    an_admin_acts_on_any_invite_and_the_invitee_may_not_manage_it,
);

async fn a_call_without_a_token_is_unauthenticated(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;

    let missing = client
        .create_invite(Request::new(email_invite("org-1", "bob@example.org")))
        .await
        .unwrap_err();
    let forged = client
        .create_invite(authed(
            email_invite("org-1", "bob@example.org"),
            "not.a.jwt",
        ))
        .await
        .unwrap_err();

    assert_eq!(missing.code(), Code::Unauthenticated);
    assert_eq!(reason(&missing), "MISSING_TOKEN");
    assert_eq!(forged.code(), Code::Unauthenticated);
    assert_eq!(reason(&forged), "INVALID_TOKEN");
    app.stop().await;
}

async fn another_users_invite_is_not_found(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let created = client
        .create_invite(authed(
            email_invite("org-1", "bob@example.org"),
            &token("alice", None, false),
        ))
        .await
        .unwrap()
        .into_inner();
    let id = created.invite.unwrap().id;
    let mallory = token("mallory", Some("mallory@example.org"), false);

    let get = client
        .get_invite(authed(pb::GetInviteRequest { id: id.clone() }, &mallory))
        .await
        .unwrap_err();
    let revoke = client
        .revoke_invite(authed(
            pb::RevokeInviteRequest {
                id: id.clone(),
                reason: String::new(),
            },
            &mallory,
        ))
        .await
        .unwrap_err();
    let delete = client
        .delete_invite(authed(pb::DeleteInviteRequest { id: id.clone() }, &mallory))
        .await
        .unwrap_err();
    let unknown = client
        .get_invite(authed(
            pb::GetInviteRequest {
                id: uuid::Uuid::now_v7().to_string(),
            },
            &mallory,
        ))
        .await
        .unwrap_err();

    for status in [&get, &revoke, &delete] {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(
            status.message(),
            unknown.message(),
            "indistinguishable from a missing invite"
        );
    }
    let admin = token("svc", None, true);
    let seen = client
        .get_invite(authed(pb::GetInviteRequest { id }, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.inviter_id, "alice");
    app.stop().await;
}

async fn accepting_as_someone_other_than_the_invitee_is_permission_denied(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let created = client
        .create_invite(authed(
            email_invite("org-1", "bob@example.org"),
            &token("alice", None, false),
        ))
        .await
        .unwrap()
        .into_inner();
    let by_token = || accept_by_token(created.token.clone());

    let stranger = client
        .accept_invite(authed(
            by_token(),
            &token("mallory", Some("mallory@example.org"), false),
        ))
        .await
        .unwrap_err();
    // The right address, but not verified: the token minted without --email
    // carries none, so the caller is just "bob" by id.
    let unverified = client
        .accept_invite(authed(by_token(), &token("bob", None, false)))
        .await
        .unwrap_err();

    for status in [&stranger, &unverified] {
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(reason(status), "INVITEE_MISMATCH");
    }
    app.stop().await;
}

async fn bad_input_is_invalid_argument_naming_every_field(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let request = pb::CreateInviteRequest {
        invite: Some(pb::Invite {
            target_type: "Organization".into(),
            target_id: "has spaces".into(),
            invitee: Some(pb::invite::Invitee::InviteeEmail("not-an-email".into())),
            max_uses: Some(-1),
            ..Default::default()
        }),
        ..Default::default()
    };

    let refused = client
        .create_invite(authed(request, &alice))
        .await
        .unwrap_err();

    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        bad_fields(&refused),
        [
            "invite.target_type",
            "invite.target_id",
            "invite.invitee_email",
            "invite.max_uses"
        ]
    );
    let no_invite = client
        .create_invite(authed(pb::CreateInviteRequest::default(), &alice))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&no_invite), ["invite"]);
    let bad_id = client
        .get_invite(authed(pb::GetInviteRequest { id: "42".into() }, &alice))
        .await
        .unwrap_err();
    assert_eq!(bad_id.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&bad_id), ["id"]);
    app.stop().await;
}

async fn only_an_admin_creates_on_behalf_of_another_user(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let on_behalf = || {
        let mut request = email_invite("org-1", "bob@example.org");
        request.invite.as_mut().unwrap().inviter_id = "carol".into();
        request
    };

    let refused = client
        .create_invite(authed(on_behalf(), &token("alice", None, false)))
        .await
        .unwrap_err();
    let made = client
        .create_invite(authed(on_behalf(), &token("svc", None, true)))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(made.invite.unwrap().inviter_id, "carol");
    app.stop().await;
}

async fn an_admin_acts_on_any_invite_and_the_invitee_may_not_manage_it(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let (invite, _) = create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &token("alice", None, false),
    )
    .await;
    let bob = token("bob", Some("bob@example.org"), false);
    let admin = token("svc-admin", None, true);

    let by_invitee = client
        .revoke_invite(authed(
            pb::RevokeInviteRequest {
                id: invite.id.clone(),
                reason: String::new(),
            },
            &bob,
        ))
        .await
        .unwrap_err();
    let resent = client
        .resend_invite(authed(
            pb::ResendInviteRequest {
                id: invite.id.clone(),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let revoked = client
        .revoke_invite(authed(
            pb::RevokeInviteRequest {
                id: invite.id.clone(),
                reason: "policy".into(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(
        by_invitee.code(),
        Code::PermissionDenied,
        "the invitee sees it but may not revoke it"
    );
    assert_eq!(reason(&by_invitee), "NOT_INVITER");
    assert!(!resent.token.is_empty());
    assert_eq!(revoked.revoked_by, "svc-admin");
    let received = events.take(3).await;
    let actors: Vec<_> = received
        .iter()
        .map(|r| (r.routing_key.as_str(), r.event.actor_id.as_str()))
        .collect();
    assert_eq!(
        actors,
        [
            ("invite.created", "alice"),
            ("invite.resent", "svc-admin"),
            ("invite.revoked", "svc-admin")
        ]
    );
    events.delete_exchange().await;
    app.stop().await;
}
