use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use uuid::Uuid;

use super::{Invites, ReplaySeal, expiry::expire_with_event, idempotency::IdempotencyKey, now};
use crate::{
    domain::{
        BatchDraft, Caller, EventKind, Invite, InviteDraft, InviteError, InviteToken, Passcode,
        Refusal, Refused, plan_batch,
    },
    error::{Error, Result},
    outbox,
    store::{self, StoredAnswer},
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
        if let Some(answer) = self.replay(CREATE, caller, idempotency.as_ref()).await? {
            return first_invite(answer);
        }
        let now = now();
        let passcode = (!passcode.is_empty()).then(|| Passcode::parse(passcode));
        let mut invite = match (
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
        tracing::Span::current().record("invite_id", tracing::field::display(invite.id));
        if let Some(Ok(passcode)) = passcode {
            invite.passcode_hash = Some(self.passcode_job(move || passcode.hash()).await?);
        }
        let created = self
            .write_created(
                CREATE,
                caller,
                vec![(0, invite)],
                Vec::new(),
                notify,
                now,
                idempotency,
            )
            .await?;
        first_invite(created)
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
        if let Some(answer) = self
            .replay(BATCH_CREATE, caller, idempotency.as_ref())
            .await?
        {
            return Ok(answer);
        }
        let now = now();
        let plan = plan_batch(draft, caller, now, &self.policy)?;
        self.write_created(
            BATCH_CREATE,
            caller,
            plan.invites,
            plan.refused,
            notify,
            now,
            idempotency,
        )
        .await
    }

    /// Writes new invites, their events and the idempotent answer in one
    /// transaction. An invite the unique index refuses is "already invited"
    /// (for a single create, ALREADY_EXISTS).
    #[allow(clippy::too_many_arguments)]
    async fn write_created(
        &self,
        rpc: &str,
        caller: &Caller,
        mut invites: Vec<(usize, Invite)>,
        mut refused: Vec<Refused>,
        notify: bool,
        now: DateTime<Utc>,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Created> {
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
                    .replay(rpc, caller, Some(key))
                    .await?
                    .ok_or_else(|| Error::Internal(anyhow::anyhow!("idempotent answer vanished")));
            }
        }
        // Two batches naming the same addresses take their index entries in
        // the same order, so they queue instead of deadlocking.
        invites.sort_by_cached_key(|(_, invite)| invite.invitee.key());
        let mut created = Vec::with_capacity(invites.len());
        for (index, mut invite) in invites {
            let token = InviteToken::generate();
            let event = outbox::event_for(
                EventKind::Created,
                &mut invite,
                Some(&caller.user_id),
                notify.then_some(&token),
                now,
            );
            if !self.insert_new(&txn, &invite, &token, now).await? {
                if rpc == CREATE {
                    return Err(InviteError::AlreadyExists.into());
                }
                refused.push(Refused {
                    index,
                    email: invitee_email(&invite),
                    reason: Refusal::AlreadyInvited,
                });
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
                stored_answer(&self.seal, rpc, caller, key, &created, &refused, now),
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
    /// reached yet, does not count: it is expired here, with its event.
    async fn insert_new(
        &self,
        txn: &DatabaseTransaction,
        invite: &Invite,
        token: &InviteToken,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        if store::try_insert_invite(txn, invite, &token.digest()).await? {
            return Ok(true);
        }
        let Some(stale) = store::lock_pending_duplicate(txn, invite).await? else {
            return Ok(false);
        };
        if !expire_with_event(txn, stale, now).await? {
            return Ok(false);
        }
        store::try_insert_invite(txn, invite, &token.digest()).await
    }

    /// The first answer to this key, if there was one. The invites are shown
    /// as they are now.
    async fn replay(
        &self,
        rpc: &str,
        caller: &Caller,
        key: Option<&IdempotencyKey>,
    ) -> Result<Option<Created>> {
        let Some(key) = key else { return Ok(None) };
        let conn = self.store.conn()?;
        let Some(answer) = store::find_answer(conn, &key.storage_key(rpc, &caller.user_id)).await?
        else {
            return Ok(None);
        };
        if answer.request_hash != key.fingerprint() {
            return Err(InviteError::invalid(
                "request_id",
                "was already used for a different request: use a new request_id",
            )
            .into());
        }
        let corrupt =
            |what: &str| Error::Internal(anyhow::anyhow!("stored idempotent answer: bad {what}"));
        let ids: Vec<Uuid> =
            serde_json::from_value(answer.invite_ids).map_err(|_| corrupt("ids"))?;
        let sealed: Vec<String> =
            serde_json::from_value(answer.sealed_tokens).map_err(|_| corrupt("tokens"))?;
        let refused: Vec<(usize, String, String)> =
            serde_json::from_value(answer.refused).map_err(|_| corrupt("refusals"))?;
        let mut invites = Vec::with_capacity(ids.len());
        for (index, (id, sealed)) in ids.into_iter().zip(sealed).enumerate() {
            let token = key
                .unseal(&self.seal, rpc, &caller.user_id, index, &sealed)
                .ok_or_else(|| corrupt("sealed token"))?;
            // Deleted since: there is nothing left to return for it.
            if let Some(invite) = store::find_invite(conn, id).await? {
                invites.push((invite, token));
            }
        }
        let refused = refused
            .into_iter()
            .map(|(index, email, reason)| {
                let reason = Refusal::parse(&reason).ok_or_else(|| corrupt("refusal reason"))?;
                Ok(Refused {
                    index,
                    email,
                    reason,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Some(Created { invites, refused }))
    }
}

fn stored_answer(
    seal: &ReplaySeal,
    rpc: &str,
    caller: &Caller,
    key: &IdempotencyKey,
    created: &[(Invite, InviteToken)],
    refused: &[Refused],
    now: DateTime<Utc>,
) -> StoredAnswer {
    let ids: Vec<Uuid> = created.iter().map(|(invite, _)| invite.id).collect();
    let sealed: Vec<String> = created
        .iter()
        .enumerate()
        .map(|(index, (_, token))| key.seal(seal, rpc, &caller.user_id, index, token))
        .collect();
    let refused: Vec<(usize, &str, &str)> = refused
        .iter()
        .map(|r| (r.index, r.email.as_str(), r.reason.as_str()))
        .collect();
    StoredAnswer {
        key_hash: key.storage_key(rpc, &caller.user_id),
        request_hash: key.fingerprint().to_owned(),
        invite_ids: serde_json::json!(ids),
        sealed_tokens: serde_json::json!(sealed),
        refused: serde_json::json!(refused),
        created_at: now,
    }
}

fn first_invite(created: Created) -> Result<(Invite, InviteToken)> {
    created
        .invites
        .into_iter()
        .next()
        .ok_or_else(|| InviteError::NotFound.into())
}

fn invitee_email(invite: &Invite) -> String {
    match &invite.invitee {
        crate::domain::Invitee::Email(email) => email.as_str().to_owned(),
        _ => String::new(),
    }
}
