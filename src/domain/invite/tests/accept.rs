//! Accepting, rejecting, visibility and passcodes.

use chrono::Duration;

use super::*;
use crate::domain::{
    Id, InviteError,
    fixtures::{admin, now, user, with_email},
};

#[test]
fn the_invitee_accepts_with_their_verified_email_in_any_case() {
    let mut invite = email_invite();
    let bob = with_email("bob", "BOB@example.ORG");
    let later = now() + Duration::hours(1);
    assert_eq!(
        invite.accept(
            &bob,
            Reference::Token,
            &mut CallerRecord::default(),
            PasscodeProof::NotGiven,
            later
        ),
        Ok(Acceptance::New)
    );
    assert_eq!(invite.status, InviteStatus::Accepted);
    assert_eq!(invite.accepted_by.as_ref().map(Id::as_str), Some("bob"));
    assert_eq!(invite.accepted_at, Some(later));
    assert_eq!(invite.version, 2);
}

#[test]
fn accepting_again_by_the_same_user_changes_nothing() {
    let mut invite = email_invite();
    let bob = with_email("bob", "bob@example.org");
    let mut record = CallerRecord::default();
    invite
        .accept(
            &bob,
            Reference::Id,
            &mut record,
            PasscodeProof::NotGiven,
            now(),
        )
        .unwrap();
    assert_eq!(record.accepted_at, Some(now()));
    let before = invite.clone();
    assert_eq!(
        invite.accept(
            &bob,
            Reference::Id,
            &mut record,
            PasscodeProof::NotGiven,
            now()
        ),
        Ok(Acceptance::Repeated)
    );
    assert_eq!(invite, before);
}

#[test]
fn someone_else_holding_the_token_is_told_they_are_not_the_invitee() {
    let mut invite = email_invite();
    let mallory = with_email("mallory", "mallory@example.org");
    let result = invite.accept(
        &mallory,
        Reference::Token,
        &mut CallerRecord::default(),
        PasscodeProof::NotGiven,
        now(),
    );
    assert_eq!(result, Err(InviteError::InviteeMismatch));
}

#[test]
fn a_stranger_naming_the_invite_by_id_is_told_it_does_not_exist() {
    let mut invite = email_invite();
    let result = invite.accept(
        &user("mallory"),
        Reference::Id,
        &mut CallerRecord::default(),
        PasscodeProof::NotGiven,
        now(),
    );
    assert_eq!(result, Err(InviteError::NotFound));
}

#[test]
fn the_inviter_cannot_accept_their_own_email_invite() {
    let mut invite = email_invite();
    let result = invite.accept(
        &user("alice"),
        Reference::Id,
        &mut CallerRecord::default(),
        PasscodeProof::NotGiven,
        now(),
    );
    assert_eq!(result, Err(InviteError::InviteeMismatch));
}

#[test]
fn an_unverified_email_does_not_identify_the_invitee() {
    let mut invite = email_invite();
    // `user` carries no verified email, as a token with email_verified false.
    let result = invite.accept(
        &user("bob"),
        Reference::Token,
        &mut CallerRecord::default(),
        PasscodeProof::NotGiven,
        now(),
    );
    assert_eq!(result, Err(InviteError::InviteeMismatch));
}

#[test]
fn the_invitee_is_checked_before_the_invite_state() {
    let mut invite = email_invite();
    invite.revoke(&user("alice"), "", now()).unwrap();
    let result = invite.accept(
        &user("mallory"),
        Reference::Token,
        &mut CallerRecord::default(),
        PasscodeProof::NotGiven,
        now(),
    );
    assert_eq!(result, Err(InviteError::InviteeMismatch));
}

#[test]
fn accepting_a_revoked_invite_fails_as_not_pending() {
    let mut invite = email_invite();
    invite
        .revoke(&user("alice"), "sent by mistake", now())
        .unwrap();
    let bob = with_email("bob", "bob@example.org");
    let result = invite.accept(
        &bob,
        Reference::Token,
        &mut CallerRecord::default(),
        PasscodeProof::NotGiven,
        now(),
    );
    assert_eq!(result, Err(InviteError::NotPending));
    assert_eq!(invite.revoke_reason.as_deref(), Some("sent by mistake"));
}

#[test]
fn accepting_after_expiry_fails_even_before_the_sweep() {
    let mut invite = email_invite();
    let bob = with_email("bob", "bob@example.org");
    let result = invite.accept(
        &bob,
        Reference::Token,
        &mut CallerRecord::default(),
        PasscodeProof::NotGiven,
        invite.expires_at,
    );
    assert_eq!(result, Err(InviteError::Expired));
    invite.status = InviteStatus::Expired;
    assert_eq!(
        invite.accept(
            &bob,
            Reference::Token,
            &mut CallerRecord::default(),
            PasscodeProof::NotGiven,
            now()
        ),
        Err(InviteError::Expired)
    );
}

