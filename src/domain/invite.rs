//! The invite and its state machine: every rule about who may do what to an
//! invite, and when, is decided here and nowhere else. Pure: no I/O, the clock
//! is a parameter.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::{
    Caller, InviteError, PasscodeHash,
    error::Violations,
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

/// The caller's standing towards one invite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Admin,
    Inviter,
    Invitee,
    Stranger,
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

/// Limits the operator sets.
#[derive(Debug, Clone)]
pub struct Policy {
    pub default_ttl: Duration,
    /// No invite may expire later than this after its creation or change.
    pub max_ttl: Duration,
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

#[derive(Debug, Clone, PartialEq)]
pub struct Invite {
    pub id: Uuid,
    pub target_type: Identifier,
    pub target_id: Id,
    pub inviter_id: Id,
    pub invitee: Invitee,
    pub role: Identifier,
    pub status: InviteStatus,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    /// 0: unlimited.
    pub max_uses: u32,
    pub use_count: u32,
    pub metadata: Option<serde_json::Value>,
    pub passcode_hash: Option<PasscodeHash>,
    /// Wrong passcodes since the invite was created or last resent.
    pub passcode_failures: u32,
    pub accepted_by: Option<Id>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub rejected_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<Id>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoke_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped by every change; the etag.
    pub version: i64,
    /// The sequence of the invite's last event.
    pub last_sequence: i64,
}

impl Invite {
    pub const MAX_USES_LIMIT: i32 = 1_000_000;
    pub const MAX_ALLOWED_DOMAINS: usize = 50;
    pub const MAX_METADATA_BYTES: usize = 16 * 1024;
    pub const MAX_REASON_CHARS: usize = 512;
    pub const DEFAULT_ROLE: &'static str = "member";
    pub const MAX_PASSCODE_TRIES: u32 = 5;

