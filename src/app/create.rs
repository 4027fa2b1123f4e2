//! CreateInvite and BatchCreateInvites: new invites, their events and the
//! idempotent answer, in one transaction.

use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use uuid::Uuid;

use super::{Invites, answer_size, expiry::expire_with_event, idempotency::IdempotencyKey, now};
use crate::{
    domain::{
        BatchDraft, Caller, EventKind, Invite, InviteDraft, InviteError, InviteToken, Passcode,
        Refused, plan_batch,
    },
    error::{Error, Result},
    outbox, store,
};

const CREATE: &str = "CreateInvite";
const BATCH_CREATE: &str = "BatchCreateInvites";

/// What a create call answers: the invites made, each with its token, and (for
/// a batch) the addresses refused.
#[derive(Debug)]
pub struct Created {
    pub invites: Vec<(Invite, InviteToken)>,
    pub refused: Vec<Refused>,
}

impl Invites {
    /// Creates a pending invite and its `invite.created` event. The token is
    /// returned here and, with `notify`, carried by the event; never stored.
    #[tracing::instrument(skip_all, fields(invite_id))]
    pub async fn create(
        &self,
        caller: &Caller,
        draft: InviteDraft,
        passcode: &str,
        notify: bool,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<(Invite, InviteToken)> {
        if let Some(answer) = self
            .replay(CREATE, caller, idempotency.as_ref(), &[])
            .await?
        {
            return first_invite(answer);
        }
        let now = now();
        let (mut invite, passcode) = self.checked_invite(caller, draft, passcode, now)?;
        tracing::Span::current().record("invite_id", tracing::field::display(invite.id));
        // Charged once the request is known good: a refused one costs nothing.
        self.limits.take_creates(caller, 1)?;
        if let Some(passcode) = passcode {
            invite.passcode_hash = Some(self.passcodes.hash(passcode).await?);
        }
        // A refused one may be a duplicate, or one past its expiry: those
        // are decided one at a time, below.
        if idempotency.is_none()
            && let Some(created) = self
                .creates
                .create(caller, invite.clone(), notify, now)
                .await?
        {
            return Ok(created);
        }
        let created = self
            .write_created(Creation {
                rpc: CREATE,
                caller,
                emails: &[],
                invites: vec![(0, invite)],
                refused: Vec::new(),
                notify,
                now,
                idempotency,
            })
            .await?;
        first_invite(created)
    }

    /// The invite a create request asks for, and its passcode (not hashed
    /// yet), checked together so that a bad passcode is listed beside every
    /// other bad field.
    pub(super) fn checked_invite(
        &self,
        caller: &Caller,
        draft: InviteDraft,
        passcode: &str,
        now: DateTime<Utc>,
    ) -> Result<(Invite, Option<Passcode>)> {
        let passcode = (!passcode.is_empty()).then(|| Passcode::parse(passcode));
        let invite = match (
            Invite::create(draft, caller, now, &self.policy, Uuid::now_v7()),
            &passcode,
        ) {
            (Err(InviteError::Invalid(mut violations)), Some(Err(why))) => {
                violations.push(crate::domain::FieldViolation::new("passcode", why.clone()));
                return Err(InviteError::Invalid(violations).into());
            }
            (_, Some(Err(why))) => return Err(InviteError::invalid("passcode", why.clone()).into()),
            (created, _) => created?,
        };
        Ok((invite, passcode.and_then(Result::ok)))
    }

    /// Creates an invite for each valid address in one transaction; refuses
    /// the others with a reason each.
    #[tracing::instrument(skip_all, fields(emails = draft.emails.len()))]
    pub async fn batch_create(
        &self,
        caller: &Caller,
        draft: BatchDraft,
        notify: bool,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Created> {
        let emails = draft.emails.clone();
        if let Some(answer) = self
            .replay(BATCH_CREATE, caller, idempotency.as_ref(), &emails)
            .await?
        {
            return Ok(answer);
        }
        let now = now();
        let plan = plan_batch(draft, caller, now, &self.policy)?;
        answer_size::ensure_batch_fits(&plan)?;
        self.limits.take_creates(caller, emails.len())?;
        self.write_created(Creation {
            rpc: BATCH_CREATE,
            caller,
            emails: &emails,
            invites: plan.invites,
            refused: plan.refused,
            notify,
            now,
            idempotency,
        })
        .await
    }

    /// Writes new invites, their events and the idempotent answer in one
    /// transaction. An invite the unique index refuses is "already invited"
    /// (for a single create, ALREADY_EXISTS).
    async fn write_created(&self, creation: Creation<'_>) -> Result<Created> {
        let Creation {
            rpc,
            caller,
            emails,
            mut invites,
            mut refused,
            notify,
            now,
            idempotency,
        } = creation;
        let txn = self.store.begin().await?;
        if let Some(key) = &idempotency {
            // Claimed before anything else: a concurrent retry with the same
            // key waits here until this transaction ends, then replays it.
            let claimed = store::claim_answer(
                &txn,
                &key.storage_key(rpc, &caller.user_id),
                key.fingerprint(),
                now,
            )
            .await?;
            if !claimed {
                drop(txn);
                return self
                    .replay(rpc, caller, Some(key), emails)
                    .await?
                    .ok_or_else(|| Error::Internal(anyhow::anyhow!("idempotent answer vanished")));
            }
        }
        // Two batches naming the same addresses take their index entries in
        // the same order, so they queue instead of deadlocking.
        invites.sort_by_cached_key(|(_, invite)| invite.invitee.key());
        let mut created = Vec::with_capacity(invites.len());
        for (index, mut invite) in invites {
            let (token, event) = created_event(&mut invite, caller, notify, now);
            if !self.insert_new(&txn, &invite, &token, now).await? {
                if rpc == CREATE {
                    return Err(InviteError::AlreadyExists.into());
                }
                refused.push(Refused::already_invited(index, &invite));
                continue;
            }
            store::enqueue_event(&txn, event).await?;
            created.push((index, invite, token));
        }
        created.sort_by_key(|(index, ..)| *index);
        refused.sort_by_key(|r| r.index);
        let created: Vec<_> = created
            .into_iter()
            .map(|(_, invite, token)| (invite, token))
            .collect();
        if let Some(key) = &idempotency {
            store::record_answer(
                &txn,
                self.stored_answer(rpc, caller, key, &created, &refused, now),
            )
            .await?;
        }
        txn.commit().await?;
        if !created.is_empty() {
            self.wakeup.wake();
        }
        Ok(Created {
            invites: created,
            refused,
        })
    }

    /// Inserts the invite unless a pending one for the same target and
    /// invitee exists. One already past its expiry, that the sweep has not
    /// reached yet, does not count: it is expired here, with its event. Nor
    /// does one that stops being pending between the insert and its lock
    /// (accepted or revoked meanwhile): the insert is tried again, a bounded
    /// number of times, rather than answering a duplicate that is gone.
    async fn insert_new(
        &self,
        txn: &DatabaseTransaction,
        invite: &Invite,
        token: &InviteToken,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        const ATTEMPTS: usize = 3;
        for _ in 0..ATTEMPTS {
            if store::try_insert_invite(txn, invite, &token.digest()).await? {
                return Ok(true);
            }
            if let Some(duplicate) = store::lock_pending_duplicate(txn, invite).await?
                && !expire_with_event(txn, duplicate, now).await?
            {
                return Ok(false);
            }
        }
        Ok(false)
    }
}

/// What a create call writes: the invites the domain made, each with its
/// place in the request, and the addresses it refused.
struct Creation<'a> {
    rpc: &'static str,
    caller: &'a Caller,
    /// The addresses as the request gave them (none for CreateInvite).
    emails: &'a [String],
    invites: Vec<(usize, Invite)>,
    refused: Vec<Refused>,
    notify: bool,
    now: DateTime<Utc>,
    idempotency: Option<IdempotencyKey>,
}

fn first_invite(created: Created) -> Result<(Invite, InviteToken)> {
    created
        .invites
        .into_iter()
        .next()
        .ok_or_else(|| InviteError::NotFound.into())
}

/// A new invite's token and its `invite.created` event (carrying the token
/// when asked to notify): the invite takes its first sequence number.
pub(super) fn created_event(
    invite: &mut Invite,
    caller: &Caller,
    notify: bool,
    now: DateTime<Utc>,
) -> (InviteToken, store::NewEvent) {
    let token = InviteToken::generate();
    let event = outbox::event_for(
        EventKind::Created,
        invite,
        Some(&caller.user_id),
        notify.then_some(&token),
        now,
    );
    (token, event)
}
