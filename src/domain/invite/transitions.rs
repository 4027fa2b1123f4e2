//! The invite's state changes: accept, reject, revoke, resend, update, expire.

use chrono::{DateTime, Duration, Utc};

use super::{
    Acceptance, CallerRecord, Invite, InviteStatus, PasscodeProof, Patch, Policy, Reference,
    describe,
    draft::{check_metadata, check_window},
};
use crate::domain::{Caller, InviteError, PasscodeHash, error::Violations, values::Identifier};

impl Invite {
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
    /// left; the caller not locked out. Returns the passcode hash the caller
    /// must match.
    pub fn check_acceptable(
        &self,
        caller: &Caller,
        via: Reference,
        record: &CallerRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<&PasscodeHash>, InviteError> {
        self.ensure_invitee(caller, via)?;
        self.ensure_not_own(caller)?;
        if record.accepted_at.is_some() {
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
        if self.passcode_hash.is_some() && record.is_locked_out() {
            return Err(InviteError::PasscodeLocked);
        }
        Ok(self.passcode_hash.as_ref())
    }

    /// Accepts for the caller once every check passes; a wrong passcode
    /// counts a failed try in the caller's record instead.
    pub fn accept(
        &mut self,
        caller: &Caller,
        via: Reference,
        record: &mut CallerRecord,
        passcode: PasscodeProof,
        now: DateTime<Utc>,
    ) -> Result<Acceptance, InviteError> {
        let needs_passcode = self.check_acceptable(caller, via, record, now)?.is_some();
        if record.accepted_at.is_some() {
            return Ok(Acceptance::Repeated);
        }
        if needs_passcode {
            match passcode {
                PasscodeProof::NotGiven => return Err(InviteError::PasscodeRequired),
                PasscodeProof::Verified { matches: false } => {
                    record.passcode_failures += 1;
                    return Ok(Acceptance::PasscodeRejected);
                }
                PasscodeProof::Verified { matches: true } => {}
            }
        }
        self.use_count += 1;
        self.accepted_by = Some(caller.user_id.clone());
        self.accepted_at = Some(now);
        record.accepted_at = Some(now);
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
        self.touch(now);
        Ok(())
    }

    /// Extends the expiry (to `now + ttl` exactly when the request gives a
    /// ttl) and clears a passcode lockout, for a new token. A pending invite, or one that expired: resending is how an
    /// inviter revives it.
    pub fn resend(
        &mut self,
        caller: &Caller,
        ttl: Option<Duration>,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<(), InviteError> {
        self.ensure_manageable(caller)?;
        let asked_ttl = ttl.is_some();
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
        self.ensure_granted(caller, policy.create, &self.role)?;
        // A resend without a ttl is a nudge: it never cuts short the time
        // the invitee already had. A ttl asks for exactly that expiry.
        let expires_at = if asked_ttl {
            now + ttl
        } else {
            self.expires_at.max(now + ttl)
        };
        if self
            .starts_at
            .is_some_and(|starts_at| starts_at >= expires_at)
        {
            return Err(InviteError::invalid(
                "ttl",
                "would make the invite expire before it starts",
            ));
        }
        self.status = InviteStatus::Pending;
        self.expires_at = expires_at;
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
        self.ensure_pending(now)?;
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
        let role = role.flatten();
        self.ensure_granted(caller, policy.create, role.as_ref().unwrap_or(&self.role))?;
        if let Some(role) = role {
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
}
