use sea_orm::DatabaseTransaction;

use super::{InviteRef, Invites, now, parse_id};
use crate::{
    domain::{
        Acceptance, Caller, EventKind, Invite, InviteError, InviteToken, Passcode, PasscodeProof,
        Patch, Reference,
    },
    error::Result,
    outbox,
    store::{self, Lookup},
};

impl Invites {
    /// Accepts as the caller. The invite's row lock makes racing accepts run
    /// one after another, so N racers for the last use get one winner.
    ///
    /// A passcode is verified before the transaction (argon2 is slow, and the
    /// hash never changes), and only for a caller whom every earlier check
    /// admits; the transaction then re-checks everything and counts the try.
    #[tracing::instrument(skip_all)]
    pub async fn accept(
        &self,
        caller: &Caller,
        reference: InviteRef,
        passcode: &str,
    ) -> Result<Invite> {
        let (lookup, via) = reference.lookup()?;
        let proof = self.prove_passcode(caller, &lookup, via, passcode).await?;
        let now = now();
        let txn = self.store.begin().await?;
        let mut invite = lock_existing(&txn, &lookup).await?;
        let earlier = store::redeemed_at(&txn, invite.id, &caller.user_id).await?;
        match invite.accept(caller, via, earlier.is_some(), proof, now)? {
            Acceptance::Repeated => return Ok(invite.seen_by(caller, earlier)),
            Acceptance::PasscodeRejected => {
                store::save_invite(&txn, &invite).await?;
                txn.commit().await?;
                return Err(InviteError::WrongPasscode.into());
            }
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
        self.commit_and_publish(txn).await?;
        Ok(invite.seen_by(caller, Some(now)))
    }

    async fn prove_passcode(
        &self,
        caller: &Caller,
        lookup: &Lookup,
        via: Reference,
        passcode: &str,
    ) -> Result<PasscodeProof> {
        if passcode.is_empty() {
            return Ok(PasscodeProof::NotGiven);
        }
        if passcode.chars().count() > Passcode::MAX_CHARS {
            return Err(InviteError::invalid(
                "passcode",
                format!("must be at most {} characters", Passcode::MAX_CHARS),
            )
            .into());
        }
        let conn = self.store.conn()?;
        let invite = store::read_invite(conn, lookup)
            .await?
            .ok_or(InviteError::NotFound)?;
        let repeated = store::redeemed_at(conn, invite.id, &caller.user_id)
            .await?
            .is_some();
        let Some(hash) = invite
            .check_acceptable(caller, via, repeated, now())?
            .cloned()
        else {
            return Ok(PasscodeProof::NotGiven);
        };
        let given = passcode.to_owned();
        let matches = self.passcode_job(move || hash.verify(&given)).await?;
        Ok(PasscodeProof::Verified { matches })
    }

    #[tracing::instrument(skip_all)]
    pub async fn reject(&self, caller: &Caller, reference: InviteRef) -> Result<Invite> {
        let (lookup, via) = reference.lookup()?;
        let invite = self
            .change(caller, lookup, EventKind::Rejected, |invite, now| {
                invite.reject(caller, via, now)
            })
            .await?;
        Ok(invite.seen_by(caller, None))
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
        let mut invite = lock_existing(&txn, &lookup).await?;
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
        self.commit_and_publish(txn).await?;
        Ok(())
    }

    /// A new token (the old one stops working at this commit), a new expiry,
    /// no more lockout; `invite.resent` carries the token when asked to notify.
    #[tracing::instrument(skip_all, fields(invite_id = %id))]
    pub async fn resend(
        &self,
        caller: &Caller,
        id: &str,
        ttl: Option<chrono::Duration>,
        notify: bool,
    ) -> Result<(Invite, InviteToken)> {
        let lookup = Lookup::Id(parse_id("id", id)?);
        let now = now();
        let txn = self.store.begin().await?;
        let mut invite = lock_existing(&txn, &lookup).await?;
        invite.resend(caller, ttl, &self.policy, now)?;
        let token = InviteToken::generate();
        let event = outbox::event_for(
            EventKind::Resent,
            &mut invite,
            Some(&caller.user_id),
            notify.then_some(&token),
            now,
        );
        store::save_invite(&txn, &invite).await?;
        store::replace_token(&txn, invite.id, &token.digest()).await?;
        store::enqueue_event(&txn, event).await?;
        self.commit_and_publish(txn).await?;
        Ok((invite, token))
    }

    #[tracing::instrument(skip_all, fields(invite_id = %id))]
    pub async fn update(
        &self,
        caller: &Caller,
        id: &str,
        etag: &str,
        patch: Patch,
    ) -> Result<Invite> {
        let lookup = Lookup::Id(parse_id("invite.id", id)?);
        let policy = self.policy.clone();
        self.change(caller, lookup, EventKind::Updated, |invite, now| {
            invite.update(caller, etag, patch, &policy, now)
        })
        .await
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
        let mut invite = lock_existing(&txn, &lookup).await?;
        decide(&mut invite, now)?;
        let event = outbox::event_for(kind, &mut invite, Some(&caller.user_id), None, now);
        store::save_invite(&txn, &invite).await?;
        store::enqueue_event(&txn, event).await?;
        self.commit_and_publish(txn).await?;
        Ok(invite)
    }
}

/// The invite the lookup names, locked for this transaction.
async fn lock_existing(txn: &DatabaseTransaction, lookup: &Lookup) -> Result<Invite> {
    Ok(store::lock_invite(txn, lookup)
        .await?
        .ok_or(InviteError::NotFound)?)
}
