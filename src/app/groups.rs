//! Group commit: calls of one kind that arrive while others are being
//! written share one transaction and one commit.
//!
//! Under load most of a plain write's cost is per transaction (round trips,
//! a WAL flush), not per invite, so sharing it is what lets the service
//! outrun a client doing one plain transaction per call. One group is in
//! flight at a time while the next fills, so a group holds whatever arrived
//! during the last commit.

use std::{
    future::Future,
    sync::{Arc, OnceLock},
};

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::Result;

/// Items in one transaction at most: a few thousand bound parameters, far
/// below either database's limit, and a short transaction.
const MAX_GROUP: usize = 64;
/// Groups written at once: one fills while the other commits. Two made
/// smaller groups and fewer calls per second in the benchmark.
const GROUPS_IN_FLIGHT: usize = 1;
/// Calls waiting for a group; past it a caller waits to queue (the call cap
/// bounds callers long before this).
const QUEUE: usize = 1024;

/// Writes one group in one transaction.
pub(super) trait GroupWriter: Clone + Send + Sync + 'static {
    type Item: Send + 'static;
    type Answer: Send + 'static;

    /// One answer for each item, in the items' order.
    fn write(
        &self,
        items: Vec<Self::Item>,
    ) -> impl Future<Output = Result<Vec<Self::Answer>>> + Send;
}

/// The queue into a group writer, started by the first call.
#[derive(Clone)]
pub(super) struct Groups<W: GroupWriter> {
    writer: W,
    queue: Arc<OnceLock<mpsc::Sender<Waiting<W>>>>,
}

struct Waiting<W: GroupWriter> {
    item: W::Item,
    answer: oneshot::Sender<Result<W::Answer>>,
}

impl<W: GroupWriter> Groups<W> {
    pub(super) fn new(writer: W) -> Self {
        Self {
            writer,
            queue: Arc::default(),
        }
    }

    /// Writes `item` in the next group and answers once it is committed.
    pub(super) async fn submit(&self, item: W::Item) -> Result<W::Answer> {
        let (answer, answered) = oneshot::channel();
        self.queue()
            .send(Waiting { item, answer })
            .await
            .map_err(|_| anyhow::anyhow!("a group writer stopped"))?;
        answered
            .await
            .map_err(|_| anyhow::anyhow!("a group writer dropped a call"))?
    }

    fn queue(&self) -> &mpsc::Sender<Waiting<W>> {
        self.queue.get_or_init(|| {
            let (queue, waiting) = mpsc::channel(QUEUE);
            tokio::spawn(write_groups(self.writer.clone(), waiting));
            queue
        })
    }
}

/// Takes whatever waits (up to a group) whenever a group slot is free.
async fn write_groups<W: GroupWriter>(writer: W, mut waiting: mpsc::Receiver<Waiting<W>>) {
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
        let writer = writer.clone();
        tokio::spawn(async move {
            let (items, answers): (Vec<_>, Vec<_>) =
                group.into_iter().map(|one| (one.item, one.answer)).unzip();
            match writer.write(items).await {
                Ok(written) => {
                    for (answer, outcome) in answers.into_iter().zip(written) {
                        // A caller that left meanwhile has nothing to hear.
                        let _ = answer.send(Ok(outcome));
                    }
                }
                Err(err) => {
                    for answer in answers {
                        let _ = answer.send(Err(err.shared()));
                    }
                }
            }
            drop(slot);
        });
    }
}
