//! A new invite: a create request as received, checked against every rule at
//! once.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Invite, InviteStatus, Invitee, Policy, describe};
use crate::domain::{
    Caller, InviteError, PasscodeHash,
    error::Violations,
    values::{Email, EmailDomain, Id, Identifier, Phone},
};

/// A create request as the transport received it, not yet checked.
#[derive(Debug, Clone, Default)]
pub struct InviteDraft {
    pub target_type: String,
    pub target_id: String,
    pub inviter_id: String,
    pub invitee: DraftInvitee,
    pub allowed_email_domains: Vec<String>,
    pub role: String,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i32>,
    pub metadata: Option<serde_json::Value>,
    /// Already checked and hashed: hashing is slow, so the caller does it.
    pub passcode_hash: Option<PasscodeHash>,
    /// Fields the transport could not read (a malformed timestamp): refused
    /// together with whatever else is wrong.
    pub unreadable: Violations,
}

#[derive(Debug, Clone, Default)]
pub enum DraftInvitee {
    #[default]
    None,
    Email(String),
    Phone(String),
    UserId(String),
}

impl Invite {
    /// Checks a draft against every rule at once and builds the pending
    /// invite, if the caller may create it.
    pub fn create(
        draft: InviteDraft,
        caller: &Caller,
        now: DateTime<Utc>,
        policy: &Policy,
        id: Uuid,
    ) -> Result<Invite, InviteError> {
        let mut bad = draft.unreadable.clone();
        let target_type = bad.check("invite.target_type", Identifier::parse(&draft.target_type));
        let target_id = bad.check("invite.target_id", Id::parse(&draft.target_id));
        let inviter_id = inviter(&draft, caller, &mut bad);
        let role = role(&draft, &mut bad);
        let invitee = invitee(&draft, &mut bad);
        let max_uses = max_uses(draft.max_uses, invitee.as_ref(), &mut bad);
        let expires_at = draft.expires_at.unwrap_or(now + policy.default_ttl);
        check_window(draft.starts_at, expires_at, now, policy, &mut bad);
        check_metadata(draft.metadata.as_ref(), &mut bad);
        // Every `None` below recorded a violation above.
        let invite = (|| {
            Some(Invite {
                id,
                target_type: target_type?,
                target_id: target_id?,
                inviter_id: inviter_id?,
                role: role?,
                invitee: invitee?,
                status: InviteStatus::Pending,
                starts_at: draft.starts_at,
                expires_at,
                max_uses: max_uses?,
                use_count: 0,
                metadata: draft.metadata,
                passcode_hash: draft.passcode_hash,
                accepted_by: None,
                accepted_at: None,
                rejected_at: None,
                revoked_by: None,
                revoked_at: None,
                revoke_reason: None,
                created_at: now,
                updated_at: now,
                version: 1,
                last_sequence: 0,
            })
        })();
        bad.into_result()?;
        let invite = invite.ok_or_else(|| InviteError::invalid("invite", "is incomplete"))?;
        invite.ensure_creatable_by(caller, policy.create)?;
        Ok(invite)
    }

    /// Whether this invite stands in the way of a new one for the same
    /// target and invitee: pending and not past its expiry. One past it is
    /// expired by the create that meets it ([`Invite::expire`]), so it
    /// refuses nobody. The unique index settles this when a create writes;
    /// a dry run, which writes nothing, asks here instead.
    pub fn blocks_a_new_invite(&self, now: DateTime<Utc>) -> bool {
        self.status == InviteStatus::Pending && now < self.expires_at
    }
}

/// The inviter: the caller, unless an admin names another user.
fn inviter(draft: &InviteDraft, caller: &Caller, bad: &mut Violations) -> Option<Id> {
    if draft.inviter_id.is_empty() {
        Some(caller.user_id.clone())
    } else {
        bad.check("invite.inviter_id", Id::parse(&draft.inviter_id))
    }
}

fn role(draft: &InviteDraft, bad: &mut Violations) -> Option<Identifier> {
    if draft.role.is_empty() {
        Some(Identifier::parse(Invite::DEFAULT_ROLE).expect("the default role is valid"))
    } else {
        bad.check("invite.role", Identifier::parse(&draft.role))
    }
}