#[test]
fn accepting_before_starts_at_fails_as_not_yet_valid() {
    let d = InviteDraft {
        starts_at: Some(now() + Duration::hours(2)),
        ..draft(DraftInvitee::UserId("bob".into()))
    };
    let mut invite = create_as_alice(d).unwrap();
    let result = invite.accept(
        &user("bob"),
        Reference::Id,
        &mut CallerRecord::default(),
        PasscodeProof::NotGiven,
        now() + Duration::hours(1),
    );
    assert_eq!(result, Err(InviteError::NotYetValid));
    let result = invite.accept(
        &user("bob"),
        Reference::Id,
        &mut CallerRecord::default(),
        PasscodeProof::NotGiven,
        now() + Duration::hours(2),
    );
    assert_eq!(result, Ok(Acceptance::New));
}

#[test]
fn a_single_use_open_link_is_used_up_by_its_first_user() {
    let mut link = open_link(1);
    assert_eq!(
        link.accept(
            &user("u1"),
            Reference::Token,
            &mut CallerRecord::default(),
            PasscodeProof::NotGiven,
            now()
        ),
        Ok(Acceptance::New)
    );
    assert_eq!(link.status, InviteStatus::Accepted);
    let second = link.accept(
        &user("u2"),
        Reference::Token,
        &mut CallerRecord::default(),
        PasscodeProof::NotGiven,
        now(),
    );
    assert_eq!(second, Err(InviteError::Exhausted));
}

#[test]
fn a_multi_use_link_stays_pending_until_its_last_use() {
    let mut link = open_link(3);
    for (n, id) in ["u1", "u2", "u3"].into_iter().enumerate() {
        assert_eq!(link.status, InviteStatus::Pending, "before use {n}");
        link.accept(
            &user(id),
            Reference::Token,
            &mut CallerRecord::default(),
            PasscodeProof::NotGiven,
            now(),
        )
        .unwrap();
    }
    assert_eq!(link.status, InviteStatus::Accepted);
    assert_eq!(link.use_count, 3);
}

#[test]
fn an_unlimited_link_never_runs_out() {
    let mut link = open_link(0);
    for n in 0..100 {
        link.accept(
            &user(&format!("u{n}")),
            Reference::Token,
            &mut CallerRecord::default(),
            PasscodeProof::NotGiven,
            now(),
        )
        .unwrap();
    }
    assert_eq!(link.status, InviteStatus::Pending);
    assert_eq!(link.use_count, 100);
}

#[test]
fn an_open_link_restricted_to_domains_admits_only_verified_emails_there() {
    let d = InviteDraft {
        max_uses: Some(0),
        allowed_email_domains: vec!["Example.org".into()],
        ..draft(DraftInvitee::None)
    };
    let mut link = create_as_alice(d).unwrap();
    let outsider = with_email("eve", "eve@elsewhere.org");
    assert_eq!(
        link.accept(
            &outsider,
            Reference::Token,
            &mut CallerRecord::default(),
            PasscodeProof::NotGiven,
            now()
        ),
        Err(InviteError::InviteeMismatch)
    );
    assert_eq!(
        link.accept(
            &user("anon"),
            Reference::Token,
            &mut CallerRecord::default(),
            PasscodeProof::NotGiven,
            now()
        ),
        Err(InviteError::InviteeMismatch)
    );
    let insider = with_email("bob", "bob@EXAMPLE.org");
    assert_eq!(
        link.accept(
            &insider,
            Reference::Token,
            &mut CallerRecord::default(),
            PasscodeProof::NotGiven,
            now()
        ),
        Ok(Acceptance::New)
    );
}

#[test]
fn the_invitee_rejects_a_pending_invite() {
    let mut invite = email_invite();
    let bob = with_email("bob", "bob@example.org");
    invite.reject(&bob, Reference::Id, now()).unwrap();
    assert_eq!(invite.status, InviteStatus::Rejected);
    assert_eq!(invite.rejected_at, Some(now()));
    assert_eq!(
        invite.reject(&bob, Reference::Id, now()),
        Err(InviteError::NotPending)
    );
}

#[test]
fn an_open_link_cannot_be_rejected() {
    let mut link = open_link(1);
    assert_eq!(
        link.reject(&user("u1"), Reference::Token, now()),
        Err(InviteError::OpenLinkNotRejectable)
    );
    assert_eq!(
        link.reject(&user("u1"), Reference::Id, now()),
        Err(InviteError::NotFound)
    );
}

#[test]
fn only_the_inviter_or_an_admin_revokes() {
    let mut invite = email_invite();
    let bob = with_email("bob", "bob@example.org");
    assert_eq!(invite.revoke(&bob, "", now()), Err(InviteError::NotInviter));
    assert_eq!(
        invite.revoke(&user("mallory"), "", now()),
        Err(InviteError::NotFound)
    );
    invite.revoke(&admin(), "", now()).unwrap();
    assert_eq!(
        invite.revoked_by.as_ref().map(Id::as_str),
        Some("svc-admin")
    );
    assert_eq!(
        invite.revoke(&admin(), "", now()),
        Err(InviteError::NotPending)
    );
}

