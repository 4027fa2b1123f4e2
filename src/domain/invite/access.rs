//! Who may see or touch an invite, and what they see of it.

use chrono::{DateTime, Utc};

use super::{CreatePolicy, Invite, Reference};
use crate::domain::{Caller, Identifier, InviteError};

/// The caller's standing towards one invite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Admin,
    Inviter,
    Invitee,
    Stranger,
}

impl Invite {
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
    pub(super) fn ensure_invitee(
        &self,
        caller: &Caller,
        via: Reference,
    ) -> Result<(), InviteError> {
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

    /// Who may create this invite. Membership services add a member when
    /// they see `invite.accepted`, so this is the check everything trusts:
    /// admins may do anything; others invite as themselves, only to targets
    /// and roles their grants cover (under the `grants` policy), and never
    /// themselves.
    pub(super) fn ensure_creatable_by(
        &self,
        caller: &Caller,
        policy: CreatePolicy,
    ) -> Result<(), InviteError> {
        if caller.is_admin {
            return Ok(());
        }
        if self.inviter_id != caller.user_id {
            return Err(InviteError::NotAdmin);
        }
        self.ensure_granted(caller, policy, &self.role)?;
        if !self.is_open_link() && self.invitee.includes(caller) {
            return Err(InviteError::SelfInvite);
        }
        Ok(())
    }

    /// Under the `grants` policy, a caller that is not an admin acts on an
    /// invite only while its grants cover the target and `role`: at creation,
    /// and again at each update and resend, so that neither hands out a role
    /// (or a new token for one) that no grant covers, or no longer does.
    pub(super) fn ensure_granted(
        &self,
        caller: &Caller,
        policy: CreatePolicy,
        role: &Identifier,
    ) -> Result<(), InviteError> {
        let granted = caller
            .grants
            .iter()
            .any(|grant| grant.covers(&self.target_type, &self.target_id, role));
        match policy {
            CreatePolicy::Grants if !caller.is_admin && !granted => Err(InviteError::NotGranted),
            _ => Ok(()),
        }
    }

    /// Nobody but an admin accepts an invite or link they created: an
    /// inviter could otherwise grant themselves a role through any link.
    pub(super) fn ensure_not_own(&self, caller: &Caller) -> Result<(), InviteError> {
        if !caller.is_admin && self.inviter_id == caller.user_id {
            return Err(InviteError::SelfInvite);
        }
        Ok(())
    }

    /// The invite as this caller may see it. Its inviter and admins see it
    /// all; anyone else never learns who else used it or who revoked it and
    /// why: `accepted_by`/`accepted_at` tell only the caller's own acceptance
    /// (`own_acceptance`, when they used an open link), and the revocation
    /// names nobody.
    pub fn seen_by(mut self, caller: &Caller, own_acceptance: Option<DateTime<Utc>>) -> Invite {
        if matches!(self.standing(caller), Standing::Admin | Standing::Inviter) {
            return self;
        }
        if self.accepted_by.as_ref() != Some(&caller.user_id) {
            self.accepted_by = own_acceptance.map(|_| caller.user_id.clone());
            self.accepted_at = own_acceptance;
        }
        self.revoked_by = None;
        self.revoke_reason = None;
        self
    }
}
