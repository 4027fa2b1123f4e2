//! The sweep's chores: pending invites past their expiry become EXPIRED,
//! each with its `invite.expired` event, in bounded batches; idempotency keys
//! past their lifetime are forgotten.

use chrono::{DateTime, Duration, Utc};
use sea_orm::ConnectionTrait;

use super::{Invites, now};
use crate::{
    domain::{EventKind, Invite},
    error::Result,
    outbox, store,
};

/// Invites expired per transaction: bounded, so a backlog never holds locks long.
const EXPIRY_BATCH: u64 = 500;
/// Idempotency keys live at least this long.
pub const IDEMPOTENCY_KEY_LIFETIME: Duration = Duration::hours(24);

impl Invites {
    /// Turns every pending invite past its expiry into EXPIRED, one
    /// `invite.expired` event each; returns how many, counting the batches
    /// committed before a failure too.
    #[tracing::instrument(skip_all)]
    pub async fn expire_due(&self) -> (usize, Result<()>) {
        let mut expired = 0;
        loop {
            match self.expire_batch().await {
                Ok((batch, more)) => {
                    expired += batch;
                    if !more {
                        return (expired, Ok(()));
                    }
                }
                Err(err) => return (expired, Err(err)),
            }
        }
    }

    /// One transaction: how many it expired and whether more may be due.
    async fn expire_batch(&self) -> Result<(usize, bool)> {
        let now = now();
        let txn = self.store.begin().await?;
        let claimed = store::claim_expired(&txn, now, EXPIRY_BATCH).await?;
        let claimed_count = claimed.len();
        let mut expired = 0;
        for invite in claimed {
            if expire_with_event(&txn, invite, now).await? {
                expired += 1;
            }
        }
        txn.commit().await?;
        if claimed_count > 0 {
            self.wakeup.wake();
        }
        Ok((expired, claimed_count as u64 == EXPIRY_BATCH))
    }

    /// Forgets idempotent answers past their lifetime.
    pub async fn forget_old_answers(&self) -> Result<u64> {
        store::forget_answers_before(self.store.conn()?, now() - IDEMPOTENCY_KEY_LIFETIME).await
    }
}

/// Expires a locked invite past its expiry and records its `invite.expired`
/// event; false (nothing written) if it was not due.
pub(super) async fn expire_with_event(
    conn: &impl ConnectionTrait,
    mut invite: Invite,
    now: DateTime<Utc>,
) -> Result<bool> {
    if !invite.expire(now) {
        return Ok(false);
    }
    let event = outbox::event_for(EventKind::Expired, &mut invite, None, None, now);
    store::save_invite(conn, &invite).await?;
    store::enqueue_event(conn, event).await?;
    Ok(true)
}
