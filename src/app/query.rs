use super::{Invites, parse_id};
use crate::{
    domain::{
        Caller, Invite, InviteError,
        paging::{ListQuery, RawListRequest},
    },
    error::Result,
    store,
};

pub struct Page {
    pub invites: Vec<Invite>,
    pub next_page_token: Option<String>,
    pub total_size: u64,
}

impl Invites {
    #[tracing::instrument(skip_all, fields(invite_id = %id))]
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Invite> {
        let id = parse_id("id", id)?;
        let invite = store::find_invite(self.store.conn()?, id)
            .await?
            .ok_or(InviteError::NotFound)?;
        invite.ensure_visible(caller)?;
        Ok(invite)
    }

    #[tracing::instrument(skip_all)]
    pub async fn list(&self, caller: &Caller, raw: RawListRequest) -> Result<Page> {
        let query = ListQuery::parse(raw)?;
        let (mut invites, total_size) =
            store::list_invites(self.store.conn()?, &query, caller).await?;
        let has_more = invites.len() as u64 > query.page_size;
        invites.truncate(query.page_size as usize);
        let next_page_token = has_more
            .then(|| invites.last().map(|last| query.next_page_token(last.id)))
            .flatten();
        Ok(Page {
            invites,
            next_page_token,
            total_size,
        })
    }
}
