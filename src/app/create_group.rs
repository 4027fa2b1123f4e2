//! CreateInvite in groups (see `groups`): one multi-row insert of invites,
//! one of their events, one commit.
//!
//! Only the plain case is grouped: an invite that a unique index refuses (a
//! pending one for the same invitee exists) goes back to its caller, who
//! takes the one-at-a-time path with its duplicate and expiry rules.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    create::created_event,
    groups::{GroupWriter, Groups},
};
use crate::{
    domain::{Caller, Invite, InviteToken, TokenDigest},
    error::Result,
    outbox::CommitWakeup,
    store::{self, NewEvent, Store},
};

pub(super) type CreateGroups = Groups<CreateWriter>;

#[derive(Clone)]
pub(super) struct CreateWriter {
    store: Store,
    wakeup: CommitWakeup,
}

pub(super) struct NewInvite {
    invite: Invite,
    token: TokenDigest,
    event: Option<NewEvent>,
}

impl CreateWriter {
    pub(super) fn groups(store: Store, wakeup: CommitWakeup) -> CreateGroups {
        Groups::new(Self { store, wakeup })
    }
}

impl CreateGroups {
    /// Writes `invite` and its `invite.created` event in the next group:
    /// the invite as stored and its token, or none when a unique index
    /// refused it (nothing was written for it then).
    pub(super) async fn create(
        &self,
        caller: &Caller,
        mut invite: Invite,
        notify: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<(Invite, InviteToken)>> {
        // Built here, in the call's task: the event carries its request id.
        let (token, event) = created_event(&mut invite, caller, notify, now);
        let inserted = self
            .submit(NewInvite {
                invite: invite.clone(),
                token: token.digest(),
                event: Some(event),
            })
            .await?;
        Ok(inserted.then_some((invite, token)))
    }
}

impl GroupWriter for CreateWriter {
    type Item = NewInvite;
    /// Whether the invite was inserted.
    type Answer = bool;

    async fn write(&self, mut group: Vec<NewInvite>) -> Result<Vec<bool>> {
        // Index entries taken in one order by every group and batch, so two
        // transactions naming the same invitees queue instead of deadlocking.
        let mut order: Vec<usize> = (0..group.len()).collect();
        order.sort_by_cached_key(|&at| group[at].invite.invitee.key());
        let started = std::time::Instant::now();
        let txn = self.store.begin().await?;
        let rows: Vec<_> = order
            .iter()
            .map(|&at| (&group[at].invite, &group[at].token))
            .collect();
        let inserted: HashSet<Uuid> = store::try_insert_invites(&txn, &rows)
            .await?
            .into_iter()
            .collect();
        let events: Vec<_> = group
            .iter_mut()
            .filter(|one| inserted.contains(&one.invite.id))
            .filter_map(|one| one.event.take())
            .collect();
        store::enqueue_events(&txn, events).await?;
        txn.commit().await?;
        if !inserted.is_empty() {
            self.wakeup.wake();
        }
        tracing::debug!(
            group = group.len(),
            created = inserted.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "create group committed"
        );
        Ok(group
            .iter()
            .map(|one| inserted.contains(&one.invite.id))
            .collect())
    }
}
