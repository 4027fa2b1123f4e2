//! WatchInvites' rules, pure: the opaque cursor, the filters, and who may
//! watch what.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{
    Caller, EventKind, Id, Identifier, InviteError,
    error::{Violations, quoted},
};

/// Where a stream stands in the event log: right after the event at this
/// `log_position` (0: before every event). Sent as URL-safe base64 of a
/// version byte and the position, so that the encoding may change one day
/// while old cursors still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor(i64);

impl Cursor {
    const VERSION: u8 = 1;
    const LEN: usize = 9;

    /// Right after the event numbered `log_position`.
    pub fn after(log_position: i64) -> Self {
        Self(log_position.max(0))
    }

    pub fn log_position(self) -> i64 {
        self.0
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let not_ours = || "is not a cursor of WatchInvites".to_string();
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| not_ours())?;
        let Ok::<[u8; Self::LEN], _>(bytes) = bytes.try_into() else {
            return Err(not_ours());
        };
        let [version, position @ ..] = bytes;
        let position = i64::from_be_bytes(position);
        if version != Self::VERSION || position < 0 {
            return Err(not_ours());
        }
        Ok(Self(position))
    }

    pub fn encode(self) -> String {
        let mut bytes = [0u8; Self::LEN];
        bytes[0] = Self::VERSION;
        bytes[1..].copy_from_slice(&self.0.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// The request as received (the event types already read as kinds).
#[derive(Debug, Clone, Default)]
pub struct RawWatchRequest {
    pub target_type: String,
    pub target_id: String,
    /// None: the request named a value that is no event type.
    pub event_types: Vec<Option<EventKind>>,
    pub cursor: String,
}

/// What a watcher asked for, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchQuery {
    /// None: every target (admins only).
    pub target: Option<(Identifier, Id)>,
    /// Empty: every kind.
    pub kinds: Vec<EventKind>,
    /// None: start after the newest event.
    pub cursor: Option<Cursor>,
}

impl WatchQuery {
    /// Every bad field at once, as the other requests.
    pub fn parse(raw: RawWatchRequest) -> Result<Self, InviteError> {
        let mut bad = Violations::default();
        let target = match (raw.target_type.as_str(), raw.target_id.as_str()) {
            ("", "") => None,
            (target_type, target_id) => {
                let target_type =
                    bad.check("target_type", required(target_type, Identifier::parse));
                let target_id = bad.check("target_id", required(target_id, Id::parse));
                target_type.zip(target_id)
            }
        };
        let mut kinds = Vec::new();
        for kind in raw.event_types {
            match kind {
                Some(kind) if !kinds.contains(&kind) => kinds.push(kind),
                Some(_) => {}
                None => bad.add("event_types", "names a value that is not an event type"),
            }
        }
        let cursor = match raw.cursor.as_str() {
            "" => None,
            cursor => bad.check(
                "cursor",
                Cursor::parse(cursor).map_err(|why| {
                    format!(
                        "{} {why}: send one a WatchInvites message carried, or none",
                        quoted(cursor)
                    )
                }),
            ),
        };
        bad.into_result()?;
        Ok(Self {
            target,
            kinds,
            cursor,
        })
    }

    /// Admins watch anything; anyone else only a target one of their
    /// grants covers (whatever the role: an event shows invites of every
    /// role to the target).
    pub fn ensure_watchable_by(&self, caller: &Caller) -> Result<(), InviteError> {
        if caller.is_admin {
            return Ok(());
        }
        let covered = self
            .target
            .as_ref()
            .is_some_and(|(target_type, target_id)| {
                caller
                    .grants
                    .iter()
                    .any(|grant| grant.covers_target(target_type, target_id))
            });
        if covered {
            Ok(())
        } else {
            Err(InviteError::WatchNotGranted)
        }
    }
}

fn required<T>(raw: &str, parse: fn(&str) -> Result<T, String>) -> Result<T, String> {
    if raw.is_empty() {
        Err("is required when the other half of the target is given".into())
    } else {
        parse(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Grant;

    fn raw(target_type: &str, target_id: &str, cursor: &str) -> RawWatchRequest {
        RawWatchRequest {
            target_type: target_type.into(),
            target_id: target_id.into(),
            event_types: vec![],
            cursor: cursor.into(),
        }
    }

    fn caller(admin: bool, grants: &[&str]) -> Caller {
        Caller {
            user_id: Id::parse("ui-backend").unwrap(),
            verified_email: None,
            verified_phone: None,
            is_admin: admin,
            grants: grants.iter().map(|g| g.parse::<Grant>().unwrap()).collect(),
        }
    }

    fn fields(err: InviteError) -> Vec<String> {
        match err {
            InviteError::Invalid(violations) => violations.into_iter().map(|v| v.field).collect(),
            other => panic!("not invalid: {other:?}"),
        }
    }

    #[test]
    fn a_cursor_reads_back_as_the_position_it_was_made_from() {
        for position in [0, 1, 255, 1 << 40, i64::MAX] {
            let cursor = Cursor::after(position);
            let encoded = cursor.encode();
            assert!(
                encoded
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
            );
            assert_eq!(Cursor::parse(&encoded), Ok(cursor));
        }
        assert!(Cursor::after(1) < Cursor::after(2));
    }

    #[test]
    fn anything_but_a_cursor_of_ours_is_refused() {
        let wrong_version = URL_SAFE_NO_PAD.encode([2u8, 0, 0, 0, 0, 0, 0, 0, 7]);
        let negative =
            URL_SAFE_NO_PAD.encode([1u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        let too_short = URL_SAFE_NO_PAD.encode([1u8, 0, 7]);
        let too_long = URL_SAFE_NO_PAD.encode([1u8; 10]);
        for bad in [
            "x",
            "not base64!",
            "AQ==",
            &wrong_version,
            &negative,
            &too_short,
            &too_long,
        ] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut request = raw("Organization", "", "garbage");
        request.event_types = vec![Some(EventKind::Created), None];

        let err = WatchQuery::parse(request).unwrap_err();

        assert_eq!(
            fields(err),
            ["target_type", "target_id", "event_types", "cursor"]
        );
    }

    #[test]
    fn a_request_reads_as_its_target_kinds_and_cursor() {
        let cursor = Cursor::after(42).encode();
        let mut request = raw("organization", "acme", &cursor);
        request.event_types = vec![Some(EventKind::Accepted), Some(EventKind::Accepted)];

        let query = WatchQuery::parse(request).unwrap();

        let (target_type, target_id) = query.target.unwrap();
        assert_eq!(
            (target_type.as_str(), target_id.as_str()),
            ("organization", "acme")
        );
        assert_eq!(query.kinds, [EventKind::Accepted], "a repeated kind once");
        assert_eq!(query.cursor, Some(Cursor::after(42)));
        assert_eq!(WatchQuery::parse(raw("", "", "")).unwrap().cursor, None);
    }

    #[test]
    fn admins_watch_anything_others_only_granted_targets() {
        let acme = WatchQuery::parse(raw("organization", "acme", "")).unwrap();
        let everything = WatchQuery::parse(raw("", "", "")).unwrap();
        let granted = caller(false, &["organization/acme=member"]);
        let any_party = caller(false, &["party/*"]);

        assert_eq!(everything.ensure_watchable_by(&caller(true, &[])), Ok(()));
        assert_eq!(
            acme.ensure_watchable_by(&granted),
            Ok(()),
            "any role on the target"
        );
        assert_eq!(
            acme.ensure_watchable_by(&any_party),
            Err(InviteError::WatchNotGranted)
        );
        assert_eq!(
            everything.ensure_watchable_by(&granted),
            Err(InviteError::WatchNotGranted),
            "no target: admins only"
        );
        let party = WatchQuery::parse(raw("party", "p-1", "")).unwrap();
        assert_eq!(party.ensure_watchable_by(&any_party), Ok(()));
    }
}
