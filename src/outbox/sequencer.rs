//! Numbers committed events in the order they became visible
//! (`log_position`, see `store::event_log`), so that watchers read a log that
//! never skips a late commit. Runs beside the relay and apart from it:
//! watchers keep receiving events while RabbitMQ is down.
//!
//! Implementation notes: one sequencer at a time across replicas, each batch
//! a short transaction holding a PostgreSQL advisory lock (SQLite is one
//! process). Whichever replica takes the lock numbers every replica's rows,
//! so a commit is numbered within milliseconds wherever it was made; this
//! replica's watchers are told at once, other replicas' at their next poll.

use std::time::Duration;

use tokio::sync::watch;

use super::CommitWakeup;
use crate::{error::Result, store::Store};

/// Rows numbered per transaction: one UPDATE each, short enough not to hold
/// the rows the relay stamps for long.
const BATCH_SIZE: u64 = 1000;
/// The least time between two batches that numbered rows. Under load a
/// commit wakes the sequencer hundreds of times a second; numbering each on
/// its own cost a transaction and a WAL flush apiece, beside the callers'
/// own. Waiting this long lets the next batch take every commit made
/// meanwhile, at the price of watchers seeing an event this much later.
const COALESCE: Duration = Duration::from_millis(10);
/// Catches commits of other replicas, whose wake-ups go elsewhere.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The lock is held only while a batch runs: another replica is numbering
/// now and may not have seen this replica's last commit.
const LEADER_RETRY: Duration = Duration::from_millis(50);
/// A failed batch (the database is away) is tried again after this.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Tells watchers that the log grew: its value counts the batches that
/// numbered rows in this process.
#[derive(Clone)]
pub struct LogGrowth(watch::Sender<u64>);

impl Default for LogGrowth {
    fn default() -> Self {
        Self(watch::Sender::new(0))
    }
}

impl LogGrowth {
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }

    fn grew(&self) {
        self.0.send_modify(|batches| *batches += 1);
    }
}

enum Batch {
    Numbered(u64),
    OtherReplicaLeads,
}

pub struct Sequencer {
    store: Store,
    wakeup: CommitWakeup,
    growth: LogGrowth,
}

impl Sequencer {
    pub fn new(store: Store, wakeup: CommitWakeup, growth: LogGrowth) -> Self {
        Self {
            store,
            wakeup,
            growth,
        }
    }

    /// Numbers what commits until `stop` turns true. Nothing is left to
    /// flush: the next start numbers what this one did not.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tokio::select! {
            _ = self.store.migrated() => {}
            _ = stop.changed() => return,
        }
        let mut failing = false;
        while !*stop.borrow() {
            let pause = match self.batch().await {
                Ok(Batch::Numbered(n)) => {
                    if std::mem::replace(&mut failing, false) {
                        tracing::info!("numbering events for watchers works again");
                    }
                    if n == BATCH_SIZE {
                        self.growth.grew();
                        continue;
                    }
                    if n > 0 {
                        self.growth.grew();
                        // A wake-up that comes meanwhile is kept (a permit).
                        tokio::select! {
                            () = tokio::time::sleep(COALESCE) => {}
                            // Seen here, the change would not end the wait below.
                            _ = stop.changed() => continue,
                        }
                    }
                    POLL_INTERVAL
                }
                Ok(Batch::OtherReplicaLeads) => LEADER_RETRY,
                Err(err) => {
                    if !failing {
                        tracing::warn!(error = %err, "numbering events for watchers failed; will retry");
                        failing = true;
                    }
                    RETRY_AFTER_FAILURE
                }
            };
            tokio::select! {
                () = self.wakeup.sequencer_woken() => {}
                () = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One batch, unless another sequencer runs one now.
    async fn batch(&self) -> Result<Batch> {
        let txn = self.store.begin().await?;
        if !crate::store::try_lead_sequencer(&txn).await? {
            return Ok(Batch::OtherReplicaLeads);
        }
        let numbered = crate::store::sequence_batch(&txn, BATCH_SIZE).await?;
        txn.commit().await?;
        Ok(Batch::Numbered(numbered))
    }
}

/// Numbers every event committed before this call, and returns the highest
/// number: where "from now" starts. Reading the highest number alone would
/// not do: an event committed a moment ago may not be numbered yet, and it
/// would then be streamed as if it came after. Batches run here start after
/// the call did, so they see every such event. (The caller's deadline
/// bounds the wait for another sequencer's batch.)
pub async fn catch_up(store: &Store, growth: &LogGrowth) -> Result<i64> {
    loop {
        let txn = store.begin().await?;
        if !crate::store::try_lead_sequencer(&txn).await? {
            drop(txn);
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let numbered = crate::store::sequence_batch(&txn, BATCH_SIZE).await?;
        let head = if numbered < BATCH_SIZE {
            Some(crate::store::log_head(&txn).await?)
        } else {
            None
        };
        txn.commit().await?;
        if numbered > 0 {
            growth.grew();
        }
        if let Some(head) = head {
            return Ok(head);
        }
    }
}
