//! Unit tests of the invite rules: shared drafts, then one file per concern.

mod accept;
mod changes;
mod create;
mod trust;

use uuid::Uuid;

use super::*;
use crate::domain::{
    Id, InviteError,
    fixtures::{now, policy, user},
};

/// What alice, an ordinary user, gets for a draft.
pub(super) fn create_as_alice(draft: InviteDraft) -> Result<Invite, InviteError> {
    Invite::create(draft, &user("alice"), now(), &policy(), Uuid::now_v7())
}

pub(super) fn draft(invitee: DraftInvitee) -> InviteDraft {
    InviteDraft {
        target_type: "organization".into(),
        target_id: "org-1".into(),
        invitee,
        ..Default::default()
    }
}

pub(super) fn email_invite() -> Invite {
    let d = draft(DraftInvitee::Email("Bob@Example.org".into()));
    create_as_alice(d).unwrap()
}

pub(super) fn open_link(max_uses: i32) -> Invite {
    let d = InviteDraft {
        max_uses: Some(max_uses),
        ..draft(DraftInvitee::None)
    };
    create_as_alice(d).unwrap()
}

pub(super) fn violations(result: Result<Invite, InviteError>) -> Vec<String> {
    match result {
        Err(InviteError::Invalid(v)) => v.into_iter().map(|v| v.field).collect(),
        other => panic!("expected invalid fields, got {other:?}"),
    }
}
