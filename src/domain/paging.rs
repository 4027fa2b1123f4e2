//! ListInvites' filters and its opaque page tokens; where any page stops.
//!
//! Pages are keyset pages over the invite id: ids are UUIDv7, so "newest first"
//! is "id descending", and a page token is the last id served. An insert made
//! while a client pages can neither shift a row onto the next page twice nor
//! push one out, as offsets would.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Email, Id, Identifier, InviteError, InviteStatus, error::Violations};

fn optional(raw: &str) -> Option<&str> {
    (!raw.is_empty()).then_some(raw)
}

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 500;

/// The request as received.
#[derive(Debug, Clone, Default)]
pub struct RawListRequest {
    pub target_type: String,
    pub target_id: String,
    pub status: Option<InviteStatus>,
    pub role: String,
    pub invitee_email: String,
    pub inviter_id: String,
    pub page_size: i32,
    pub page_token: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    pub target_type: Option<Identifier>,
    pub target_id: Option<Id>,
    pub status: Option<InviteStatus>,
    pub role: Option<Identifier>,
    pub invitee_email: Option<Email>,
    pub inviter_id: Option<Id>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filter: ListFilter,
    pub page_size: u64,
    /// Serve invites older than this one.
    pub after: Option<Uuid>,
}

impl ListQuery {
    pub fn parse(raw: RawListRequest) -> Result<Self, InviteError> {
        let mut bad = Violations::default();
        let filter = ListFilter {
            target_type: optional(&raw.target_type)
                .and_then(|v| bad.check("target_type", Identifier::parse(v))),
            target_id: optional(&raw.target_id).and_then(|v| bad.check("target_id", Id::parse(v))),
            status: raw.status,
            role: optional(&raw.role).and_then(|v| bad.check("role", Identifier::parse(v))),
            invitee_email: optional(&raw.invitee_email)
                .and_then(|v| bad.check("invitee_email", Email::parse(v))),
            inviter_id: optional(&raw.inviter_id)
                .and_then(|v| bad.check("inviter_id", Id::parse(v))),
        };
        if !raw.target_id.is_empty() && raw.target_type.is_empty() {
            bad.add("target_type", "is required when target_id is given");
        }
        let page_size = match raw.page_size {
            n if n < 0 => {
                bad.add("page_size", "must not be negative");
                0
            }
            0 => DEFAULT_PAGE_SIZE,
            n => (n as u64).min(MAX_PAGE_SIZE),
        };
        let after = optional(&raw.page_token)
            .and_then(|token| bad.check("page_token", decode_page_token(token, &filter)));
        bad.into_result()?;
        Ok(Self {
            filter,
            page_size,
            after,
        })
    }

    /// The token for the page after one that ended with `last_id`.
    pub fn next_page_token(&self, last_id: Uuid) -> String {
        URL_SAFE_NO_PAD.encode(format!("{last_id}.{}", fingerprint(&self.filter)))
    }
}

