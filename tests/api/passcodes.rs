//! Passcodes: checked after everything else, counted, locked after 5 misses.

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::pb::{self, InviteStatus};
use tonic::Code;

on_both_databases!(
    five_wrong_passcodes_lock_the_invite_until_it_is_resent,
    a_stranger_holding_the_token_cannot_burn_the_invitees_tries,
);

fn with_passcode(passcode: &str) -> pb::CreateInviteRequest {
    pb::CreateInviteRequest {
        passcode: passcode.into(),
        ..email_invite("org-1", "bob@example.org")
    }
}

fn accept_with(token: &str, passcode: &str) -> pb::AcceptInviteRequest {
    pb::AcceptInviteRequest {
        passcode: passcode.into(),
        ..accept_by_token(token)
    }
}

async fn five_wrong_passcodes_lock_the_invite_until_it_is_resent(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let bob = token("bob", Some("bob@example.org"), false);
    let (invite, link) = create(&mut client, with_passcode("castle-42"), &alice).await;
    assert!(invite.requires_passcode);

    let missing = client
        .accept_invite(authed(accept_by_token(link.clone()), &bob))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::PermissionDenied);
    assert_eq!(reason(&missing), "PASSCODE_REQUIRED");
    for _ in 0..5 {
        let wrong = client
            .accept_invite(authed(accept_with(&link, "guess"), &bob))
            .await
            .unwrap_err();
        assert_eq!(wrong.code(), Code::PermissionDenied);
        assert_eq!(reason(&wrong), "PASSCODE_INVALID");
    }
    let locked = client
        .accept_invite(authed(accept_with(&link, "castle-42"), &bob))
        .await
        .unwrap_err();
    assert_eq!(locked.code(), Code::ResourceExhausted);
    assert_eq!(reason(&locked), "PASSCODE_LOCKED");

    let resend = pb::ResendInviteRequest {
        id: invite.id.clone(),
        ..Default::default()
    };
    let resent = client
        .resend_invite(authed(resend, &alice))
        .await
        .unwrap()
        .into_inner();
    let accepted = client
        .accept_invite(authed(accept_with(&resent.token, "castle-42"), &bob))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.status(), InviteStatus::Accepted);
    // Failed tries change nothing anyone else needs to hear about.
    let keys: Vec<_> = events
        .take(3)
        .await
        .into_iter()
        .map(|r| r.routing_key)
        .collect();
    assert_eq!(keys, ["invite.created", "invite.resent", "invite.accepted"]);
    events
        .assert_no_more(std::time::Duration::from_millis(300))
        .await;
    events.delete_exchange().await;
    app.stop().await;
}

async fn a_stranger_holding_the_token_cannot_burn_the_invitees_tries(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let (_, link) = create(
        &mut client,
        with_passcode("castle-42"),
        &token("alice", None, false),
    )
    .await;
    let mallory = token("mallory", Some("mallory@example.org"), false);

    for _ in 0..6 {
        let refused = client
            .accept_invite(authed(accept_with(&link, "guess"), &mallory))
            .await
            .unwrap_err();
        assert_eq!(reason(&refused), "INVITEE_MISMATCH");
    }

    let bob = token("bob", Some("bob@example.org"), false);
    client
        .accept_invite(authed(accept_with(&link, "castle-42"), &bob))
        .await
        .expect("the invitee still has all their tries");
    app.stop().await;
}
