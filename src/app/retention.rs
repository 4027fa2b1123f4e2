//! Retention: finished invites kept longer than `--retention` are removed
//! with their redemptions and history, and so are deleted invites'
//! histories; never while one of their events waits to be published.

use uuid::Uuid;

use super::{Invites, now};
use crate::{domain::Retention, error::Result, store};

/// Invites (and, apart, deleted invites' histories) removed per transaction:
/// a bounded batch, so a pass never holds its locks long.
const RETENTION_BATCH: u64 = 500;
/// Transactions per pass at most: a large backlog (the first pass after
/// retention is turned on) is worked off over several sweeps, leaving the
/// database to the calls in between.
const MAX_BATCHES_PER_PASS: usize = 20;

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retired {
    /// Finished invites, with their redemptions and history.
    pub invites: u64,
    /// Histories of invites deleted by DeleteInvite.
    pub histories: u64,
    /// Event rows, of both.
    pub events: u64,
}

impl Retired {
    fn add(&mut self, batch: Retired) {
        self.invites += batch.invites;
        self.histories += batch.histories;
        self.events += batch.events;
    }
}

impl Invites {
    /// Removes, in batches, what has been kept longer than `retention`.
    /// On PostgreSQL one replica at a time: a replica that finds another's
    /// pass running leaves the work to it. What the committed batches removed
    /// is returned beside a failure, so that it is counted all the same.
    #[tracing::instrument(skip_all)]
    pub async fn forget_retired(&self, retention: Retention) -> (Retired, Result<()>) {
        let mut retired = Retired::default();
        for _ in 0..MAX_BATCHES_PER_PASS {
            match self.forget_retired_batch(&retention).await {
                Ok(Some((batch, more))) => {
                    retired.add(batch);
                    if !more {
                        break;
                    }
                }
                Ok(None) => break,
                Err(err) => return (retired, Err(err)),
            }
        }
        (retired, Ok(()))
    }

    /// One transaction: what it removed and whether more may be waiting;
    /// None if another replica's pass holds the lead.
    async fn forget_retired_batch(&self, retention: &Retention) -> Result<Option<(Retired, bool)>> {
        let now = now();
        let txn = self.store.begin().await?;
        if !store::try_lead_retention(&txn).await? {
            return Ok(None);
        }
        let cutoff = retention.cutoff(now);
        let claimed = store::claim_retired(&txn, cutoff, RETENTION_BATCH).await?;
        let full = claimed.len() as u64 == RETENTION_BATCH;
        let mut ids: Vec<_> = claimed
            .iter()
            .filter(|invite| invite.is_past_retention(retention, now))
            .map(|invite| invite.id)
            .collect();
        // Asked now that the invites are locked: no event can be written for
        // them any more (every change holds its invite's lock), and this
        // statement sees every event committed before it.
        let not_out = store::with_unpublished_events(&txn, &ids).await?;
        // The sequencer numbers on from the highest number present: removing
        // the row that holds it would number new events below the cursors
        // watchers hold. Kept until a newer event is numbered.
        let newest = store::newest_logged_invite(&txn).await?;
        let removable = |id: &Uuid| !not_out.contains(id) && Some(*id) != newest;
        ids.retain(removable);
        let mut events = store::delete_histories(&txn, &ids).await?;
        let invites = store::delete_invites(&txn, &ids).await?;
        let mut deleted = store::claim_retired_histories(&txn, cutoff, RETENTION_BATCH).await?;
        let full = full || deleted.len() as u64 == RETENTION_BATCH;
        let not_out = store::with_unpublished_events(&txn, &deleted).await?;
        deleted.retain(|id| !not_out.contains(id) && Some(*id) != newest);
        events += store::delete_histories(&txn, &deleted).await?;
        // A full claim of which nothing could go (its events still wait)
        // would claim the same rows again: the next sweep tries.
        let more = full && invites + deleted.len() as u64 > 0;
        txn.commit().await?;
        let batch = Retired {
            invites,
            histories: deleted.len() as u64,
            events,
        };
        Ok(Some((batch, more)))
    }
}
