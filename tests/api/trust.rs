//! Who may invite, self-invites and what an invite reveals, through gRPC:
//! membership services add a member on `invite.accepted`, so these refusals
//! are what they trust.

use std::time::Duration;

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::{
    domain::Grant,
    grpc::auth::{TokenRequest, mint},
    pb,
};
use tonic::Code;

on_both_databases!(
    a_caller_without_a_grant_for_the_target_and_role_creates_nothing,
    a_batch_beyond_the_callers_grants_is_refused_whole,
    nobody_invites_themselves_or_accepts_their_own_link,
    users_of_a_link_never_see_who_else_used_it,
    the_invitee_never_learns_who_revoked_or_why_nor_reads_the_audit_trail,
    a_resend_without_ttl_never_shortens_the_invite,
    an_inviter_cannot_raise_an_invites_role_past_their_grant,
);

async fn a_caller_without_a_grant_for_the_target_and_role_creates_nothing(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let member_of_org_1 = token_granting("alice", None, false, &["organization/org-1=member"]);
    let as_owner = |target: &str| {
        let mut request = email_invite(target, "bob@example.org");
        request.invite.as_mut().unwrap().role = "owner".into();
        request
    };

    for request in [
        as_owner("org-1"),
        email_invite("org-2", "bob@example.org"),
        open_link("org-1", None),
    ] {
        let refused = client
            .create_invite(authed(request, &member_of_org_1))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert_eq!(reason(&refused), "INVITE_NOT_GRANTED");
    }
    let listed = client
        .list_invites(authed(pb::ListInvitesRequest::default(), &member_of_org_1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_size, 0, "nothing was written");
    events.assert_no_more(Duration::from_millis(300)).await;

    let (granted, _) = create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &member_of_org_1,
    )
    .await;
    assert_eq!(granted.role, "member");
    let created = events.next().await;
    assert_eq!(created.event.invite.unwrap().inviter_id, "alice");
    events.delete_exchange().await;
    app.stop().await;
}

async fn a_batch_beyond_the_callers_grants_is_refused_whole(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let member_of_grp_1 = token_granting(
        "alice",
        Some("alice@example.org"),
        false,
        &["account_group/grp-1=member"],
    );
    let batch = |role: &str| pb::BatchCreateInvitesRequest {
        target_type: "account_group".into(),
        target_id: "grp-1".into(),
        emails: vec![
            "ann@example.org".into(),
            "Alice@Example.org".into(),
            "bob@example.org".into(),
        ],
        role: role.into(),
        ..Default::default()
    };

    let refused = client
        .batch_create_invites(authed(batch("admin"), &member_of_grp_1))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused), "INVITE_NOT_GRANTED");
    let own_address = client
        .batch_create_invites(authed(batch("member"), &member_of_grp_1))
        .await
        .unwrap_err();
    let mut others = batch("member");
    others
        .emails
        .retain(|e| !e.eq_ignore_ascii_case("alice@example.org"));
    let answer = client
        .batch_create_invites(authed(others, &member_of_grp_1))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(own_address.code(), Code::PermissionDenied);
    assert_eq!(reason(&own_address), "SELF_INVITE");
    assert_eq!(answer.created.len(), 2, "ann and bob");
    assert!(answer.invalid.is_empty());
    app.stop().await;
}

