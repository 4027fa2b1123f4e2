//! The shape Reject, Revoke and Update share: lock the invite, let the
//! domain decide and change it, save it, record its event, commit.

use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;

use super::{Invites, now};
use crate::{
    domain::{Caller, EventKind, Invite, InviteError},
    error::Result,
    outbox,
    store::{self, Lookup},
};

impl Invites {
    /// One change of one invite, as `decide` makes it.
    pub(super) async fn change(
        &self,
        caller: &Caller,
        lookup: Lookup,
        kind: EventKind,
        decide: impl FnOnce(&mut Invite, DateTime<Utc>) -> Result<(), InviteError>,
    ) -> Result<Invite> {
        let now = now();
        let txn = self.store.begin().await?;
        let mut invite = lock_existing(&txn, &lookup).await?;
        decide(&mut invite, now)?;
        let event = outbox::event_for(kind, &mut invite, Some(&caller.user_id), None, now);
        store::save_invite(&txn, &invite).await?;
        store::enqueue_event(&txn, event).await?;
        self.commit_and_publish(txn).await?;
        Ok(invite)
    }
}

/// The invite the lookup names, locked for this transaction.
pub(super) async fn lock_existing(txn: &DatabaseTransaction, lookup: &Lookup) -> Result<Invite> {
    Ok(store::lock_invite(txn, lookup)
        .await?
        .ok_or(InviteError::NotFound)?)
}
