//! Creating an invite: defaults and every refusal.

use chrono::Duration;
use uuid::Uuid;

use super::*;
use crate::domain::{
    InviteError,
    fixtures::{admin, now, policy, user},
};

#[test]
fn a_new_invite_is_pending_with_defaults() {
    let invite = email_invite();
    assert_eq!(invite.status, InviteStatus::Pending);
    assert_eq!(invite.role.as_str(), "member");
    assert_eq!(invite.inviter_id.as_str(), "alice");
    assert_eq!(invite.expires_at, now() + Duration::days(7));
    assert_eq!(invite.max_uses, 1);
    assert_eq!(
        invite.invitee.key().as_deref(),
        Some("email:bob@example.org")
    );
}

#[test]
fn every_bad_field_of_a_draft_is_reported_at_once() {
    let d = InviteDraft {
        target_type: "Org".into(),
        target_id: "".into(),
        role: "Admin!".into(),
        expires_at: Some(now() - Duration::seconds(1)),
        ..draft(DraftInvitee::Email("not-an-email".into()))
    };
    let fields = violations(create_as_alice(d));
    assert_eq!(
        fields,
        [
            "invite.target_type",
            "invite.target_id",
            "invite.role",
            "invite.invitee_email",
            "invite.expires_at"
        ]
    );
}

#[test]
fn starts_at_must_come_before_expires_at() {
    let d = InviteDraft {
        starts_at: Some(now() + Duration::days(8)),
        ..draft(DraftInvitee::UserId("bob".into()))
    };
    let fields = violations(create_as_alice(d));
    assert_eq!(fields, ["invite.starts_at"]);
}

#[test]
fn only_open_links_take_several_uses_or_allowed_domains() {
    let d = InviteDraft {
        max_uses: Some(5),
        allowed_email_domains: vec!["example.org".into()],
        ..draft(DraftInvitee::UserId("bob".into()))
    };
    let fields = violations(create_as_alice(d));
    assert_eq!(fields, ["invite.allowed_email_domains", "invite.max_uses"]);
}

#[test]
fn oversized_metadata_is_refused() {
    let d = InviteDraft {
        metadata: Some(serde_json::json!({ "blob": "x".repeat(17 * 1024) })),
        ..draft(DraftInvitee::UserId("bob".into()))
    };
    let fields = violations(create_as_alice(d));
    assert_eq!(fields, ["invite.metadata"]);
}

#[test]
fn only_admins_create_on_behalf_of_another_inviter() {
    let d = InviteDraft {
        inviter_id: "carol".into(),
        ..draft(DraftInvitee::UserId("bob".into()))
    };
    let refused = Invite::create(d.clone(), &user("alice"), now(), &policy(), Uuid::now_v7());
    assert_eq!(refused.unwrap_err(), InviteError::NotAdmin);
    let made = Invite::create(d, &admin(), now(), &policy(), Uuid::now_v7()).unwrap();
    assert_eq!(made.inviter_id.as_str(), "carol");
}

#[test]
fn an_expiry_beyond_the_maximum_ttl_is_refused() {
    let d = InviteDraft {
        expires_at: Some(now() + Duration::days(91)),
        ..draft(DraftInvitee::UserId("bob".into()))
    };
    let fields = violations(create_as_alice(d));
    assert_eq!(fields, ["invite.expires_at"]);
}

#[test]
fn metadata_with_a_nul_character_is_refused() {
    let d = InviteDraft {
        metadata: Some(serde_json::json!({ "name": "a\u{0}b" })),
        ..draft(DraftInvitee::UserId("bob".into()))
    };
    let fields = violations(create_as_alice(d));
    assert_eq!(fields, ["invite.metadata"]);
}

#[test]
fn metadata_nested_too_deep_for_clients_to_read_back_is_refused() {
    let nested = |levels: usize| {
        (1..levels).fold(
            serde_json::json!("spawn"),
            |inner, _| serde_json::json!({ "x": inner }),
        )
    };
    let deep = InviteDraft {
        metadata: Some(nested(Invite::MAX_METADATA_DEPTH + 1)),
        ..draft(DraftInvitee::UserId("bob".into()))
    };
    assert_eq!(violations(create_as_alice(deep)), ["invite.metadata"]);
    let deepest = InviteDraft {
        metadata: Some(nested(Invite::MAX_METADATA_DEPTH)),
        ..draft(DraftInvitee::UserId("bob".into()))
    };
    assert!(create_as_alice(deepest).is_ok());
}

#[test]
fn only_a_pending_invite_inside_its_expiry_blocks_a_new_one() {
    let pending = email_invite();
    assert!(pending.blocks_a_new_invite(now()));
    let just_due = now() + Duration::days(7);
    assert!(
        !pending.blocks_a_new_invite(just_due),
        "a create expires it on the spot"
    );
    for status in [
        InviteStatus::Accepted,
        InviteStatus::Rejected,
        InviteStatus::Revoked,
        InviteStatus::Expired,
    ] {
        let settled = Invite {
            status,
            ..email_invite()
        };
        assert!(!settled.blocks_a_new_invite(now()), "{status:?}");
    }
}