#[test]
fn a_revoke_reason_is_limited() {
    let mut invite = email_invite();
    let long = "x".repeat(513);
    assert!(matches!(
        invite.revoke(&user("alice"), &long, now()),
        Err(InviteError::Invalid(_))
    ));
}

#[test]
fn visibility_follows_who_sent_and_who_received() {
    let invite = email_invite();
    assert!(invite.ensure_visible(&user("alice")).is_ok());
    assert!(
        invite
            .ensure_visible(&with_email("bob", "bob@example.org"))
            .is_ok()
    );
    assert!(invite.ensure_visible(&admin()).is_ok());
    assert_eq!(
        invite.ensure_visible(&user("mallory")),
        Err(InviteError::NotFound)
    );
    assert_eq!(
        open_link(1).ensure_visible(&user("u1")),
        Err(InviteError::NotFound)
    );
}

#[test]
fn sequences_count_from_one_without_gaps() {
    let mut invite = email_invite();
    assert_eq!(invite.next_sequence(), 1);
    assert_eq!(invite.next_sequence(), 2);
}

fn with_passcode() -> Invite {
    let d = InviteDraft {
        passcode_hash: Some(crate::domain::Passcode::parse("4321").unwrap().hash()),
        ..draft(DraftInvitee::UserId("bob".into()))
    };
    create_as_alice(d).unwrap()
}

const WRONG: PasscodeProof = PasscodeProof::Verified { matches: false };
const RIGHT: PasscodeProof = PasscodeProof::Verified { matches: true };

#[test]
fn a_passcode_invite_needs_the_passcode() {
    let mut invite = with_passcode();
    let bob = user("bob");
    let mut record = CallerRecord::default();
    assert!(
        invite
            .check_acceptable(&bob, Reference::Id, &record, now())
            .unwrap()
            .is_some()
    );
    assert_eq!(
        invite.accept(
            &bob,
            Reference::Id,
            &mut record,
            PasscodeProof::NotGiven,
            now()
        ),
        Err(InviteError::PasscodeRequired)
    );
    assert_eq!(
        invite.accept(&bob, Reference::Id, &mut record, WRONG, now()),
        Ok(Acceptance::PasscodeRejected)
    );
    assert_eq!(record.passcode_failures, 1);
    assert_eq!(invite.status, InviteStatus::Pending);
    assert_eq!(
        invite.accept(&bob, Reference::Id, &mut record, RIGHT, now()),
        Ok(Acceptance::New)
    );
}

#[test]
fn five_wrong_passcodes_lock_the_caller_out_even_for_the_right_one() {
    let mut invite = with_passcode();
    let bob = user("bob");
    let mut record = CallerRecord::default();
    for _ in 0..5 {
        assert_eq!(
            invite.accept(&bob, Reference::Id, &mut record, WRONG, now()),
            Ok(Acceptance::PasscodeRejected)
        );
    }
    assert!(record.is_locked_out());
    assert_eq!(
        invite.accept(&bob, Reference::Id, &mut record, RIGHT, now()),
        Err(InviteError::PasscodeLocked)
    );
}

#[test]
fn one_user_locked_out_of_a_link_does_not_lock_the_others() {
    let d = InviteDraft {
        passcode_hash: Some(crate::domain::Passcode::parse("4321").unwrap().hash()),
        max_uses: Some(0),
        ..draft(DraftInvitee::None)
    };
    let mut link = create_as_alice(d).unwrap();
    let mut mallorys = CallerRecord {
        passcode_failures: Invite::MAX_PASSCODE_TRIES,
        ..Default::default()
    };
    let refused = link.accept(
        &user("mallory"),
        Reference::Token,
        &mut mallorys,
        RIGHT,
        now(),
    );
    assert_eq!(refused, Err(InviteError::PasscodeLocked));
    let mut carols = CallerRecord::default();
    let accepted = link.accept(&user("carol"), Reference::Token, &mut carols, RIGHT, now());
    assert_eq!(accepted, Ok(Acceptance::New));
}

#[test]
fn a_stranger_never_reaches_the_passcode_check() {
    let mut invite = with_passcode();
    let mut record = CallerRecord::default();
    let result = invite.accept(
        &user("mallory"),
        Reference::Token,
        &mut record,
        WRONG,
        now(),
    );
    assert_eq!(result, Err(InviteError::InviteeMismatch));
    assert_eq!(record.passcode_failures, 0);
}

#[test]
fn an_open_link_is_accepted_by_token_only() {
    let mut link = open_link(0);
    assert_eq!(
        link.accept(
            &user("u1"),
            Reference::Id,
            &mut CallerRecord::default(),
            PasscodeProof::NotGiven,
            now()
        ),
        Err(InviteError::NotFound)
    );
    let by_inviter = link.accept(
        &user("alice"),
        Reference::Id,
        &mut CallerRecord::default(),
        PasscodeProof::NotGiven,
        now(),
    );
    assert!(matches!(by_inviter, Err(InviteError::Invalid(_))));
    assert_eq!(link.use_count, 0);
}
