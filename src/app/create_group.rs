//! Group commit for CreateInvite: creates that arrive while others are being
//! written share one transaction, one insert per table and one commit.
//!
//! A lone create costs four round trips and a WAL flush; under load most of
//! that is per transaction, not per invite, so sharing it is what lets the
//! service outrun a client doing one plain transaction per create. Only the
//! plain case is grouped: an invite that a unique index refuses (a pending
//! one for the same invitee exists) goes back to its caller, who takes the
//! one-at-a-time path with its duplicate and expiry rules.

use std::{
    collections::HashSet,
    sync::{Arc, OnceLock},
};

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use crate::{
    domain::{Caller, EventKind, Invite, InviteToken, TokenDigest},
    error::Result,
    outbox::{self, RelayWakeup},
    store::{self, NewEvent, Store},
};

/// Invites in one transaction at most: a few hundred bound parameters, far
/// below either database's limit, and a short transaction.
const MAX_GROUP: usize = 64;
/// Groups written at once: one fills while the other commits.
const GROUPS_IN_FLIGHT: usize = 1;
/// Creates waiting for a group; past it a caller waits to queue (the call
/// cap bounds callers long before this).
const QUEUE: usize = 1024;

/// The queue into the group writer, started by the first create.
#[derive(Clone)]
pub(super) struct CreateGroups {
    store: Store,
    wakeup: RelayWakeup,
    queue: Arc<OnceLock<mpsc::Sender<Waiting>>>,
}

struct Waiting {
    invite: Invite,
    token: TokenDigest,
    event: Option<NewEvent>,
    answer: oneshot::Sender<Result<bool>>,
}

impl CreateGroups {
    pub(super) fn new(store: Store, wakeup: RelayWakeup) -> Self {
        Self {
            store,
            wakeup,
            queue: Arc::default(),
        }
    }

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
        let token = InviteToken::generate();
        // Built here, in the call's task: the event carries its request id.
        let event = outbox::event_for(
            EventKind::Created,
            &mut invite,
            Some(&caller.user_id),
            notify.then_some(&token),
            now,
        );
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting {
            invite: invite.clone(),
            token: token.digest(),
            event: Some(event),
            answer,
        };
        self.queue()
            .send(waiting)
            .await
            .map_err(|_| anyhow::anyhow!("the create group writer stopped"))?;
        let inserted = answered
            .await
            .map_err(|_| anyhow::anyhow!("the create group writer dropped a create"))??;
        Ok(inserted.then_some((invite, token)))
    }

    fn queue(&self) -> &mpsc::Sender<Waiting> {
        self.queue.get_or_init(|| {
            let (queue, waiting) = mpsc::channel(QUEUE);
            tokio::spawn(write_groups(
                self.store.clone(),
                self.wakeup.clone(),
                waiting,
            ));
            queue
        })
    }
}

/// Takes whatever waits (up to a group) whenever a group slot is free.
async fn write_groups(store: Store, wakeup: RelayWakeup, mut waiting: mpsc::Receiver<Waiting>) {
    let slots = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut group = Vec::with_capacity(MAX_GROUP);
        if waiting.recv_many(&mut group, MAX_GROUP).await == 0 {
            return;
        }
        // A caller gone meanwhile (deadline, cancel) is not written for.
        group.retain(|one| !one.answer.is_closed());
        if group.is_empty() {
            continue;
        }
        let (store, wakeup) = (store.clone(), wakeup.clone());
        tokio::spawn(async move {
            let written = write_group(&store, &mut group).await;
            if matches!(written, Ok(ref inserted) if !inserted.is_empty()) {
                wakeup.wake();
            }
            answer(group, written);
            drop(slot);
        });
    }
}

/// One transaction for the whole group; the ids the unique index let in.
async fn write_group(store: &Store, group: &mut [Waiting]) -> Result<HashSet<Uuid>> {
    // Index entries taken in one order by every group and batch, so two
    // transactions naming the same invitees queue instead of deadlocking.
    group.sort_by_cached_key(|one| one.invite.invitee.key());
    let started = std::time::Instant::now();
    let txn = store.begin().await?;
    let rows: Vec<_> = group.iter().map(|one| (&one.invite, &one.token)).collect();
    let inserted: HashSet<Uuid> = store::try_insert_invites(&txn, &rows)
        .await?
        .into_iter()
        .collect();
    let events = group
        .iter_mut()
        .filter(|one| inserted.contains(&one.invite.id))
        .filter_map(|one| one.event.take())
        .collect();
    store::enqueue_events(&txn, events).await?;
    txn.commit().await?;
    tracing::debug!(
        group = group.len(),
        created = inserted.len(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "create group committed"
    );
    Ok(inserted)
}

fn answer(group: Vec<Waiting>, written: Result<HashSet<Uuid>>) {
    for one in group {
        let outcome = match &written {
            Ok(inserted) => Ok(inserted.contains(&one.invite.id)),
            Err(err) => Err(err.shared()),
        };
        // A caller that left meanwhile has nothing to hear.
        let _ = one.answer.send(outcome);
    }
}
