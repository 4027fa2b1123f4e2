//! The use cases, one per RPC: open the transaction, load, ask the domain,
//! write, enqueue the event, commit, wake the relay.

mod create;
mod expiry;
mod idempotency;
mod lifecycle;
mod query;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use tokio::sync::Semaphore;
use uuid::Uuid;

pub use create::Created;
pub use idempotency::{IdempotencyKey, ReplaySeal};
pub use query::{History, Page};

use crate::{
    domain::{InviteError, InviteToken, Policy},
    outbox::RelayWakeup,
    store::{Lookup, Store},
};

#[derive(Clone)]
pub struct Invites {
    store: Store,
    wakeup: RelayWakeup,
    policy: Policy,
    /// Seals the tokens kept for idempotent replays.
    seal: ReplaySeal,
    /// Argon2 runs take ~19 MiB and a core each: at most one per core at a
    /// time, so a burst of passcode calls queues instead of exhausting memory.
    passcode_work: Arc<Semaphore>,
}

/// How a request names an invite, as received.
#[derive(Debug, Clone)]
pub enum InviteRef {
    Id(String),
    Token(String),
}

impl Invites {
    pub fn new(store: Store, wakeup: RelayWakeup, policy: Policy, seal: ReplaySeal) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            store,
            wakeup,
            policy,
            seal,
            passcode_work: Arc::new(Semaphore::new(cores)),
        }
    }

    /// Commits a transaction that wrote events, and wakes the relay for them.
    async fn commit_and_publish(
        &self,
        txn: sea_orm::DatabaseTransaction,
    ) -> crate::error::Result<()> {
        txn.commit().await?;
        self.wakeup.wake();
        Ok(())
    }

    /// Resolves once the store is migrated and the use cases can run.
    pub async fn ready(&self) {
        self.store.migrated().await;
    }

    /// Runs slow passcode work off the async workers, one job per core.
    async fn passcode_job<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> crate::error::Result<T> {
        let _permit = self
            .passcode_work
            .acquire()
            .await
            .map_err(|err| anyhow::Error::new(err).context("passcode work"))?;
        Ok(tokio::task::spawn_blocking(job)
            .await
            .map_err(|err| anyhow::Error::new(err).context("passcode work"))?)
    }
}

/// The clock, at the precision both databases keep (microseconds), so that
/// what a call returns is what a later read returns.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn parse_id(field: &str, raw: &str) -> Result<Uuid, InviteError> {
    if raw.is_empty() {
        return Err(InviteError::invalid(field, "is required"));
    }
    Uuid::parse_str(raw).map_err(|_| InviteError::invalid(field, "is not an invite id (a UUID)"))
}

impl InviteRef {
    fn lookup(&self) -> Result<(Lookup, crate::domain::Reference), InviteError> {
        use crate::domain::Reference;
        match self {
            Self::Id(raw) => Ok((Lookup::Id(parse_id("id", raw)?), Reference::Id)),
            Self::Token(raw) => {
                let token =
                    InviteToken::parse(raw).map_err(|why| InviteError::invalid("token", why))?;
                Ok((Lookup::Token(token.digest()), Reference::Token))
            }
        }
    }
}
