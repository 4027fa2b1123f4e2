//! The request id: the caller's `x-request-id`, or a new UUID, that follows
//! one call from its log line to every event it causes and every consumer.
//!
//! Implementation notes: the id rides in a task-local for the call's
//! duration, as a trace context does, so that the outbox stamps it on each
//! event without every use case passing it along. Work outside a call (the
//! expiry sweep) has none.

use std::future::Future;

use uuid::Uuid;

/// The longest id taken from a caller; a longer one is replaced.
const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: RequestId;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The caller's id when it is 1 to 128 visible ASCII characters (safe
    /// in a log line and an AMQP header), else a new UUIDv7.
    pub fn from_caller(given: Option<&[u8]>) -> Self {
        given
            .filter(|id| !id.is_empty() && id.len() <= MAX_LEN)
            .filter(|id| id.iter().all(u8::is_ascii_graphic))
            .and_then(|id| std::str::from_utf8(id).ok())
            .map(|id| Self(id.to_owned()))
            .unwrap_or_else(|| Self(Uuid::now_v7().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Runs `work` as the call this id names.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }

    /// Runs `work` as the call this id names, outside the call's task (a
    /// group writer building each caller's event).
    pub fn in_scope<R>(self, work: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, work)
    }

    /// The id of the call running on this task, if any.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callers_id_is_kept_when_it_is_short_visible_ascii() {
        let kept = RequestId::from_caller(Some(b"req-42/retry:1"));
        assert_eq!(kept.as_str(), "req-42/retry:1");
    }

    #[test]
    fn a_missing_empty_long_or_unprintable_id_is_replaced_by_a_uuid() {
        let long = [b'a'; MAX_LEN + 1];
        for given in [
            None,
            Some(&b""[..]),
            Some(&long[..]),
            Some(&b"two words"[..]),
            Some(&b"line\nbreak"[..]),
            Some("caf\u{e9}".as_bytes()),
        ] {
            let id = RequestId::from_caller(given);
            assert!(Uuid::parse_str(id.as_str()).is_ok(), "{given:?} → {id:?}");
        }
        let longest = [b'a'; MAX_LEN];
        assert_eq!(
            RequestId::from_caller(Some(&longest)).as_str().len(),
            MAX_LEN
        );
    }

    #[tokio::test]
    async fn the_id_is_current_only_inside_its_call() {
        let id = RequestId::from_caller(Some(b"abc"));

        let inside = id.clone().scope(async { RequestId::current() }).await;

        assert_eq!(inside, Some(id));
        assert_eq!(RequestId::current(), None);
    }
}
