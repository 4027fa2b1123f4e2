//! BatchCreateInvites' rules: one target, up to 1,000 addresses, partial
//! success. Which addresses become invites is decided here; the store has the
//! last word on "already invited".

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    Caller, DraftInvitee, Email, FieldViolation, Invite, InviteDraft, InviteError, Invitee, Policy,
};

pub const MAX_EMAILS: usize = 1000;

#[derive(Debug, Clone, Default)]
pub struct BatchDraft {
    pub target_type: String,
    pub target_id: String,
    pub inviter_id: String,
    pub emails: Vec<String>,
    pub role: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub metadata: Option<serde_json::Value>,
    /// Fields the transport could not read, reported with the rest.
    pub unreadable: super::Violations,
}

/// Why an address got no invite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    InvalidEmail,
    DuplicateInRequest,
    AlreadyInvited,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidEmail => "INVALID_EMAIL",
            Self::DuplicateInRequest => "DUPLICATE_IN_REQUEST",
            Self::AlreadyInvited => "ALREADY_INVITED",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        [
            Self::InvalidEmail,
            Self::DuplicateInRequest,
            Self::AlreadyInvited,
        ]
        .into_iter()
        .find(|r| r.as_str() == stored)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Where the address stood in the request, to answer in its order.
    pub index: usize,
    /// As given.
    pub email: String,
    pub reason: Refusal,
}

impl Refused {
    /// An address a pending invite already holds, named as the request's
    /// address once trimmed.
    pub fn already_invited(index: usize, invite: &Invite) -> Self {
        let email = match &invite.invitee {
            Invitee::Email(email) => email.as_str().to_owned(),
            _ => String::new(),
        };
        Self {
            index,
            email,
            reason: Refusal::AlreadyInvited,
        }
    }
}

#[derive(Debug)]
pub struct BatchPlan {
    /// The invites to write, each with its address's place in the request.
    pub invites: Vec<(usize, Invite)>,
    pub refused: Vec<Refused>,
}

impl BatchPlan {
    /// The plan less the invites whose invitee a pending invite already
    /// holds (`invited`: their [`Invitee::key`]s): each is refused as
    /// ALREADY_INVITED, in request order among the other refusals, as the
    /// unique index refuses it when a real call writes the plan. What a dry
    /// run answers, having read where a real call writes.
    pub fn without_invited(self, invited: &HashSet<String>) -> BatchPlan {
        let (invites, held): (Vec<_>, Vec<_>) =
            self.invites.into_iter().partition(|(_, invite)| {
                invite
                    .invitee
                    .key()
                    .is_none_or(|key| !invited.contains(&key))
            });
        let mut refused = self.refused;
        refused.extend(
            held.iter()
                .map(|(index, invite)| Refused::already_invited(*index, invite)),
        );
        refused.sort_by_key(|r| r.index);
        BatchPlan { invites, refused }
    }
}

