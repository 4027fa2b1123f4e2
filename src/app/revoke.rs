//! RevokeInvite: the inviter (or an admin) takes a pending invite back.

use super::{Invites, parse_id};
use crate::{
    domain::{Caller, EventKind, Invite},
    error::Result,
    store::Lookup,
};

impl Invites {
    #[tracing::instrument(skip_all, fields(invite_id = %id))]
    pub async fn revoke(&self, caller: &Caller, id: &str, reason: &str) -> Result<Invite> {
        let lookup = Lookup::Id(parse_id("id", id)?);
        self.change(caller, lookup, EventKind::Revoked, |invite, now| {
            invite.revoke(caller, reason, now)
        })
        .await
    }
}
