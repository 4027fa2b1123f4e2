//! A WatchInvites client as a test uses one: open, read what comes, see how
//! it ended.

use std::time::Duration;

use invite_service::pb::{self, invite_service_client::InviteServiceClient};
use tonic::{Status, Streaming, transport::Channel};

use super::*;

pub type Watch = Streaming<pb::WatchInvitesResponse>;

/// A request for `target` (`(type, id)`, or every target), these types
/// (empty: all), from `cursor` (empty: from now).
pub fn watch_request(
    target: Option<(&str, &str)>,
    types: &[pb::InviteEventType],
    cursor: &str,
) -> pb::WatchInvitesRequest {
    let (target_type, target_id) = target.unwrap_or_default();
    pb::WatchInvitesRequest {
        target_type: target_type.into(),
        target_id: target_id.into(),
        event_types: types.iter().map(|t| *t as i32).collect(),
        cursor: cursor.into(),
    }
}

/// Opens a stream: once this returns, every event committed later reaches it.
pub async fn watch(
    client: &mut InviteServiceClient<Channel>,
    request: pb::WatchInvitesRequest,
    token: &str,
) -> Watch {
    client
        .watch_invites(authed(request, token))
        .await
        .expect("the watch starts")
        .into_inner()
}

/// The next `n` messages, each within 10 s.
pub async fn next_messages(stream: &mut Watch, n: usize) -> Vec<pb::WatchInvitesResponse> {
    let mut messages = Vec::with_capacity(n);
    while messages.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap_or_else(|_| panic!("message {} of {n} within 10 s", messages.len() + 1));
        match next {
            Ok(Some(message)) => messages.push(message),
            other => panic!("message {} of {n}: {other:?}", messages.len() + 1),
        }
    }
    messages
}

/// Nothing more arrives within `quiet`.
pub async fn assert_no_more_messages(stream: &mut Watch, quiet: Duration) {
    if let Ok(next) = tokio::time::timeout(quiet, stream.message()).await {
        panic!("expected nothing more, got {next:?}");
    }
}

/// Every message up to the stream's end, and the status it ended with.
pub async fn read_to_end(stream: &mut Watch) -> (Vec<pb::WatchInvitesResponse>, Status) {
    let mut messages = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the stream goes on or ends within 10 s");
        match next {
            Ok(Some(message)) => messages.push(message),
            Ok(None) => panic!("the stream ended without a status"),
            Err(status) => return (messages, status),
        }
    }
}

/// The cursor an ending status carries in its ErrorInfo metadata.
pub fn cursor_in(status: &Status) -> String {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .error_info()
        .and_then(|info| info.metadata.get("cursor").cloned())
        .unwrap_or_else(|| panic!("no cursor in {status:?}"))
}

/// What each message says: (event type, invite id, sequence).
pub fn seen(messages: &[pb::WatchInvitesResponse]) -> Vec<(pb::InviteEventType, String, i64)> {
    messages
        .iter()
        .map(|m| {
            let event = m.event.as_ref().expect("an event");
            let invite = event.invite.as_ref().expect("an invite");
            (event.r#type(), invite.id.clone(), event.sequence)
        })
        .collect()
}

/// The ids of the events stored, in the order watchers read them.
pub async fn event_ids_in_log_order(database_url: &str) -> Vec<String> {
    use invite_service::store::entities::invite_event;
    use sea_orm::{Database, EntityTrait as _, QueryOrder as _};
    let conn = Database::connect(database_url).await.unwrap();
    let rows = invite_event::Entity::find()
        .order_by_asc(invite_event::Column::LogPosition)
        .all(&conn)
        .await
        .unwrap();
    conn.close().await.ok();
    rows.into_iter().map(|row| row.id.to_string()).collect()
}

/// The event ids of messages, in the order received.
pub fn event_ids(messages: &[pb::WatchInvitesResponse]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.event.as_ref().expect("an event").event_id.clone())
        .collect()
}
