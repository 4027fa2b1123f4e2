//! Revoking, resending, updating, expiring.

use chrono::Duration;

use super::*;
use crate::domain::{
    InviteError,
    fixtures::{now, policy, user, with_email},
};

#[test]
fn resending_moves_the_expiry_and_revives_an_expired_invite() {
    let mut invite = email_invite();
    let later = invite.expires_at + Duration::hours(1);
    assert!(invite.expire(later));
    assert_eq!(invite.status, InviteStatus::Expired);
    invite
        .resend(&user("alice"), Some(Duration::days(2)), &policy(), later)
        .unwrap();
    assert_eq!(invite.status, InviteStatus::Pending);
    assert_eq!(invite.expires_at, later + Duration::days(2));
}

#[test]
fn only_the_inviter_resends_and_not_after_an_answer() {
    let mut invite = email_invite();
    let bob = with_email("bob", "bob@example.org");
    assert_eq!(
        invite.resend(&bob, None, &policy(), now()),
        Err(InviteError::NotInviter)
    );
    assert!(matches!(
        invite.resend(&user("alice"), Some(Duration::days(365)), &policy(), now()),
        Err(InviteError::Invalid(_))
    ));
    invite
        .accept(
            &bob,
            Reference::Id,
            &mut CallerRecord::default(),
            PasscodeProof::NotGiven,
            now(),
        )
        .unwrap();
    assert_eq!(
        invite.resend(&user("alice"), None, &policy(), now()),
        Err(InviteError::NotPending)
    );
}

#[test]
fn expiring_touches_only_pending_invites_past_their_expiry() {
    let mut invite = email_invite();
    assert!(!invite.expire(now()));
    invite.revoke(&user("alice"), "", now()).unwrap();
    assert!(!invite.expire(invite.expires_at + Duration::days(1)));
}

#[test]
fn an_update_needs_the_current_etag() {
    let mut invite = email_invite();
    let patch = Patch {
        role: Some("admin".into()),
        ..Default::default()
    };
    let alice = user("alice");
    assert!(matches!(
        invite.update(&alice, "", patch.clone(), &policy(), now()),
        Err(InviteError::Invalid(_))
    ));
    assert_eq!(
        invite.update(&alice, "0", patch.clone(), &policy(), now()),
        Err(InviteError::EtagMismatch)
    );
    let etag = invite.etag();
    invite
        .update(&alice, &etag, patch.clone(), &policy(), now())
        .unwrap();
    assert_eq!(invite.role.as_str(), "admin");
    assert_ne!(invite.etag(), etag);
    assert_eq!(
        invite.update(&alice, &etag, patch, &policy(), now()),
        Err(InviteError::EtagMismatch)
    );
}

#[test]
fn an_update_checks_every_changed_field() {
    let mut invite = open_link(5);
    invite
        .accept(
            &user("u1"),
            Reference::Token,
            &mut CallerRecord::default(),
            PasscodeProof::NotGiven,
            now(),
        )
        .unwrap();
    let patch = Patch {
        role: Some("Not A Role".into()),
        expires_at: Some(now() - Duration::hours(1)),
        max_uses: Some(Some(1)),
        ..Default::default()
    };
    let etag = invite.etag();
    let Err(InviteError::Invalid(v)) =
        invite.update(&user("alice"), &etag, patch, &policy(), now())
    else {
        panic!("expected invalid fields");
    };
    let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        ["invite.role", "invite.expires_at", "invite.max_uses"]
    );
}

#[test]
fn an_update_changes_the_window_uses_and_metadata() {
    let mut invite = open_link(5);
    let etag = invite.etag();
    let patch = Patch {
        starts_at: Some(Some(now() + Duration::hours(1))),
        expires_at: Some(now() + Duration::days(3)),
        max_uses: Some(Some(0)),
        metadata: Some(Some(serde_json::json!({"channel": "lobby"}))),
        ..Default::default()
    };
    invite
        .update(&user("alice"), &etag, patch, &policy(), now())
        .unwrap();
    assert_eq!(invite.starts_at, Some(now() + Duration::hours(1)));
    assert_eq!(invite.expires_at, now() + Duration::days(3));
    assert_eq!(invite.max_uses, 0);
    assert_eq!(
        invite.metadata,
        Some(serde_json::json!({"channel": "lobby"}))
    );
}

#[test]
fn only_pending_invites_are_updated() {
    let mut invite = email_invite();
    invite.revoke(&user("alice"), "", now()).unwrap();
    let etag = invite.etag();
    let patch = Patch {
        role: Some("admin".into()),
        ..Default::default()
    };
    assert_eq!(
        invite.update(&user("alice"), &etag, patch, &policy(), now()),
        Err(InviteError::NotPending)
    );
}

#[test]
fn a_stranger_revoking_learns_nothing_from_the_reason_check() {
    let mut invite = email_invite();
    let long = "x".repeat(513);
    assert_eq!(
        invite.revoke(&user("mallory"), &long, now()),
        Err(InviteError::NotFound)
    );
    assert!(matches!(
        invite.revoke(&user("alice"), "a\0b", now()),
        Err(InviteError::Invalid(_))
    ));
}
