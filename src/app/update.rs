//! UpdateInvite: a pending invite's role, window, uses or metadata.

use super::{Invites, parse_id};
use crate::{
    domain::{Caller, EventKind, Invite, Patch},
    error::Result,
    store::Lookup,
};

impl Invites {
    #[tracing::instrument(skip_all, fields(invite_id = %id))]
    pub async fn update(
        &self,
        caller: &Caller,
        id: &str,
        etag: &str,
        patch: Patch,
    ) -> Result<Invite> {
        let lookup = Lookup::Id(parse_id("invite.id", id)?);
        let policy = self.policy.clone();
        self.change(caller, lookup, EventKind::Updated, |invite, now| {
            invite.update(caller, etag, patch, &policy, now)
        })
        .await
    }
}
