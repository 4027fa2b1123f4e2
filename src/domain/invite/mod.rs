//! The invite and its state machine: every rule about who may do what to an
//! invite, and when, is decided in this module and nowhere else. Pure: no
//! I/O, the clock is a parameter.
//!
//! `draft` builds a new invite, `access` says who may see or touch one,
//! `transitions` changes it.

mod access;
mod draft;
mod transitions;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

pub use draft::{DraftInvitee, InviteDraft};

use super::{
    Caller, PasscodeHash,
    values::{Email, EmailDomain, Id, Identifier, Phone},
};

/// Who an invite is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invitee {
    Email(Email),
    Phone(Phone),
    User(Id),
    /// Anyone holding the token; when domains are listed, only callers whose
    /// verified email is in one of them.
    OpenLink {
        allowed_domains: Vec<EmailDomain>,
    },
}

impl Invitee {
    /// The one string under which the store indexes an invitee: duplicates and
    /// "invites addressed to me" are both lookups of it. None for open links,
    /// which are addressed to no one.
    pub fn key(&self) -> Option<String> {
        match self {
            Self::Email(email) => Some(format!("email:{}", email.normalized())),
            Self::Phone(phone) => Some(format!("phone:{}", phone.as_str())),
            Self::User(id) => Some(format!("user:{id}")),
            Self::OpenLink { .. } => None,
        }
    }

    fn includes(&self, caller: &Caller) -> bool {
        match self {
            Self::Email(email) => caller.verified_email.as_ref() == Some(email),
            Self::Phone(phone) => caller.verified_phone.as_ref() == Some(phone),
            Self::User(id) => &caller.user_id == id,
            Self::OpenLink { allowed_domains } => {
                allowed_domains.is_empty()
                    || caller.verified_email.as_ref().is_some_and(|email| {
                        allowed_domains.iter().any(|d| d.as_str() == email.domain())
                    })
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteStatus {
    Pending,
    Accepted,
    Rejected,
    Revoked,
    Expired,
}

impl InviteStatus {
    pub const ALL: [InviteStatus; 5] = [
        Self::Pending,
        Self::Accepted,
        Self::Rejected,
        Self::Revoked,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == stored)
    }
}

/// How the caller named the invite: the answer to a stranger differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// By id: a caller who may not see the invite is told it does not exist.
    Id,
    /// By token: the caller holds the secret, so the invite's existence is no
    /// news to them; a wrong caller is told so.
    Token,
}

/// What an accept did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// A new use: the invite changed and an event is due.
    New,
    /// The caller had accepted before: nothing changes, no event.
    Repeated,
    /// The passcode was wrong: the failed try is counted (save the invite),
    /// nothing else changes, no event, and the caller is refused.
    PasscodeRejected,
}

/// What the caller proved about the invite's passcode. Verifying is slow, so
/// it happens outside the domain, and only once [`Invite::check_acceptable`]
/// says a passcode is what stands between the caller and the invite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasscodeProof {
    NotGiven,
    Verified { matches: bool },
}

/// What one caller has done with one invite, as the store recorded it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallerRecord {
    /// When they accepted it, if they did.
    pub accepted_at: Option<DateTime<Utc>>,
    /// Their wrong passcodes since the invite was created, resent or
    /// revoked. Counted per caller, so that on an open link one holder of
    /// the token cannot lock it for everyone.
    pub passcode_failures: u32,
}

impl CallerRecord {
    pub fn is_locked_out(&self) -> bool {
        self.passcode_failures >= Invite::MAX_PASSCODE_TRIES
    }
}

/// Limits the operator sets.
#[derive(Debug, Clone)]
pub struct Policy {
    pub default_ttl: Duration,
    /// No invite may expire later than this after its creation or change.
    pub max_ttl: Duration,
    pub create: CreatePolicy,
}

/// Who may create invites to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreatePolicy {
    /// Only callers whose token grants the target and role (and admins).
    Grants,
    /// Any authenticated caller: what the service did before grants.
    Open,
}

/// The changes UpdateInvite may make; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    pub role: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// `Some(None)` clears the start.
    pub starts_at: Option<Option<DateTime<Utc>>>,
    pub max_uses: Option<Option<i32>>,
    /// `Some(None)` clears the metadata.
    pub metadata: Option<Option<serde_json::Value>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Invite {
    pub(crate) id: Uuid,
    pub(crate) target_type: Identifier,
    pub(crate) target_id: Id,
    pub(crate) inviter_id: Id,
    pub(crate) invitee: Invitee,
    pub(crate) role: Identifier,
    pub(crate) status: InviteStatus,
    pub(crate) starts_at: Option<DateTime<Utc>>,
    pub(crate) expires_at: DateTime<Utc>,
    /// 0: unlimited.
    pub(crate) max_uses: u32,
    pub(crate) use_count: u32,
    pub(crate) metadata: Option<serde_json::Value>,
    pub(crate) passcode_hash: Option<PasscodeHash>,
    pub(crate) accepted_by: Option<Id>,
    pub(crate) accepted_at: Option<DateTime<Utc>>,
    pub(crate) rejected_at: Option<DateTime<Utc>>,
    pub(crate) revoked_by: Option<Id>,
    pub(crate) revoked_at: Option<DateTime<Utc>>,
    pub(crate) revoke_reason: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    /// Bumped by every change; the etag.
    pub(crate) version: i64,
    /// The sequence of the invite's last event.
    pub(crate) last_sequence: i64,
}

impl Invite {
    pub const MAX_USES_LIMIT: i32 = 1_000_000;
    pub const MAX_ALLOWED_DOMAINS: usize = 50;
    pub const MAX_METADATA_BYTES: usize = 16 * 1024;
    /// Each JSON level is two protobuf messages (Value, Struct), and answers
    /// wrap the invite in up to four more (a history page of events): well
    /// inside the decoders' limit of 100, so every client can read it back.
    pub const MAX_METADATA_DEPTH: usize = 32;
    pub const MAX_REASON_CHARS: usize = 512;
    pub const DEFAULT_ROLE: &'static str = "member";
    pub const MAX_PASSCODE_TRIES: u32 = 5;

    pub fn etag(&self) -> String {
        self.version.to_string()
    }

    pub fn is_open_link(&self) -> bool {
        matches!(self.invitee, Invitee::OpenLink { .. })
    }

    /// The sequence for the event of the change just made.
    pub fn next_sequence(&mut self) -> i64 {
        self.last_sequence += 1;
        self.last_sequence
    }

    fn touch(&mut self, now: DateTime<Utc>) {
        self.updated_at = now;
        self.version += 1;
    }
}

/// "30 days", for messages.
fn describe(duration: Duration) -> String {
    duration
        .to_std()
        .map(|d| humantime::format_duration(d).to_string())
        .unwrap_or_else(|_| duration.to_string())
}

#[cfg(test)]
mod tests;