/// The invitee, or an open link with its allowed domains.
fn invitee(draft: &InviteDraft, bad: &mut Violations) -> Option<Invitee> {
    let addressed = match &draft.invitee {
        DraftInvitee::Email(raw) => bad
            .check("invite.invitee_email", Email::parse(raw))
            .map(Invitee::Email),
        DraftInvitee::Phone(raw) => bad
            .check("invite.invitee_phone", Phone::parse(raw))
            .map(Invitee::Phone),
        DraftInvitee::UserId(raw) => bad
            .check("invite.invitee_user_id", Id::parse(raw))
            .map(Invitee::User),
        DraftInvitee::None => {
            return Some(Invitee::OpenLink {
                allowed_domains: parse_domains(&draft.allowed_email_domains, bad),
            });
        }
    };
    if !draft.allowed_email_domains.is_empty() {
        bad.add(
            "invite.allowed_email_domains",
            "applies to open links only (an invite without an invitee)",
        );
    }
    addressed
}

/// Unset is one use; more than one (or 0, unlimited) only for open links.
fn max_uses(
    requested: Option<i32>,
    invitee: Option<&Invitee>,
    bad: &mut Violations,
) -> Option<u32> {
    const FIELD: &str = "invite.max_uses";
    let is_open_link = matches!(invitee, Some(Invitee::OpenLink { .. }));
    match requested {
        None => Some(1),
        Some(n) if !(0..=Invite::MAX_USES_LIMIT).contains(&n) => {
            bad.add(
                FIELD,
                format!(
                    "must be between 0 (unlimited) and {}",
                    Invite::MAX_USES_LIMIT
                ),
            );
            None
        }
        Some(n) if n != 1 && !is_open_link => {
            bad.add(
                FIELD,
                "an invite addressed to one invitee is used once: set max_uses only on open links",
            );
            None
        }
        Some(n) => Some(n as u32),
    }
}

/// The expiry is in the future and within the maximum TTL; a start comes
/// before the expiry.
pub(super) fn check_window(
    starts_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: &Policy,
    bad: &mut Violations,
) {
    if expires_at <= now {
        bad.add("invite.expires_at", "must be in the future");
    } else if expires_at > now + policy.max_ttl {
        bad.add(
            "invite.expires_at",
            format!("must be at most {} from now", describe(policy.max_ttl)),
        );
    }
    if let Some(starts_at) = starts_at
        && starts_at >= expires_at
    {
        bad.add("invite.starts_at", "must be before expires_at");
    }
}

pub(super) fn check_metadata(metadata: Option<&serde_json::Value>, bad: &mut Violations) {
    let Some(json) = metadata.map(|m| serde_json::to_string(m).unwrap_or_default()) else {
        return;
    };
    if json.len() > Invite::MAX_METADATA_BYTES {
        bad.add(
            "invite.metadata",
            format!(
                "must be at most {} bytes as JSON",
                Invite::MAX_METADATA_BYTES
            ),
        );
    }
    // PostgreSQL's JSON cannot hold a NUL character.
    if json.contains(r"\u0000") {
        bad.add("invite.metadata", "must not contain NUL characters");
    }
    if metadata.is_some_and(|m| depth(m) > Invite::MAX_METADATA_DEPTH) {
        bad.add(
            "invite.metadata",
            format!(
                "must nest at most {} levels deep",
                Invite::MAX_METADATA_DEPTH
            ),
        );
    }
}

/// How deeply objects and lists nest: 1 for a scalar.
fn depth(value: &serde_json::Value) -> usize {
    let children: Box<dyn Iterator<Item = &serde_json::Value>> = match value {
        serde_json::Value::Array(items) => Box::new(items.iter()),
        serde_json::Value::Object(fields) => Box::new(fields.values()),
        _ => return 1,
    };
    1 + children.map(depth).max().unwrap_or(0)
}

fn parse_domains(raw: &[String], bad: &mut Violations) -> Vec<EmailDomain> {
    const FIELD: &str = "invite.allowed_email_domains";
    if raw.len() > Invite::MAX_ALLOWED_DOMAINS {
        bad.add(
            FIELD,
            format!("must list at most {} domains", Invite::MAX_ALLOWED_DOMAINS),
        );
        return Vec::new();
    }
    raw.iter()
        .filter_map(|domain| bad.check(FIELD, EmailDomain::parse(domain)))
        .collect()
}
