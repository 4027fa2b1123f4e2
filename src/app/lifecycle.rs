use super::{InviteRef, Invites, now, parse_id};
use crate::{
    domain::{Acceptance, Caller, EventKind, Invite, InviteError},
    error::Result,
    outbox,
    store::{self, Lookup},
};

impl Invites {
    /// Accepts as the caller. The invite's row lock makes racing accepts run
    /// one after another, so N racers for the last use get one winner.
    #[tracing::instrument(skip_all)]
    pub async fn accept(&self, caller: &Caller, reference: InviteRef) -> Result<Invite> {
        let (lookup, via) = reference.lookup()?;
        let now = now();
        let txn = self.store.begin().await?;
        let mut invite = store::lock_invite(&txn, &lookup)
            .await?
            .ok_or(InviteError::NotFound)?;
        let repeated = store::has_redeemed(&txn, invite.id, &caller.user_id).await?;
        match invite.accept(caller, via, repeated, now)? {
            Acceptance::Repeated => return Ok(invite),
            Acceptance::New => {}
        }
        store::record_redemption(&txn, invite.id, &caller.user_id, now).await?;
        let event = outbox::event_for(
            EventKind::Accepted,
            &mut invite,
            Some(&caller.user_id),
            None,
            now,
        );
        store::save_invite(&txn, &invite).await?;
        store::enqueue_event(&txn, event).await?;
        txn.commit().await?;
        self.wakeup.wake();
        Ok(invite)
    }

    #[tracing::instrument(skip_all)]
    pub async fn reject(&self, caller: &Caller, reference: InviteRef) -> Result<Invite> {
        let (lookup, via) = reference.lookup()?;
        self.change(caller, lookup, EventKind::Rejected, |invite, now| {
            invite.reject(caller, via, now)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(invite_id = %id))]
    pub async fn revoke(&self, caller: &Caller, id: &str, reason: &str) -> Result<Invite> {
        let lookup = Lookup::Id(parse_id("id", id)?);
        self.change(caller, lookup, EventKind::Revoked, |invite, now| {
            invite.revoke(caller, reason, now)
        })
        .await
    }

    /// Deletes the invite; its history stays, ending with `invite.deleted`.
    #[tracing::instrument(skip_all, fields(invite_id = %id))]
    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<()> {
        let lookup = Lookup::Id(parse_id("id", id)?);
        let now = now();
        let txn = self.store.begin().await?;
        let mut invite = store::lock_invite(&txn, &lookup)
            .await?
            .ok_or(InviteError::NotFound)?;
        invite.ensure_manageable(caller)?;
        let event = outbox::event_for(
            EventKind::Deleted,
            &mut invite,
            Some(&caller.user_id),
            None,
            now,
        );
        store::delete_invite(&txn, invite.id).await?;
        store::enqueue_event(&txn, event).await?;
        txn.commit().await?;
        self.wakeup.wake();
        Ok(())
    }

    /// The common shape of a state change: lock, let the domain decide and
    /// change, save, record the event, commit.
    async fn change(
        &self,
        caller: &Caller,
        lookup: Lookup,
        kind: EventKind,
        decide: impl FnOnce(&mut Invite, chrono::DateTime<chrono::Utc>) -> Result<(), InviteError>,
    ) -> Result<Invite> {
        let now = now();
        let txn = self.store.begin().await?;
        let mut invite = store::lock_invite(&txn, &lookup)
            .await?
            .ok_or(InviteError::NotFound)?;
        decide(&mut invite, now)?;
        let event = outbox::event_for(kind, &mut invite, Some(&caller.user_id), None, now);
        store::save_invite(&txn, &invite).await?;
        store::enqueue_event(&txn, event).await?;
        txn.commit().await?;
        self.wakeup.wake();
        Ok(invite)
    }
}
