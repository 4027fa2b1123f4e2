//! Dry runs (AIP-163 `validate_only`) of CreateInvite and
//! BatchCreateInvites: the real call's checks, in its order, then a read of
//! the pending invites that would refuse it. No transaction is opened and no
//! create group joined: nothing is written, no token made, nothing published.
//!
//! Implementation notes: a real call learns "already invited" from the
//! unique index as it inserts; a dry run reads the pending invites instead
//! and asks the domain which of them would still refuse (one past its expiry
//! would be expired by the real call, and refuses nothing). A read is no
//! promise: another call may invite the same address before the real one.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::{Invites, answer_size, now};
use crate::{
    domain::{BatchDraft, Caller, Invite, InviteDraft, InviteError, Refused, plan_batch},
    error::Result,
    store,
};

/// What a dry run answers: what the call would create, and refuse.
#[derive(Debug)]
pub struct Preview {
    /// The invites as they would be, in request order. None of them is
    /// stored, and none has a token.
    pub invites: Vec<Invite>,
    /// The addresses a batch would refuse, each with the real call's reason.
    pub refused: Vec<Refused>,
    /// Whether the invite would ask for a passcode: one was given, well
    /// formed. It is not hashed, since nothing keeps it.
    pub requires_passcode: bool,
}

impl Invites {
    /// What CreateInvite would answer for this request: its errors, or the
    /// invite it would create. A pending invite for the same target and
    /// invitee is ALREADY_EXISTS, as the real call's unique index says.
    #[tracing::instrument(skip_all)]
    pub async fn preview_create(
        &self,
        caller: &Caller,
        draft: InviteDraft,
        passcode: &str,
    ) -> Result<Preview> {
        let now = now();
        let (invite, passcode) = self.checked_invite(caller, draft, passcode, now)?;
        self.limits.take_dry_run(caller, 1)?;
        if !self.held_invitees(&[&invite], now).await?.is_empty() {
            return Err(InviteError::AlreadyExists.into());
        }
        Ok(Preview {
            invites: vec![invite],
            refused: Vec::new(),
            requires_passcode: passcode.is_some(),
        })
    }

    /// What BatchCreateInvites would answer for this request: its errors,
    /// or the invites it would create and the addresses it would refuse.
    #[tracing::instrument(skip_all, fields(emails = draft.emails.len()))]
    pub async fn preview_batch_create(
        &self,
        caller: &Caller,
        draft: BatchDraft,
    ) -> Result<Preview> {
        let now = now();
        let emails = draft.emails.len();
        let plan = plan_batch(draft, caller, now, &self.policy)?;
        answer_size::ensure_batch_fits(&plan)?;
        self.limits.take_dry_run(caller, emails)?;
        let planned: Vec<&Invite> = plan.invites.iter().map(|(_, invite)| invite).collect();
        let held = self.held_invitees(&planned, now).await?;
        let plan = plan.without_invited(&held);
        Ok(Preview {
            invites: plan.invites.into_iter().map(|(_, invite)| invite).collect(),
            refused: plan.refused,
            requires_passcode: false,
        })
    }

    /// The invitee keys of `invites` (which share one target) that a
    /// pending invite holds at `now`, read without a lock or a transaction.
    async fn held_invitees(
        &self,
        invites: &[&Invite],
        now: DateTime<Utc>,
    ) -> Result<HashSet<String>> {
        let pending = store::pending_duplicates(self.store.conn()?, invites).await?;
        Ok(pending
            .iter()
            .filter(|held| held.blocks_a_new_invite(now))
            .filter_map(|held| held.invitee.key())
            .collect())
    }
}
