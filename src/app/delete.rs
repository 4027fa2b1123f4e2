//! DeleteInvite: the invite goes, its history stays.

use super::{Invites, change::lock_existing, now, parse_id};
use crate::{
    domain::{Caller, EventKind},
    error::Result,
    outbox,
    store::{self, Lookup},
};

impl Invites {
    /// Deletes the invite; its history stays, ending with `invite.deleted`.
    #[tracing::instrument(skip_all, fields(invite_id = %id))]
    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<()> {
        let lookup = Lookup::Id(parse_id("id", id)?);
        let now = now();
        let txn = self.store.begin().await?;
        let mut invite = lock_existing(&txn, &lookup).await?;
        invite.ensure_manageable(caller)?;
        let event = outbox::event_for(
            EventKind::Deleted,
            &mut invite,
            Some(&caller.user_id),
            None,
            now,
        );
        store::delete_invite(&txn, invite.id).await?;
        store::enqueue_event(&txn, event).await?;
        self.commit_and_publish(txn).await?;
        Ok(())
    }
}
