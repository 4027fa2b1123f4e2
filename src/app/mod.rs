//! The use cases, one per RPC: open the transaction, load, ask the domain,
//! write, enqueue the event, commit, wake the relay.

mod accept;
mod accept_group;
mod answer_size;
mod change;
mod create;
mod create_group;
mod delete;
mod dry_run;
mod expiry;
mod groups;
mod idempotency;
mod limits;
mod passcodes;
mod query;
mod reject;
mod replay;
mod resend;
mod retention;
mod revoke;
mod update;
mod watch;

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

pub use create::Created;
pub use dry_run::Preview;
pub use idempotency::{IdempotencyKey, ReplaySeal};
pub use limits::RateLimits;
pub use query::{History, Page};
pub use retention::Retired;
pub use watch::{WatchEnd, WatchItem, WatchedEvent, Watchers};

use crate::{
    domain::{InviteError, InviteToken, Policy},
    outbox::CommitWakeup,
    store::{Lookup, Store},
};

#[derive(Clone)]
pub struct Invites {
    store: Store,
    wakeup: CommitWakeup,
    policy: Policy,
    /// Seals the tokens kept for idempotent replays.
    seal: ReplaySeal,
    passcodes: passcodes::PasscodeWork,
    limits: RateLimits,
    watchers: Watchers,
    creates: create_group::CreateGroups,
    accepts: accept_group::AcceptGroups,
}

/// How a request names an invite, as received.
#[derive(Debug, Clone)]
pub enum InviteRef {
    Id(String),
    Token(String),
}

impl Invites {
    pub fn new(store: Store, wakeup: CommitWakeup, policy: Policy, seal: ReplaySeal) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            creates: create_group::CreateWriter::groups(store.clone(), wakeup.clone()),
            accepts: accept_group::AcceptWriter::groups(store.clone(), wakeup.clone()),
            store,
            wakeup,
            policy,
            seal,
            passcodes: passcodes::PasscodeWork::new(cores),
            limits: RateLimits::default(),
            watchers: Watchers::default(),
        }
    }

    /// Feeds WatchInvites streams from these (none grows the log otherwise).
    pub fn with_watchers(self, watchers: Watchers) -> Self {
        Self { watchers, ..self }
    }

    /// Limits each caller's creates and token uses (none by default).
    pub fn with_rate_limits(self, limits: RateLimits) -> Self {
        Self { limits, ..self }
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

    /// How many passcodes were checked against a hash since start-up.
    pub fn passcode_verifications(&self) -> u64 {
        self.passcodes.verifications()
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

impl Invites {
    /// How the request names the invite; a token is taken from the caller's
    /// allowance of token uses first, so guessing tokens is slow.
    fn lookup(
        &self,
        caller: &crate::domain::Caller,
        reference: &InviteRef,
    ) -> crate::error::Result<(Lookup, crate::domain::Reference)> {
        if let InviteRef::Token(_) = reference {
            self.limits.take_token_use(caller)?;
        }
        Ok(reference.lookup()?)
    }
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
