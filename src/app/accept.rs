//! AcceptInvite: an accept without a passcode joins a group (see
//! `accept_group`); one with a passcode, or one its group sends back, is
//! decided here one at a time, with the passcode's verification and lockout.

use super::{
    InviteRef, Invites, accept_group::Accept, change::lock_existing, now, passcodes::Turn,
};
use crate::{
    domain::{
        Acceptance, Caller, EventKind, Invite, InviteError, Passcode, PasscodeHash, PasscodeProof,
        Reference,
    },
    error::Result,
    outbox,
    store::{self, Lookup},
    telemetry::RequestId,
};

impl Invites {
    /// Accepts as the caller. The invite's row lock makes racing accepts run
    /// one after another, so N racers for the last use get one winner.
    ///
    /// A passcode is verified before the transaction (argon2 is slow, and the
    /// hash never changes), and only for a caller whom every earlier check
    /// admits; the transaction then re-checks everything and counts the try.
    /// The turn at passcode work is held until the try is recorded, so that
    /// a caller's tries queued behind each other see each other's failures.
    #[tracing::instrument(skip_all)]
    pub async fn accept(
        &self,
        caller: &Caller,
        reference: InviteRef,
        passcode: &str,
    ) -> Result<Invite> {
        let (lookup, via) = self.lookup(caller, &reference)?;
        if passcode.is_empty() {
            let accept = Accept {
                caller: caller.clone(),
                lookup: lookup.clone(),
                via,
                request_id: RequestId::current(),
            };
            // None: the invite has a passcode, decided one at a time below.
            if let Some(invite) = self.accepts.submit(accept).await?? {
                return Ok(invite);
            }
        }
        let (_turn, proof) = self.prove_passcode(caller, &lookup, via, passcode).await?;
        let now = now();
        let txn = self.store.begin().await?;
        let mut invite = lock_existing(&txn, &lookup).await?;
        let mut record = store::caller_record(&txn, &invite, &caller.user_id).await?;
        match invite.accept(caller, via, &mut record, proof, now)? {
            Acceptance::Repeated => return Ok(invite.seen_by(caller, record.accepted_at)),
            Acceptance::PasscodeRejected => {
                let failures = record.passcode_failures;
                store::save_passcode_failures(&txn, invite.id, &caller.user_id, failures).await?;
                txn.commit().await?;
                if record.is_locked_out() {
                    tracing::warn!(
                        invite_id = %invite.id,
                        user_id = %caller.user_id,
                        failures,
                        "passcode lock-out: too many wrong passcodes; a resend lifts it"
                    );
                }
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
        Ok(invite.seen_by(caller, record.accepted_at))
    }

    /// Verifies the passcode when it is what stands between the caller and
    /// the invite, with a turn at passcode work (returned, to be held).
    async fn prove_passcode(
        &self,
        caller: &Caller,
        lookup: &Lookup,
        via: Reference,
        passcode: &str,
    ) -> Result<(Option<Turn>, PasscodeProof)> {
        if passcode.is_empty() {
            return Ok((None, PasscodeProof::NotGiven));
        }
        if passcode.chars().count() > Passcode::MAX_CHARS {
            return Err(InviteError::invalid(
                "passcode",
                format!("must be at most {} characters", Passcode::MAX_CHARS),
            )
            .into());
        }
        // Checked before queueing, so that a refused caller waits for nothing,
        // and again with the turn won: tries queued ahead may have locked the
        // caller out meanwhile, and a locked-out caller burns no CPU.
        if self.passcode_to_match(caller, lookup, via).await?.is_none() {
            return Ok((None, PasscodeProof::NotGiven));
        }
        let turn = self.passcodes.turn().await?;
        let Some(hash) = self.passcode_to_match(caller, lookup, via).await? else {
            return Ok((Some(turn), PasscodeProof::NotGiven));
        };
        let matches = self
            .passcodes
            .verify(&turn, hash, passcode.to_owned())
            .await?;
        Ok((Some(turn), PasscodeProof::Verified { matches }))
    }

    /// The hash the caller must match, once every earlier check admits them.
    async fn passcode_to_match(
        &self,
        caller: &Caller,
        lookup: &Lookup,
        via: Reference,
    ) -> Result<Option<PasscodeHash>> {
        let conn = self.store.conn()?;
        let invite = store::read_invite(conn, lookup)
            .await?
            .ok_or(InviteError::NotFound)?;
        let record = store::caller_record(conn, &invite, &caller.user_id).await?;
        Ok(invite
            .check_acceptable(caller, via, &record, now())?
            .cloned())
    }
}
