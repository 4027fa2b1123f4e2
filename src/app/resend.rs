//! ResendInvite: a new token and expiry for a pending invite.

use super::{Invites, change::lock_existing, now, parse_id};
use crate::{
    domain::{Caller, EventKind, Invite, InviteToken},
    error::Result,
    outbox,
    store::{self, Lookup},
};

impl Invites {
    /// A new token (the old one stops working at this commit), a new expiry,
    /// no more lockout; `invite.resent` carries the token when asked to notify.
    #[tracing::instrument(skip_all, fields(invite_id = %id))]
    pub async fn resend(
        &self,
        caller: &Caller,
        id: &str,
        ttl: Option<chrono::Duration>,
        notify: bool,
    ) -> Result<(Invite, InviteToken)> {
        let lookup = Lookup::Id(parse_id("id", id)?);
        let now = now();
        let txn = self.store.begin().await?;
        let mut invite = lock_existing(&txn, &lookup).await?;
        invite.resend(caller, ttl, &self.policy, now)?;
        store::forget_passcode_failures(&txn, invite.id).await?;
        let token = InviteToken::generate();
        let event = outbox::event_for(
            EventKind::Resent,
            &mut invite,
            Some(&caller.user_id),
            notify.then_some(&token),
            now,
        );
        store::save_invite(&txn, &invite).await?;
        store::replace_token(&txn, invite.id, &token.digest()).await?;
        store::enqueue_event(&txn, event).await?;
        self.commit_and_publish(txn).await?;
        Ok((invite, token))
    }
}
