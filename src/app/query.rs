//! The reads: GetInvite, GetInviteByToken, ListInvites and ListInviteEvents,
//! each page cut to what one answer may hold.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

use super::{
    Invites,
    answer_size::{ANSWER_BUDGET, entry_len, invite_len},
    parse_id,
};
use crate::{
    domain::{
        Caller, Invite, InviteError, InviteToken,
        paging::{ListQuery, RawListRequest, cut_page},
    },
    error::Result,
    outbox,
    store::{self, Lookup, StoredEvent},
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
        Ok(invite.seen_by(caller, None))
    }

    #[tracing::instrument(skip_all)]
    pub async fn list(&self, caller: &Caller, raw: RawListRequest) -> Result<Page> {
        let query = ListQuery::parse(raw)?;
        let (mut invites, total_size) =
            store::list_invites(self.store.conn()?, &query, caller).await?;
        let has_more = cut_page(&mut invites, query.page_size, ANSWER_BUDGET, invite_len);
        let next_page_token = has_more
            .then(|| invites.last().map(|last| query.next_page_token(last.id)))
            .flatten();
        Ok(Page {
            invites: invites
                .into_iter()
                .map(|invite| invite.seen_by(caller, None))
                .collect(),
            next_page_token,
            total_size,
        })
    }
}

/// One page of an invite's history.
pub struct History {
    pub events: Vec<StoredEvent>,
    pub next_page_token: Option<String>,
}

const DEFAULT_HISTORY_PAGE: u64 = 100;
const MAX_HISTORY_PAGE: u64 = 1000;

impl Invites {
    #[tracing::instrument(skip_all)]
    pub async fn get_by_token(&self, caller: &Caller, token: &str) -> Result<Invite> {
        self.limits.take_token_use(caller)?;
        let token = InviteToken::parse(token).map_err(|why| InviteError::invalid("token", why))?;
        let conn = self.store.conn()?;
        let invite = store::read_invite(conn, &Lookup::Token(token.digest()))
            .await?
            .ok_or(InviteError::NotFound)?;
        invite.ensure_visible_by_token(caller)?;
        let record = store::caller_record(conn, &invite, &caller.user_id).await?;
        Ok(invite.seen_by(caller, record.accepted_at))
    }

    /// The invite's events, oldest first: its audit trail, for its inviter
    /// and admins only (the events name everyone who used or revoked it). A
    /// deleted invite's history stays theirs, judged by its last known state.
    #[tracing::instrument(skip_all, fields(invite_id = %invite_id))]
    pub async fn history(
        &self,
        caller: &Caller,
        invite_id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<History> {
        let id = parse_id("invite_id", invite_id)?;
        let page_size = match page_size {
            n if n < 0 => {
                return Err(InviteError::invalid("page_size", "must not be negative").into());
            }
            0 => DEFAULT_HISTORY_PAGE,
            n => (n as u64).min(MAX_HISTORY_PAGE),
        };
        let after = match page_token {
            "" => 0,
            token => decode_history_token(token, id).ok_or_else(|| {
                InviteError::invalid("page_token", "is not a page token of this history")
            })?,
        };
        let conn = self.store.conn()?;
        match store::find_invite(conn, id).await? {
            Some(invite) => invite.ensure_manageable(caller)?,
            None => {
                let last = store::latest_event(conn, id)
                    .await?
                    .ok_or(InviteError::NotFound)?;
                let inviter = outbox::recorded_inviter(&last)?;
                if !caller.is_admin && inviter != caller.user_id.as_str() {
                    return Err(InviteError::NotFound.into());
                }
            }
        }
        let mut events = store::invite_history(conn, id, after, page_size + 1).await?;
        // Served as stored: an event's payload is its share of the answer.
        let has_more = cut_page(&mut events, page_size, ANSWER_BUDGET, |event| {
            entry_len(event.payload.len())
        });
        let next_page_token = has_more
            .then(|| {
                events
                    .last()
                    .map(|last| encode_history_token(id, last.sequence))
            })
            .flatten();
        Ok(History {
            events,
            next_page_token,
        })
    }
}

fn encode_history_token(invite_id: Uuid, sequence: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{invite_id}/{sequence}"))
}

fn decode_history_token(token: &str, invite_id: Uuid) -> Option<i64> {
    let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let (id, sequence) = decoded.split_once('/')?;
    (Uuid::parse_str(id).ok()? == invite_id).then_some(())?;
    sequence.parse().ok()
}
