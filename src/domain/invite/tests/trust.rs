//! Who may invite, self-invites, what an invite reveals, and rules that
//! drifted: each a refusal the membership services downstream rely on.

use chrono::Duration;
use uuid::Uuid;

use super::*;
use crate::domain::{
    InviteError, Phone,
    fixtures::{admin, granted, now, policy, user, with_email},
};

fn create_as(caller: &Caller, draft: InviteDraft) -> Result<Invite, InviteError> {
    Invite::create(draft, caller, now(), &policy(), Uuid::now_v7())
}

fn owner_invite() -> InviteDraft {
    InviteDraft {
        role: "owner".into(),
        ..draft(DraftInvitee::Email("bob@example.org".into()))
    }
}

#[test]
fn a_caller_invites_only_where_its_grants_reach() {
    let members_of_org_1 = granted("alice", &["organization/org-1=member"]);
    assert!(create_as(&members_of_org_1, draft(DraftInvitee::UserId("bob".into()))).is_ok());
    let refused = [
        owner_invite(),
        InviteDraft {
            target_id: "org-2".into(),
            ..draft(DraftInvitee::UserId("bob".into()))
        },
        InviteDraft {
            target_type: "party".into(),
            ..draft(DraftInvitee::UserId("bob".into()))
        },
    ];
    for d in refused {
        let result = create_as(&members_of_org_1, d.clone());
        assert_eq!(result.unwrap_err(), InviteError::NotGranted, "{d:?}");
    }
    let nothing = granted("alice", &[]);
    let result = create_as(&nothing, draft(DraftInvitee::None));
    assert_eq!(result.unwrap_err(), InviteError::NotGranted);
}

#[test]
fn the_open_policy_and_admins_skip_the_grant_check() {
    let nothing = granted("alice", &[]);
    let open = Policy {
        create: CreatePolicy::Open,
        ..policy()
    };
    assert!(Invite::create(owner_invite(), &nothing, now(), &open, Uuid::now_v7()).is_ok());
    assert!(create_as(&admin(), owner_invite()).is_ok());
}

#[test]
fn nobody_but_an_admin_invites_themselves() {
    let alice = Caller {
        verified_phone: Some(Phone::parse("+15550100").unwrap()),
        ..with_email("alice", "Alice@Example.org")
    };
    let open = Policy {
        create: CreatePolicy::Open,
        ..policy()
    };
    for invitee in [
        DraftInvitee::UserId("alice".into()),
        DraftInvitee::Email("ALICE@example.org".into()),
        DraftInvitee::Phone("+15550100".into()),
    ] {
        for policy in [policy(), open.clone()] {
            let d = draft(invitee.clone());
            let result = Invite::create(d, &alice, now(), &policy, Uuid::now_v7());
            assert_eq!(result.unwrap_err(), InviteError::SelfInvite, "{invitee:?}");
        }
    }
    let own_address = draft(DraftInvitee::UserId(admin().user_id.to_string()));
    assert!(create_as(&admin(), own_address).is_ok());
}

#[test]
fn an_unverified_address_of_ones_own_is_not_a_self_invite() {
    // alice's token carries no verified email: she cannot be identified by
    // it, so inviting it is inviting someone else.
    assert!(
        create_as(
            &user("alice"),
            draft(DraftInvitee::Email("alice@x.org".into()))
        )
        .is_ok()
    );
}

#[test]
fn nobody_but_an_admin_accepts_their_own_link() {
    let mut link = open_link(0);
    let result = link.accept(
        &user("alice"),
        Reference::Token,
        &mut CallerRecord::default(),
        PasscodeProof::NotGiven,
        now(),
    );
    assert_eq!(result, Err(InviteError::SelfInvite));
    assert_eq!(link.use_count, 0);
    // An admin inviting on bob's behalf, addressed to bob: bob may not accept.
    let on_behalf = InviteDraft {
        inviter_id: "bob".into(),
        ..draft(DraftInvitee::UserId("bob".into()))
    };
    let mut invite = create_as(&admin(), on_behalf).unwrap();
    let result = invite.accept(
        &user("bob"),
        Reference::Id,
        &mut CallerRecord::default(),
        PasscodeProof::NotGiven,
        now(),
    );
    assert_eq!(result, Err(InviteError::SelfInvite));
}