    /// Checks a draft against every rule at once and builds the pending invite.
    pub fn create(
        draft: InviteDraft,
        caller: &Caller,
        now: DateTime<Utc>,
        policy: &Policy,
        id: Uuid,
    ) -> Result<Invite, InviteError> {
        let mut bad = draft.unreadable;
        let target_type = bad.check("invite.target_type", Identifier::parse(&draft.target_type));
        let target_id = bad.check("invite.target_id", Id::parse(&draft.target_id));
        let inviter_id = if draft.inviter_id.is_empty() {
            Some(caller.user_id.clone())
        } else {
            bad.check("invite.inviter_id", Id::parse(&draft.inviter_id))
        };
        let role = if draft.role.is_empty() {
            Some(Identifier::parse(Self::DEFAULT_ROLE).expect("the default role is valid"))
        } else {
            bad.check("invite.role", Identifier::parse(&draft.role))
        };
        let invitee = match draft.invitee {
            DraftInvitee::Email(raw) => bad
                .check("invite.invitee_email", Email::parse(&raw))
                .map(Invitee::Email),
            DraftInvitee::Phone(raw) => bad
                .check("invite.invitee_phone", Phone::parse(&raw))
                .map(Invitee::Phone),
            DraftInvitee::UserId(raw) => bad
                .check("invite.invitee_user_id", Id::parse(&raw))
                .map(Invitee::User),
            DraftInvitee::None => Some(Invitee::OpenLink {
                allowed_domains: Vec::new(),
            }),
        };
        let invitee = invitee.map(|invitee| match invitee {
            Invitee::OpenLink { .. } => Invitee::OpenLink {
                allowed_domains: parse_domains(&draft.allowed_email_domains, &mut bad),
            },
            addressed => {
                if !draft.allowed_email_domains.is_empty() {
                    bad.add(
                        "invite.allowed_email_domains",
                        "applies to open links only (an invite without an invitee)",
                    );
                }
                addressed
            }
        });
        let is_open_link = matches!(invitee, Some(Invitee::OpenLink { .. }));
        let max_uses = match draft.max_uses {
            None => Some(1),
            Some(n) if !(0..=Self::MAX_USES_LIMIT).contains(&n) => {
                bad.add(
                    "invite.max_uses",
                    format!("must be between 0 (unlimited) and {}", Self::MAX_USES_LIMIT),
                );
                None
            }
            Some(n) if n != 1 && !is_open_link => {
                bad.add(
                    "invite.max_uses",
                    "an invite addressed to one invitee is used once: set max_uses only on open links",
                );
                None
            }
            Some(n) => Some(n as u32),
        };
        let expires_at = draft.expires_at.unwrap_or(now + policy.default_ttl);
        check_window(draft.starts_at, expires_at, now, policy, &mut bad);
        check_metadata(draft.metadata.as_ref(), &mut bad);
        bad.into_result()?;
        let (
            Some(target_type),
            Some(target_id),
            Some(inviter_id),
            Some(role),
            Some(invitee),
            Some(max_uses),
        ) = (target_type, target_id, inviter_id, role, invitee, max_uses)
        else {
            unreachable!("every missing part recorded a violation");
        };
        if inviter_id != caller.user_id && !caller.is_admin {
            return Err(InviteError::NotAdmin);
        }
        Ok(Invite {
            id,
            target_type,
            target_id,
            inviter_id,
            invitee,
            role,
            status: InviteStatus::Pending,
            starts_at: draft.starts_at,
            expires_at,
            max_uses,
            use_count: 0,
            metadata: draft.metadata,
            passcode_hash: draft.passcode_hash,
            passcode_failures: 0,
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
    }

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

    fn standing(&self, caller: &Caller) -> Standing {
        if caller.is_admin {
            Standing::Admin
        } else if self.inviter_id == caller.user_id {
            Standing::Inviter
        } else if !self.is_open_link() && self.invitee.includes(caller) {
            Standing::Invitee
        } else {
            Standing::Stranger
        }
    }

    /// Whether the caller may see the invite by id. Open links are seen by
    /// their inviter (and admins) only: holding a token is not an identity.
    pub fn ensure_visible(&self, caller: &Caller) -> Result<(), InviteError> {
        match self.standing(caller) {
            Standing::Stranger => Err(InviteError::NotFound),
            _ => Ok(()),
        }
    }

    /// Whether the caller may see the invite a token they hold names (what an
    /// invite landing page shows): its invitee (for an open link, anyone it
    /// admits), its inviter, an admin. Others are told they are not the invitee.
    pub fn ensure_visible_by_token(&self, caller: &Caller) -> Result<(), InviteError> {
        match self.standing(caller) {
            Standing::Admin | Standing::Inviter | Standing::Invitee => Ok(()),
            Standing::Stranger if self.invitee.includes(caller) => Ok(()),
            Standing::Stranger => Err(InviteError::InviteeMismatch),
        }
    }

    /// Revoking, deleting (and, later, updating and resending) belong to the
    /// inviter and to admins.
    pub fn ensure_manageable(&self, caller: &Caller) -> Result<(), InviteError> {
        match self.standing(caller) {
            Standing::Admin | Standing::Inviter => Ok(()),
            Standing::Invitee => Err(InviteError::NotInviter),
            Standing::Stranger => Err(InviteError::NotFound),
        }
    }

    /// Acceptance is personal: admins too must be the invitee. A caller who is
    /// not, and who may not see the invite by id, is told it does not exist.
    fn ensure_invitee(&self, caller: &Caller, via: Reference) -> Result<(), InviteError> {
        // Holding the token is what admits a caller to an open link: its id
        // travels in every event and answer, and a resend must cut off a
        // leaked link.
        if self.is_open_link() && via == Reference::Id {
            return match self.standing(caller) {
                Standing::Stranger => Err(InviteError::NotFound),
                _ => Err(InviteError::invalid(
                    "id",
                    "an open link is accepted with its token",
                )),
            };
        }
        if self.invitee.includes(caller) {
            return Ok(());
        }
        match (via, self.standing(caller)) {
            (Reference::Id, Standing::Stranger) => Err(InviteError::NotFound),
            _ => Err(InviteError::InviteeMismatch),
        }
    }

    /// Pending and not past its expiry (whether or not the sweep has run).
    fn ensure_pending(&self, now: DateTime<Utc>) -> Result<(), InviteError> {
        match self.status {
            InviteStatus::Pending if now >= self.expires_at => Err(InviteError::Expired),
            InviteStatus::Pending => Ok(()),
            InviteStatus::Expired => Err(InviteError::Expired),
            InviteStatus::Accepted | InviteStatus::Rejected | InviteStatus::Revoked => {
                Err(InviteError::NotPending)
            }
        }
    }

    /// Every check of an accept that comes before the passcode, in the
    /// contract's order: the caller is the invitee (so a stranger holding the
    /// token never burns the invitee's tries); a repeat by the same user is
    /// answered with the first acceptance; pending; inside its window; uses
    /// left; not locked. Returns the passcode hash the caller must match.
    pub fn check_acceptable(
        &self,
        caller: &Caller,
        via: Reference,
        already_accepted_by_caller: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<&PasscodeHash>, InviteError> {
        self.ensure_invitee(caller, via)?;
        if already_accepted_by_caller {
            return Ok(None);
        }
        match self.ensure_pending(now) {
            // A single-use invite someone else accepted is used up, not
            // refused for another reason.
            Err(InviteError::NotPending) if self.status == InviteStatus::Accepted => {
                return Err(InviteError::Exhausted);
            }
            other => other?,
        }
        if self.starts_at.is_some_and(|starts_at| now < starts_at) {
            return Err(InviteError::NotYetValid);
        }
        if self.max_uses != 0 && self.use_count >= self.max_uses {
            return Err(InviteError::Exhausted);
        }
        if self.passcode_hash.is_some() && self.passcode_failures >= Self::MAX_PASSCODE_TRIES {
            return Err(InviteError::PasscodeLocked);
        }
        Ok(self.passcode_hash.as_ref())
    }

    /// Accepts for the caller once every check passes; a wrong passcode
    /// counts a failed try instead.
    pub fn accept(
        &mut self,
        caller: &Caller,
        via: Reference,
        already_accepted_by_caller: bool,
        passcode: PasscodeProof,
        now: DateTime<Utc>,
    ) -> Result<Acceptance, InviteError> {
        let needs_passcode = self
            .check_acceptable(caller, via, already_accepted_by_caller, now)?
            .is_some();
        if already_accepted_by_caller {
            return Ok(Acceptance::Repeated);
        }
        if needs_passcode {
            match passcode {
                PasscodeProof::NotGiven => return Err(InviteError::PasscodeRequired),
                PasscodeProof::Verified { matches: false } => {
                    self.passcode_failures += 1;
                    return Ok(Acceptance::PasscodeRejected);
                }
                PasscodeProof::Verified { matches: true } => {}
            }
        }
        self.use_count += 1;
        self.accepted_by = Some(caller.user_id.clone());
        self.accepted_at = Some(now);
        if self.max_uses != 0 && self.use_count == self.max_uses {
            self.status = InviteStatus::Accepted;
        }
        self.touch(now);
        Ok(Acceptance::New)
    }

    pub fn reject(
        &mut self,
        caller: &Caller,
        via: Reference,
        now: DateTime<Utc>,
    ) -> Result<(), InviteError> {
        if self.is_open_link() {
            // Nobody in particular was invited, so nobody can decline for all.
            return match self.ensure_visible(caller) {
                Ok(()) => Err(InviteError::OpenLinkNotRejectable),
                Err(_) if via == Reference::Token => Err(InviteError::OpenLinkNotRejectable),
                Err(hidden) => Err(hidden),
            };
        }
        self.ensure_invitee(caller, via)?;
        self.ensure_pending(now)?;
        self.status = InviteStatus::Rejected;
        self.rejected_at = Some(now);
        self.touch(now);
        Ok(())
    }

    pub fn revoke(
        &mut self,
        caller: &Caller,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), InviteError> {
        // Checked first: a stranger must not learn from the reason's check
        // that the invite exists.
        self.ensure_manageable(caller)?;
        if reason.chars().count() > Self::MAX_REASON_CHARS || reason.chars().any(char::is_control) {
            return Err(InviteError::invalid(
                "reason",
                format!(
                    "must be at most {} characters, without control characters",
                    Self::MAX_REASON_CHARS
                ),
            ));
        }
        self.ensure_pending(now)?;
        self.status = InviteStatus::Revoked;
        self.revoked_by = Some(caller.user_id.clone());
        self.revoked_at = Some(now);
        self.revoke_reason = (!reason.is_empty()).then(|| reason.to_owned());
        self.passcode_failures = 0;
        self.touch(now);
        Ok(())
    }

    /// Moves the expiry to `now + ttl` and clears a passcode lockout, for a
    /// new token. A pending invite, or one that expired: resending is how an
    /// inviter revives it.
    pub fn resend(
        &mut self,
        caller: &Caller,
        ttl: Option<Duration>,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<(), InviteError> {
        self.ensure_manageable(caller)?;
        let ttl = ttl.unwrap_or(policy.default_ttl);
        if ttl <= Duration::zero() || ttl > policy.max_ttl {
            return Err(InviteError::invalid(
                "ttl",
                format!("must be positive and at most {}", describe(policy.max_ttl)),
            ));
        }
        match self.status {
            InviteStatus::Pending | InviteStatus::Expired => {}
            _ => return Err(InviteError::NotPending),
        }
        if self
            .starts_at
            .is_some_and(|starts_at| starts_at >= now + ttl)
        {
            return Err(InviteError::invalid(
                "ttl",
                "would make the invite expire before it starts",
            ));
        }
        self.status = InviteStatus::Pending;
        self.expires_at = now + ttl;
        self.passcode_failures = 0;
        self.touch(now);
        Ok(())
    }

    /// Applies an UpdateInvite patch to a pending invite whose etag the
    /// client has seen.
    pub fn update(
        &mut self,
        caller: &Caller,
        etag: &str,
        patch: Patch,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<(), InviteError> {
        self.ensure_manageable(caller)?;
        if etag.is_empty() {
            return Err(InviteError::invalid(
                "invite.etag",
                "is required: send the etag of the invite as you last read it",
            ));
        }
        if etag != self.etag() {
            return Err(InviteError::EtagMismatch);
        }
        if self.status != InviteStatus::Pending {
            return Err(InviteError::NotPending);
        }
        if now >= self.expires_at {
            return Err(InviteError::Expired);
        }
        let mut bad = Violations::default();
        let role = patch
            .role
            .map(|raw| bad.check("invite.role", Identifier::parse(&raw)));
        let expires_at = patch.expires_at.unwrap_or(self.expires_at);
        let starts_at = patch.starts_at.unwrap_or(self.starts_at);
        if patch.expires_at.is_some() || patch.starts_at.is_some() {
            check_window(starts_at, expires_at, now, policy, &mut bad);
        }
        let max_uses = match patch.max_uses {
            None => None,
            Some(requested) => self.check_new_max_uses(requested, &mut bad),
        };
        if let Some(metadata) = &patch.metadata {
            check_metadata(metadata.as_ref(), &mut bad);
        }
        bad.into_result()?;
        if let Some(Some(role)) = role {
            self.role = role;
        }
        self.expires_at = expires_at;
        self.starts_at = starts_at;
        if let Some(max_uses) = max_uses {
            self.max_uses = max_uses;
        }
        if let Some(metadata) = patch.metadata {
            self.metadata = metadata;
        }
        self.touch(now);
        Ok(())
    }

    fn check_new_max_uses(&self, requested: Option<i32>, bad: &mut Violations) -> Option<u32> {
        const FIELD: &str = "invite.max_uses";
        let requested = requested.unwrap_or(1);
        if !(0..=Self::MAX_USES_LIMIT).contains(&requested) {
            bad.add(
                FIELD,
                format!("must be between 0 (unlimited) and {}", Self::MAX_USES_LIMIT),
            );
            return None;
        }
        let requested = requested as u32;
        if !self.is_open_link() && requested != 1 {
            bad.add(
                FIELD,
                "an invite addressed to one invitee is used once: set max_uses only on open links",
            );
            return None;
        }
        if requested != 0 && requested <= self.use_count {
            bad.add(
                FIELD,
                format!(
                    "must be 0 (unlimited) or more than the {} uses so far",
                    self.use_count
                ),
            );
            return None;
        }
        Some(requested)
    }

    /// Turns a pending invite past its expiry into EXPIRED; false if there was
    /// nothing to do.
    pub fn expire(&mut self, now: DateTime<Utc>) -> bool {
        if self.status != InviteStatus::Pending || now < self.expires_at {
            return false;
        }
        self.status = InviteStatus::Expired;
        self.touch(now);
        true
    }

    fn touch(&mut self, now: DateTime<Utc>) {
        self.updated_at = now;
        self.version += 1;
    }
}

/// The expiry is in the future and within the maximum TTL; a start comes
/// before the expiry.
fn check_window(
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

fn check_metadata(metadata: Option<&serde_json::Value>, bad: &mut Violations) {
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
}

/// "30 days", for messages.
fn describe(duration: Duration) -> String {
    duration
        .to_std()
        .map(|d| humantime::format_duration(d).to_string())
        .unwrap_or_else(|_| duration.to_string())
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

#[cfg(test)]
#[path = "invite_tests.rs"]
mod tests;
