//! AcceptInvite in groups (see `groups`): the named invites locked in one
//! statement, each accept decided by the domain one after another in
//! arrival order, then one insert per table, one upsert of the changed invites
//! and one commit.
//!
//! Decided in order on the same in-memory invite, two accepts of an invite's
//! last use in one group still have one winner, as row locks give across
//! groups. Only accepts without a passcode are grouped. An invite that has a
//! passcode (its caller's path counts tries and locks callers out), that
//! another transaction holds, or that is not found goes back to its
//! caller's one-at-a-time path.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use super::{
    groups::{GroupWriter, Groups},
    now,
};
use crate::{
    domain::{
        Acceptance, Caller, CallerRecord, EventKind, Invite, InviteError, PasscodeProof, Reference,
        TokenDigest,
    },
    error::Result,
    outbox::{self, CommitWakeup},
    store::{self, Lookup, Store},
    telemetry::RequestId,
};

pub(super) type AcceptGroups = Groups<AcceptWriter>;

#[derive(Clone)]
pub(super) struct AcceptWriter {
    store: Store,
    wakeup: CommitWakeup,
}

/// One caller's accept, as the call named it.
pub(super) struct Accept {
    pub caller: Caller,
    pub lookup: Lookup,
    pub via: Reference,
    /// The call's, for its event.
    pub request_id: Option<RequestId>,
}

/// The invite as the caller sees it after their accept; none when the
/// caller's own path is to decide it.
pub(super) type Accepted = Result<Option<Invite>, InviteError>;

impl AcceptWriter {
    pub(super) fn groups(store: Store, wakeup: CommitWakeup) -> AcceptGroups {
        Groups::new(Self { store, wakeup })
    }
}

/// What one group writes once every accept is decided, and who has
/// accepted what so far.
struct Writes {
    accepted: HashMap<(Uuid, String), DateTime<Utc>>,
    redeemed: Vec<(Uuid, crate::domain::Id)>,
    events: Vec<store::NewEvent>,
    changed: HashSet<usize>,
}

impl GroupWriter for AcceptWriter {
    type Item = Accept;
    type Answer = Accepted;

    async fn write(&self, group: Vec<Accept>) -> Result<Vec<Accepted>> {
        let now = now();
        let txn = self.store.begin().await?;
        let ids: Vec<Uuid> = group.iter().filter_map(|one| one.lookup.id()).collect();
        let tokens: Vec<&TokenDigest> = group.iter().filter_map(|one| one.lookup.token()).collect();
        let mut invites = store::lock_invites(&txn, &ids, &tokens).await?;
        let mut writes = Writes {
            accepted: earlier_acceptances(&txn, &group, &invites).await?,
            redeemed: Vec::new(),
            events: Vec::new(),
            changed: HashSet::new(),
        };
        let mut answers = Vec::with_capacity(group.len());
        for one in &group {
            let named = invites
                .iter()
                .position(|(invite, digest)| one.lookup.names(invite.id, digest));
            // Not found, or held by another transaction (skipped), or with a
            // passcode: the caller's own path decides.
            let Some(at) = named.filter(|&at| invites[at].0.passcode_hash.is_none()) else {
                answers.push(Ok(None));
                continue;
            };
            let invite = &mut invites[at].0;
            answers.push(writes.decide(one, invite, at, now));
        }
        store::record_redemptions(&txn, &writes.redeemed, now).await?;
        let changed: Vec<_> = (writes.changed.iter())
            .map(|&at| (&invites[at].0, &invites[at].1))
            .collect();
        store::save_invites(&txn, &changed).await?;
        let published = !writes.events.is_empty();
        store::enqueue_events(&txn, writes.events).await?;
        txn.commit().await?;
        if published {
            self.wakeup.wake();
        }
        Ok(answers)
    }
}

/// Who of the group has accepted which of its invites before. Only an
/// invite someone has used can have an acceptance: a group of first
/// accepts (the usual case) skips the read, one round trip of seven.
async fn earlier_acceptances(
    txn: &impl ConnectionTrait,
    group: &[Accept],
    invites: &[(Invite, TokenDigest)],
) -> Result<HashMap<(Uuid, String), DateTime<Utc>>> {
    let used: Vec<Uuid> = (invites.iter())
        .filter(|(invite, _)| invite.use_count > 0)
        .map(|(invite, _)| invite.id)
        .collect();
    if used.is_empty() {
        return Ok(HashMap::new());
    }
    let users: Vec<String> = group
        .iter()
        .map(|one| one.caller.user_id.to_string())
        .collect();
    store::redemptions_of(txn, &used, &users).await
}

impl Writes {
    /// The domain's answer to one accept of the group, on the invite as the
    /// accepts before it in the group left it.
    fn decide(
        &mut self,
        one: &Accept,
        invite: &mut Invite,
        at: usize,
        now: DateTime<Utc>,
    ) -> Accepted {
        let key = (invite.id, one.caller.user_id.to_string());
        let mut record = CallerRecord {
            accepted_at: self.accepted.get(&key).copied(),
            passcode_failures: 0,
        };
        match invite.accept(
            &one.caller,
            one.via,
            &mut record,
            PasscodeProof::NotGiven,
            now,
        )? {
            Acceptance::New => {
                self.accepted.insert(key, now);
                self.redeemed.push((invite.id, one.caller.user_id.clone()));
                let mut event = || {
                    outbox::event_for(
                        EventKind::Accepted,
                        invite,
                        Some(&one.caller.user_id),
                        None,
                        now,
                    )
                };
                self.events.push(match one.request_id.clone() {
                    Some(id) => id.in_scope(event),
                    None => event(),
                });
                self.changed.insert(at);
            }
            Acceptance::Repeated => {}
            // Without a passcode given no try is made; the caller's own path
            // would answer the same, so send it there rather than guess.
            Acceptance::PasscodeRejected => return Ok(None),
        }
        Ok(Some(
            invite.clone().seen_by(&one.caller, record.accepted_at),
        ))
    }
}

impl Lookup {
    fn id(&self) -> Option<Uuid> {
        match self {
            Self::Id(id) => Some(*id),
            Self::Token(_) => None,
        }
    }

    fn token(&self) -> Option<&TokenDigest> {
        match self {
            Self::Token(digest) => Some(digest),
            Self::Id(_) => None,
        }
    }

    /// Whether this names the invite with `id` and stored token `digest`;
    /// tokens compared in constant time.
    fn names(&self, id: Uuid, digest: &TokenDigest) -> bool {
        match self {
            Self::Id(wanted) => *wanted == id,
            Self::Token(wanted) => wanted.matches(digest),
        }
    }
}