/// Ties a token to the filters it was made for, so that reusing it with other
/// filters is refused rather than silently serving a wrong page.
fn fingerprint(filter: &ListFilter) -> String {
    let canonical = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        filter.target_type.as_ref().map(Identifier::as_str),
        filter.target_id.as_ref().map(Id::as_str),
        filter.status.map(InviteStatus::as_str),
        filter.role.as_ref().map(Identifier::as_str),
        filter.invitee_email.as_ref().map(Email::normalized),
        filter.inviter_id.as_ref().map(Id::as_str),
    );
    let hash = Sha256::digest(canonical.as_bytes());
    hash[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_page_token(token: &str, filter: &ListFilter) -> Result<Uuid, String> {
    let not_ours = || "is not a page token of this list".to_string();
    let decoded = URL_SAFE_NO_PAD.decode(token).map_err(|_| not_ours())?;
    let decoded = String::from_utf8(decoded).map_err(|_| not_ours())?;
    let (id, print) = decoded.split_once('.').ok_or_else(not_ours)?;
    if print != fingerprint(filter) {
        return Err("was made for other filters: start again without a page token".into());
    }
    Uuid::parse_str(id).map_err(|_| not_ours())
}

/// Cuts a fetched page to what one answer may hold: at most `page_size`
/// items, no more than fit in `budget` bytes (`size` gives an item's share),
/// but always one, so that paging moves on. The fetch holds up to one item
/// more than a page, which tells whether more exist: true when some remain.
pub fn cut_page<T>(
    items: &mut Vec<T>,
    page_size: u64,
    budget: usize,
    size: impl Fn(&T) -> usize,
) -> bool {
    let mut used = 0;
    let fit = items
        .iter()
        .take(usize::try_from(page_size).unwrap_or(usize::MAX))
        .take_while(|item| {
            used += size(item);
            used <= budget
        })
        .count()
        .max(1)
        .min(items.len());
    let more = items.len() > fit;
    items.truncate(fit);
    more
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(sizes: &[usize], page_size: u64, budget: usize) -> (Vec<usize>, bool) {
        let mut items = sizes.to_vec();
        let more = cut_page(&mut items, page_size, budget, |size| *size);
        (items, more)
    }

    #[test]
    fn a_page_stops_at_its_size_or_its_byte_budget_whichever_comes_first() {
        assert_eq!(cut(&[1, 1, 1, 1], 3, 100), (vec![1, 1, 1], true));
        assert_eq!(cut(&[40, 40, 40], 10, 100), (vec![40, 40], true));
        assert_eq!(cut(&[40, 60, 40], 10, 100), (vec![40, 60], true));
        assert_eq!(cut(&[1, 1], 3, 100), (vec![1, 1], false));
        assert_eq!(cut(&[], 3, 100), (vec![], false));
    }

    #[test]
    fn an_item_over_the_budget_still_makes_a_page_of_its_own() {
        assert_eq!(cut(&[200, 1], 10, 100), (vec![200], true));
        assert_eq!(cut(&[200], 10, 100), (vec![200], false));
    }

    fn by_target(target_id: &str) -> RawListRequest {
        RawListRequest {
            target_type: "organization".into(),
            target_id: target_id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn page_size_defaults_to_50_and_is_cut_to_500() {
        assert_eq!(ListQuery::parse(by_target("o1")).unwrap().page_size, 50);
        let big = RawListRequest {
            page_size: 10_000,
            ..by_target("o1")
        };
        assert_eq!(ListQuery::parse(big).unwrap().page_size, 500);
    }

    #[test]
    fn a_negative_page_size_is_refused() {
        let raw = RawListRequest {
            page_size: -1,
            ..by_target("o1")
        };
        let Err(InviteError::Invalid(v)) = ListQuery::parse(raw) else {
            panic!()
        };
        assert_eq!(v[0].field, "page_size");
    }

    #[test]
    fn a_page_token_round_trips_with_the_same_filters() {
        let query = ListQuery::parse(by_target("o1")).unwrap();
        let last = Uuid::now_v7();
        let next = RawListRequest {
            page_token: query.next_page_token(last),
            ..by_target("o1")
        };
        assert_eq!(ListQuery::parse(next).unwrap().after, Some(last));
    }

    #[test]
    fn a_page_token_from_other_filters_is_refused() {
        let token = ListQuery::parse(by_target("o1"))
            .unwrap()
            .next_page_token(Uuid::now_v7());
        let other = RawListRequest {
            page_token: token,
            ..by_target("o2")
        };
        let Err(InviteError::Invalid(v)) = ListQuery::parse(other) else {
            panic!()
        };
        assert_eq!(v[0].field, "page_token");
    }

    #[test]
    fn garbage_page_tokens_and_bad_filters_are_all_reported() {
        let raw = RawListRequest {
            target_type: String::new(),
            target_id: "o 1".into(),
            invitee_email: "nope".into(),
            page_token: "%%%".into(),
            ..Default::default()
        };
        let Err(InviteError::Invalid(v)) = ListQuery::parse(raw) else {
            panic!()
        };
        let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["target_id", "invitee_email", "target_type", "page_token"]
        );
    }
}