/// Checks what the invites share once (a bad target or expiry refuses the
/// whole call), then each address: invalid, or repeated in the request
/// (case-insensitively), or an invite.
pub fn plan_batch(
    draft: BatchDraft,
    caller: &Caller,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<BatchPlan, InviteError> {
    if draft.emails.is_empty() {
        return Err(InviteError::invalid(
            "emails",
            "must list at least one address",
        ));
    }
    if draft.emails.len() > MAX_EMAILS {
        return Err(InviteError::invalid(
            "emails",
            format!(
                "must list at most {MAX_EMAILS} addresses, not {}",
                draft.emails.len()
            ),
        ));
    }
    let shared = |invitee| InviteDraft {
        target_type: draft.target_type.clone(),
        target_id: draft.target_id.clone(),
        inviter_id: draft.inviter_id.clone(),
        invitee,
        role: draft.role.clone(),
        expires_at: draft.expires_at,
        metadata: draft.metadata.clone(),
        unreadable: draft.unreadable.clone(),
        ..Default::default()
    };
    // The shared fields, checked on an invite that has no invitee of its own;
    // the request names them without the `invite.` prefix.
    Invite::create(shared(DraftInvitee::None), caller, now, policy, Uuid::nil())
        .map_err(strip_invite_prefix)?;

    let mut seen = HashSet::new();
    let mut plan = BatchPlan {
        invites: Vec::new(),
        refused: Vec::new(),
    };
    for (index, raw) in draft.emails.into_iter().enumerate() {
        let refuse = |reason| Refused {
            index,
            email: raw.clone(),
            reason,
        };
        let Ok(email) = Email::parse(&raw) else {
            plan.refused.push(refuse(Refusal::InvalidEmail));
            continue;
        };
        if !seen.insert(email.normalized().to_owned()) {
            plan.refused.push(refuse(Refusal::DuplicateInRequest));
            continue;
        }
        let invitee = DraftInvitee::Email(email.as_str().to_owned());
        // The caller's own address refuses the whole call (SELF_INVITE), as
        // a single create would: the listed reasons are about addresses.
        let invite = Invite::create(shared(invitee), caller, now, policy, Uuid::now_v7())?;
        plan.invites.push((index, invite));
    }
    Ok(plan)
}

fn strip_invite_prefix(err: InviteError) -> InviteError {
    match err {
        InviteError::Invalid(violations) => InviteError::Invalid(
            violations
                .into_iter()
                .map(|v| {
                    let field = v
                        .field
                        .strip_prefix("invite.")
                        .unwrap_or(&v.field)
                        .to_owned();
                    FieldViolation::new(field, v.description)
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::{granted, now, policy, user, with_email};

    fn alice() -> Caller {
        user("alice")
    }

    fn draft(emails: &[&str]) -> BatchDraft {
        BatchDraft {
            target_type: "account_group".into(),
            target_id: "grp-1".into(),
            emails: emails.iter().map(|e| e.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn addresses_are_trimmed_checked_and_deduplicated_in_order() {
        let plan = plan_batch(
            draft(&[
                " ann@example.org ",
                "nope",
                "ANN@example.org",
                "bob@example.org",
            ]),
            &alice(),
            now(),
            &policy(),
        )
        .unwrap();
        let invited: Vec<_> = plan.invites.iter().map(|(i, _)| *i).collect();
        assert_eq!(invited, [0, 3]);
        assert_eq!(
            plan.refused,
            [
                Refused {
                    index: 1,
                    email: "nope".into(),
                    reason: Refusal::InvalidEmail
                },
                Refused {
                    index: 2,
                    email: "ANN@example.org".into(),
                    reason: Refusal::DuplicateInRequest
                },
            ]
        );
        assert_eq!(
            plan.invites[0].1.invitee.key().as_deref(),
            Some("email:ann@example.org")
        );
    }

    #[test]
    fn more_than_a_thousand_addresses_refuse_the_whole_call() {
        let many: Vec<String> = (0..1001).map(|n| format!("u{n}@example.org")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let Err(InviteError::Invalid(v)) = plan_batch(draft(&refs), &alice(), now(), &policy())
        else {
            panic!("expected invalid");
        };
        assert_eq!(v[0].field, "emails");
    }

    #[test]
    fn a_bad_shared_field_refuses_the_whole_call_naming_the_request_field() {
        let bad = BatchDraft {
            target_id: "has space".into(),
            ..draft(&["ann@example.org"])
        };
        let Err(InviteError::Invalid(v)) = plan_batch(bad, &alice(), now(), &policy()) else {
            panic!("expected invalid");
        };
        assert_eq!(v[0].field, "target_id");
    }

    #[test]
    fn a_batch_beyond_the_callers_grants_is_refused_whole() {
        let member_only = granted("alice", &["account_group/grp-1=member"]);
        let owners = BatchDraft {
            role: "owner".into(),
            ..draft(&["ann@example.org"])
        };
        let result = plan_batch(owners, &member_only, now(), &policy());
        assert_eq!(result.unwrap_err(), InviteError::NotGranted);
        let plan = plan_batch(draft(&["ann@example.org"]), &member_only, now(), &policy());
        assert_eq!(plan.unwrap().invites.len(), 1);
    }

    #[test]
    fn addresses_already_invited_are_refused_in_request_order_among_the_others() {
        let plan = plan_batch(
            draft(&[
                "ann@example.org",
                "nope",
                " Bob@example.org ",
                "cy@example.org",
                "ANN@example.org",
            ]),
            &alice(),
            now(),
            &policy(),
        )
        .unwrap();
        let invited = HashSet::from(["email:bob@example.org".to_owned()]);

        let plan = plan.without_invited(&invited);

        let invited: Vec<_> = plan.invites.iter().map(|(i, _)| *i).collect();
        assert_eq!(invited, [0, 3]);
        let refused: Vec<_> = plan
            .refused
            .iter()
            .map(|r| (r.index, r.email.as_str(), r.reason))
            .collect();
        assert_eq!(
            refused,
            [
                (1, "nope", Refusal::InvalidEmail),
                (2, "Bob@example.org", Refusal::AlreadyInvited),
                (4, "ANN@example.org", Refusal::DuplicateInRequest),
            ]
        );
    }

    #[test]
    fn the_callers_own_address_refuses_the_whole_batch() {
        let alice = with_email("alice", "alice@example.org");
        let result = plan_batch(
            draft(&["bob@example.org", "ALICE@example.org"]),
            &alice,
            now(),
            &policy(),
        );
        assert_eq!(result.unwrap_err(), InviteError::SelfInvite);
    }
}
