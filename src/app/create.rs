use uuid::Uuid;

use super::{Invites, now};
use crate::{
    domain::{Caller, EventKind, Invite, InviteDraft, InviteToken},
    error::Result,
    outbox, store,
};

impl Invites {
    /// Creates a pending invite and its `invite.created` event. The token is
    /// returned here and, with `notify`, carried by the event; never stored.
    #[tracing::instrument(skip_all, fields(invite_id))]
    pub async fn create(
        &self,
        caller: &Caller,
        draft: InviteDraft,
        notify: bool,
    ) -> Result<(Invite, InviteToken)> {
        let now = now();
        let mut invite = Invite::create(draft, caller, now, &self.policy, Uuid::now_v7())?;
        tracing::Span::current().record("invite_id", tracing::field::display(invite.id));
        let token = InviteToken::generate();
        let event = outbox::event_for(
            EventKind::Created,
            &mut invite,
            Some(&caller.user_id),
            notify.then_some(&token),
            now,
        );
        let txn = self.store.begin().await?;
        store::insert_invite(&txn, &invite, &token.digest()).await?;
        store::enqueue_event(&txn, event).await?;
        txn.commit().await?;
        self.wakeup.wake();
        Ok((invite, token))
    }
}
