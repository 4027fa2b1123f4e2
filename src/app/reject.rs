//! RejectInvite: the invitee declines.

use super::{InviteRef, Invites};
use crate::{
    domain::{Caller, EventKind, Invite},
    error::Result,
};

impl Invites {
    #[tracing::instrument(skip_all)]
    pub async fn reject(&self, caller: &Caller, reference: InviteRef) -> Result<Invite> {
        let (lookup, via) = self.lookup(caller, &reference)?;
        let invite = self
            .change(caller, lookup, EventKind::Rejected, |invite, now| {
                invite.reject(caller, via, now)
            })
            .await?;
        Ok(invite.seen_by(caller, None))
    }
}
