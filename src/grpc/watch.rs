//! WatchInvites on the wire: the request read, the watcher's buffer drained
//! into response messages, its end into the stream's status.

use std::pin::Pin;

use futures_util::{Stream, stream};
use prost::Message as _;
use tokio::sync::mpsc;
use tonic::Status;

use crate::{
    app::{WatchItem, WatchedEvent},
    domain::{EventKind, RawWatchRequest},
    error::Error,
    pb,
};

pub fn watch_request(request: pb::WatchInvitesRequest) -> RawWatchRequest {
    let pb::WatchInvitesRequest {
        target_type,
        target_id,
        event_types,
        cursor,
    } = request;
    RawWatchRequest {
        target_type,
        target_id,
        event_types: event_types.into_iter().map(event_kind).collect(),
        cursor,
    }
}

/// None for UNSPECIFIED or a number the enum does not have.
fn event_kind(raw: i32) -> Option<EventKind> {
    use pb::InviteEventType as T;
    match T::try_from(raw).ok()? {
        T::Unspecified => None,
        T::Created => Some(EventKind::Created),
        T::Updated => Some(EventKind::Updated),
        T::Accepted => Some(EventKind::Accepted),
        T::Rejected => Some(EventKind::Rejected),
        T::Revoked => Some(EventKind::Revoked),
        T::Resent => Some(EventKind::Resent),
        T::Expired => Some(EventKind::Expired),
        T::Deleted => Some(EventKind::Deleted),
    }
}

pub type WatchStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchInvitesResponse, Status>> + Send + 'static>>;

/// Each buffered event as a message, in order; then the end, if the
/// watcher gave one (tonic ends the stream at the first status).
pub fn responses(items: mpsc::Receiver<WatchItem>) -> WatchStream {
    Box::pin(stream::unfold(items, |mut items| async move {
        let item = items.recv().await?;
        Some((item.map_err(Status::from).and_then(response), items))
    }))
}

fn response(watched: WatchedEvent) -> Result<pb::WatchInvitesResponse, Status> {
    let mut event = pb::InviteEvent::decode(watched.payload.as_slice()).map_err(|err| {
        Status::from(Error::Internal(
            anyhow::Error::new(err).context(format!("event {} payload", watched.id)),
        ))
    })?;
    // Stored payloads never hold a token; a stream never carries one, even
    // from a row written by hand.
    event.token.clear();
    Ok(pb::WatchInvitesResponse {
        event: Some(event),
        cursor: watched.cursor.encode(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_reads_as_its_kind_and_unspecified_as_none() {
        for kind in EventKind::ALL {
            let raw = pb::InviteEventType::from(kind) as i32;
            assert_eq!(event_kind(raw), Some(kind));
        }
        assert_eq!(event_kind(0), None);
        assert_eq!(event_kind(99), None);
    }
}
