//! WatchInvites under a client that does not read, and past the bound on
//! open streams: memory stays bounded, nothing is lost, unary calls go on.

use std::time::Duration;

use invite_service::pb::{self, InviteEventType as Type};
use tonic::{Code, transport::Channel};

use crate::helpers::*;
use crate::on_both_databases;

on_both_databases!(
    a_watcher_that_does_not_read_is_ended_with_a_cursor_and_resuming_loses_and_repeats_nothing
);

const EMAILS: usize = 1000;

/// A connection whose client takes little before it must read: 16 KiB per
/// stream, 64 KiB in all (the HTTP/2 default; tonic asks for megabytes).
async fn narrow_client(app: &TestApp) -> pb::invite_service_client::InviteServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    pb::invite_service_client::InviteServiceClient::new(channel)
}

async fn a_watcher_that_does_not_read_is_ended_with_a_cursor_and_resuming_loses_and_repeats_nothing(
    db: Db,
) {
    let mut options = Options::fresh(db).await;
    options
        .flags
        .extend(["--watch-send-timeout".into(), "1s".into()]);
    let app = TestApp::start(options).await;
    let admin = token("ops", None, true);
    let mut slow = watch(
        &mut narrow_client(&app).await,
        watch_request(None, &[], ""),
        &admin,
    )
    .await;
    let mut client = app.client().await;
    let batch = pb::BatchCreateInvitesRequest {
        target_type: "account_group".into(),
        target_id: "grp-7".into(),
        emails: (0..EMAILS).map(|n| format!("u{n}@example.org")).collect(),
        inviter_id: "alice".into(),
        ..Default::default()
    };
    let created = client
        .batch_create_invites(authed(batch, &admin))
        .await
        .unwrap()
        .into_inner()
        .created;

    // Past the send timeout with the buffer full.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (before, ended) = read_to_end(&mut slow).await;
    let cursor = cursor_in(&ended);
    let mut resumed = watch(&mut client, watch_request(None, &[], &cursor), &admin).await;
    let rest = next_messages(&mut resumed, EMAILS - before.len()).await;

    assert_eq!(ended.code(), Code::ResourceExhausted, "{ended:?}");
    assert_eq!(reason(&ended), "WATCHER_TOO_SLOW");
    assert!(
        before.len() < EMAILS,
        "ended before the end: {}",
        before.len()
    );
    assert_eq!(
        cursor,
        before.last().unwrap().cursor,
        "every buffered event was sent first"
    );
    assert_eq!(created.len(), EMAILS);
    let all: Vec<_> = event_ids(&before)
        .into_iter()
        .chain(event_ids(&rest))
        .collect();
    let logged = event_ids_in_log_order(&app.database_url).await;
    assert!(all == logged, "each event once, in log order");
    assert!(
        seen(&rest)
            .iter()
            .all(|(kind, _, _)| *kind == Type::Created)
    );
    assert_no_more_messages(&mut resumed, Duration::from_millis(500)).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_have_a_bound_and_a_gauge_of_their_own_apart_from_the_calls_cap() {
    let mut options = Options::fresh(Db::Sqlite).await;
    options.flags.extend(
        [
            "--max-watchers",
            "1",
            "--max-concurrent-calls",
            "1",
            "--metrics-listen",
            "127.0.0.1:0",
        ]
        .map(String::from),
    );
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let admin = token("ops", None, true);
    let alice = token("alice", None, false);
    let mut open = watch(&mut client, watch_request(None, &[], ""), &admin).await;

    let refused = client
        .watch_invites(authed(watch_request(None, &[], ""), &admin))
        .await
        .unwrap_err();
    let (invite, _) = create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &alice,
    )
    .await;
    let event = next_messages(&mut open, 1).await;
    let while_open = app.scrape().await;
    drop(open);
    let mut gauge = 1.0;
    for _ in 0..50 {
        gauge = series_value(&app.scrape().await, "invites_watchers");
        if gauge == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = client
        .watch_invites(authed(watch_request(None, &[], ""), &admin))
        .await;

    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(reason(&refused), "TOO_MANY_WATCHERS");
    assert_eq!(
        seen(&event),
        [(Type::Created, invite.id, 1)],
        "unary calls go on"
    );
    assert_eq!(series_value(&while_open, "invites_watchers"), 1.0);
    assert_eq!(
        series_value(
            &while_open,
            r#"invites_throttled_total{reason="TOO_MANY_WATCHERS"}"#
        ),
        1.0
    );
    assert_eq!(gauge, 0.0, "a closed stream leaves the gauge");
    assert!(again.is_ok(), "its place is free again: {again:?}");
    app.stop().await;
}