async fn nobody_invites_themselves_or_accepts_their_own_link(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", Some("alice@example.org"), false);
    let to_herself = [
        email_invite("org-1", "ALICE@example.org"),
        pb::CreateInviteRequest {
            invite: Some(pb::Invite {
                target_type: "organization".into(),
                target_id: "org-1".into(),
                invitee: Some(pb::invite::Invitee::InviteeUserId("alice".into())),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    for request in to_herself {
        let refused = client
            .create_invite(authed(request, &alice))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert_eq!(reason(&refused), "SELF_INVITE");
    }

    let (_, link) = create(&mut client, open_link("party-1", Some(0)), &alice).await;
    let refused = client
        .accept_invite(authed(accept_by_token(link.clone()), &alice))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused), "SELF_INVITE");
    let admin = token("svc-admin", None, true);
    let accepted = client
        .accept_invite(authed(accept_by_token(link), &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.use_count, 1, "admins are trusted services");
    app.stop().await;
}

async fn users_of_a_link_never_see_who_else_used_it(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let host = token("host", None, false);
    let (_, link) = create(&mut client, open_link("party-1", Some(0)), &host).await;
    let carol = token("carol", None, false);
    let dave = token("dave", None, false);
    let carols = client
        .accept_invite(authed(accept_by_token(link.clone()), &carol))
        .await
        .unwrap()
        .into_inner();
    client
        .accept_invite(authed(accept_by_token(link.clone()), &dave))
        .await
        .unwrap();

    let reader = client.clone();
    let by_token = |who: &str| {
        let mut client = reader.clone();
        let request = authed(
            pb::GetInviteByTokenRequest {
                token: link.clone(),
            },
            &token(who, None, false),
        );
        async move {
            client
                .get_invite_by_token(request)
                .await
                .unwrap()
                .into_inner()
        }
    };
    let seen_by_carol = by_token("carol").await;
    let seen_by_erin = by_token("erin").await;
    let carol_again = client
        .accept_invite(authed(accept_by_token(link.clone()), &carol))
        .await
        .unwrap()
        .into_inner();
    let seen_by_host = by_token("host").await;

    assert_eq!(carols.accepted_by, "carol");
    assert_eq!(
        seen_by_carol.accepted_by, "carol",
        "her own use, not dave's"
    );
    assert_eq!(seen_by_carol.accepted_at, carols.accepted_at);
    assert_eq!(carol_again.accepted_by, "carol");
    assert_eq!(carol_again.accepted_at, carols.accepted_at);
    assert_eq!(seen_by_erin.accepted_by, "");
    assert_eq!(seen_by_erin.accepted_at, None);
    assert_eq!(
        seen_by_host.accepted_by, "dave",
        "the inviter sees the last use"
    );
    assert_eq!(seen_by_host.use_count, 2);
    app.stop().await;
}

async fn the_invitee_never_learns_who_revoked_or_why_nor_reads_the_audit_trail(db: Db) {
    let mut scene = alice_invites_bob(db).await;
    let admin = token("svc-admin", None, true);
    scene
        .client
        .revoke_invite(authed(
            pb::RevokeInviteRequest {
                id: scene.invite.id.clone(),
                reason: "fraud suspected".into(),
            },
            &admin,
        ))
        .await
        .unwrap();
    let reader = scene.client.clone();
    let get = |who: &str| {
        let mut client = reader.clone();
        let request = authed(
            pb::GetInviteRequest {
                id: scene.invite.id.clone(),
            },
            who,
        );
        async move { client.get_invite(request).await.unwrap().into_inner() }
    };
    let seen_by_bob = get(&scene.bob).await;
    let by_token = scene
        .client
        .get_invite_by_token(authed(
            pb::GetInviteByTokenRequest {
                token: scene.link.clone(),
            },
            &scene.bob,
        ))
        .await
        .unwrap()
        .into_inner();
    let history = scene
        .client
        .list_invite_events(authed(
            pb::ListInviteEventsRequest {
                invite_id: scene.invite.id.clone(),
                ..Default::default()
            },
            &scene.bob,
        ))
        .await
        .unwrap_err();
    let seen_by_alice = get(&scene.alice).await;

    for seen in [&seen_by_bob, &by_token] {
        assert_eq!(seen.status(), pb::InviteStatus::Revoked);
        assert_eq!(
            (seen.revoked_by.as_str(), seen.revoke_reason.as_str()),
            ("", "")
        );
        assert!(seen.revoked_at.is_some(), "when is his to know");
    }
    assert_eq!(history.code(), Code::PermissionDenied);
    assert_eq!(reason(&history), "NOT_INVITER");
    assert_eq!(seen_by_alice.revoked_by, "svc-admin");
    assert_eq!(seen_by_alice.revoke_reason, "fraud suspected");
    scene.end().await;
}

async fn a_resend_without_ttl_never_shortens_the_invite(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let mut request = email_invite("org-1", "bob@example.org");
    request.invite.as_mut().unwrap().expires_at = Some(timestamp_in(chrono::Duration::days(30)));
    let (invite, _) = create(&mut client, request, &alice).await;

    let resent = client
        .resend_invite(authed(
            pb::ResendInviteRequest {
                id: invite.id.clone(),
                ..Default::default()
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner()
        .invite
        .unwrap();

    assert_eq!(
        resent.expires_at, invite.expires_at,
        "30 days, not the default 7"
    );
    app.stop().await;
}

/// A token with grants under another claim name, as identity providers that
/// require namespaced custom claims issue them.
fn namespaced_token(sub: &str, claim: &str, grant: &str) -> String {
    let grants = [grant.parse::<Grant>().unwrap()];
    mint(
        SECRET.as_bytes(),
        &TokenRequest {
            sub,
            email: None,
            admin: false,
            ttl: std::time::Duration::from_secs(600),
            issuer: None,
            audience: None,
            grants: &grants,
            grants_claim: claim,
        },
    )
    .unwrap()
}

#[tokio::test]
async fn grants_are_read_from_the_configured_claim() {
    const CLAIM: &str = "https://example.com/invite_grants";
    let mut options = Options::fresh(Db::Sqlite).await;
    options.flags = vec!["--grants-claim".into(), CLAIM.into()];
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let namespaced = namespaced_token("alice", CLAIM, "organization/org-1");
    let default_claim = namespaced_token("alice", "invite_grants", "organization/org-1");

    let made = client
        .create_invite(authed(
            email_invite("org-1", "bob@example.org"),
            &namespaced,
        ))
        .await;
    let refused = client
        .create_invite(authed(
            email_invite("org-1", "carol@example.org"),
            &default_claim,
        ))
        .await
        .unwrap_err();

    assert!(made.is_ok(), "{made:?}");
    assert_eq!(reason(&refused), "INVITE_NOT_GRANTED");
    app.stop().await;
}

#[tokio::test]
async fn the_open_policy_lets_any_caller_invite_but_not_themselves() {
    let mut options = Options::fresh(Db::Sqlite).await;
    options.flags = vec!["--create-policy".into(), "open".into()];
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let no_grants = token_granting("alice", None, false, &[]);

    let made = client
        .create_invite(authed(email_invite("org-1", "bob@example.org"), &no_grants))
        .await;
    let mut to_herself = email_invite("org-1", "x@example.org");
    to_herself.invite.as_mut().unwrap().invitee =
        Some(pb::invite::Invitee::InviteeUserId("alice".into()));
    let refused = client
        .create_invite(authed(to_herself, &no_grants))
        .await
        .unwrap_err();

    assert!(made.is_ok(), "{made:?}");
    assert_eq!(reason(&refused), "SELF_INVITE");
    app.stop().await;
}

#[tokio::test]
async fn callers_past_their_rate_limits_are_told_when_to_retry_and_admins_are_exempt() {
    use tonic_types::StatusExt as _;
    let mut options = Options::fresh(Db::Sqlite).await;
    options.flags = ["--create-rate-limit", "3", "--token-rate-limit", "2"]
        .map(String::from)
        .to_vec();
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let admin = token("svc-admin", None, true);
    let batch = |emails: &[&str]| pb::BatchCreateInvitesRequest {
        target_type: "account_group".into(),
        target_id: "grp-1".into(),
        emails: emails.iter().map(|e| e.to_string()).collect(),
        ..Default::default()
    };

    let too_big = client
        .batch_create_invites(authed(
            batch(&["a@x.org", "b@x.org", "c@x.org", "d@x.org"]),
            &alice,
        ))
        .await
        .unwrap_err();
    client
        .batch_create_invites(authed(batch(&["a@x.org", "b@x.org"]), &alice))
        .await
        .unwrap();
    let (_, link) = create(&mut client, open_link("party-1", Some(0)), &alice).await;
    let limited = client
        .create_invite(authed(open_link("party-2", None), &alice))
        .await
        .unwrap_err();
    for n in 0..5 {
        client
            .create_invite(authed(open_link(&format!("p-{n}"), None), &admin))
            .await
            .expect("admins are trusted services");
    }
    let bob = token("bob", None, false);
    let by_token = || pb::GetInviteByTokenRequest {
        token: link.clone(),
    };
    client
        .get_invite_by_token(authed(by_token(), &bob))
        .await
        .unwrap();
    client
        .accept_invite(authed(accept_by_token(link.clone()), &bob))
        .await
        .unwrap();
    let guessing = client
        .reject_invite(authed(
            pb::RejectInviteRequest {
                invite_ref: Some(pb::reject_invite_request::InviteRef::Token(
                    "guess-guess-guess-guess-guess".into(),
                )),
            },
            &bob,
        ))
        .await
        .unwrap_err();
    let carol = token("carol", None, false);
    let carols = client.get_invite_by_token(authed(by_token(), &carol)).await;

    assert_eq!(
        too_big.code(),
        Code::InvalidArgument,
        "a minute's allowance is 3"
    );
    assert_eq!(bad_fields(&too_big), ["emails"]);
    for refused in [&limited, &guessing] {
        assert_eq!(refused.code(), Code::ResourceExhausted);
        assert_eq!(reason(refused), "RATE_LIMITED");
        let retry = refused.get_error_details().retry_info().cloned();
        let delay = retry
            .and_then(|r| r.retry_delay)
            .expect("RetryInfo with a delay");
        assert!(
            delay > Duration::ZERO && delay <= Duration::from_secs(30),
            "{delay:?}"
        );
    }
    assert!(carols.is_ok(), "limits are per caller: {carols:?}");
    app.stop().await;
}

async fn an_inviter_cannot_raise_an_invites_role_past_their_grant(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let members_only = token_granting("alice", None, false, &["organization/org-1=member"]);
    let (mut invite, _) = create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &members_only,
    )
    .await;
    invite.role = "owner".into();
    let to_owner = pb::UpdateInviteRequest {
        invite: Some(invite.clone()),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["role".into()],
        }),
    };

    let refused = client
        .update_invite(authed(to_owner, &members_only))
        .await
        .unwrap_err();
    let unchanged = client
        .get_invite(authed(
            pb::GetInviteRequest {
                id: invite.id.clone(),
            },
            &members_only,
        ))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused), "INVITE_NOT_GRANTED");
    assert_eq!(unchanged.role, "member");
    app.stop().await;
}