#[test]
fn a_user_of_a_link_never_sees_who_else_used_it() {
    let mut link = open_link(0);
    let first_use = now();
    let later = now() + Duration::minutes(5);
    for (who, at) in [("carol", first_use), ("dave", later)] {
        link.accept(
            &user(who),
            Reference::Token,
            &mut CallerRecord::default(),
            PasscodeProof::NotGiven,
            at,
        )
        .unwrap();
    }
    let seen_by_carol = link.clone().seen_by(&user("carol"), Some(first_use));
    assert_eq!(
        seen_by_carol.accepted_by.as_ref().map(Id::as_str),
        Some("carol")
    );
    assert_eq!(seen_by_carol.accepted_at, Some(first_use));
    let seen_by_erin = link.clone().seen_by(&user("erin"), None);
    assert_eq!(
        (seen_by_erin.accepted_by, seen_by_erin.accepted_at),
        (None, None)
    );
    let seen_by_alice = link.clone().seen_by(&user("alice"), None);
    assert_eq!(
        seen_by_alice.accepted_by.as_ref().map(Id::as_str),
        Some("dave")
    );
    assert_eq!(link.clone().seen_by(&admin(), None), link);
}

#[test]
fn the_invitee_never_sees_who_revoked_or_why() {
    let mut invite = email_invite();
    invite.revoke(&admin(), "fraud suspected", now()).unwrap();
    let bob = with_email("bob", "bob@example.org");
    let seen = invite.clone().seen_by(&bob, None);
    assert_eq!((seen.revoked_by, seen.revoke_reason), (None, None));
    assert_eq!(
        seen.revoked_at, invite.revoked_at,
        "that it was revoked is theirs to know"
    );
    let seen = invite.clone().seen_by(&user("alice"), None);
    assert_eq!(seen.revoke_reason.as_deref(), Some("fraud suspected"));
}

#[test]
fn updating_an_expired_invite_says_expired_whether_or_not_swept() {
    let mut invite = email_invite();
    let later = invite.expires_at + Duration::minutes(1);
    let patch = || Patch {
        role: Some("admin".into()),
        ..Default::default()
    };
    let etag = invite.etag();
    let unswept = invite
        .clone()
        .update(&user("alice"), &etag, patch(), &policy(), later);
    assert_eq!(unswept, Err(InviteError::Expired));
    assert!(invite.expire(later));
    let etag = invite.etag();
    let swept = invite.update(&user("alice"), &etag, patch(), &policy(), later);
    assert_eq!(swept, Err(InviteError::Expired));
}

#[test]
fn a_resend_without_ttl_never_moves_expiry_earlier() {
    let d = InviteDraft {
        expires_at: Some(now() + Duration::days(30)),
        ..draft(DraftInvitee::UserId("bob".into()))
    };
    let mut invite = create_as(&user("alice"), d).unwrap();
    invite
        .resend(&user("alice"), None, &policy(), now())
        .unwrap();
    assert_eq!(invite.expires_at, now() + Duration::days(30));
    // Asked for, a ttl sets the expiry exactly, earlier included.
    invite
        .resend(&user("alice"), Some(Duration::days(1)), &policy(), now())
        .unwrap();
    assert_eq!(invite.expires_at, now() + Duration::days(1));
}

#[test]
fn an_update_or_resend_never_hands_out_a_role_no_grant_covers() {
    let members = granted("alice", &["organization/org-1=member"]);
    let mut invite = create_as(&members, draft(DraftInvitee::UserId("bob".into()))).unwrap();
    let to_owner = Patch {
        role: Some("owner".into()),
        ..Default::default()
    };
    let etag = invite.etag();
    let before = invite.clone();
    let refused = invite.update(&members, &etag, to_owner.clone(), &policy(), now());
    assert_eq!(refused, Err(InviteError::NotGranted));
    assert_eq!(invite, before, "nothing changed");
    assert!(
        invite
            .update(&admin(), &etag, to_owner, &policy(), now())
            .is_ok()
    );

    // A grant taken away since: the inviter can no longer revive the invite.
    let mut invite = create_as(&members, draft(DraftInvitee::UserId("carol".into()))).unwrap();
    let demoted = granted("alice", &[]);
    let refused = invite.resend(&demoted, None, &policy(), now());
    assert_eq!(refused, Err(InviteError::NotGranted));
    assert!(invite.resend(&members, None, &policy(), now()).is_ok());
}
