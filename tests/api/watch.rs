//! WatchInvites: events as they commit, filtered, resumable with the cursor
//! each message carries, across a disconnect and a server restart.

use std::time::{Duration, Instant};

use invite_service::pb::InviteEventType as Type;
use tonic::Code;

use crate::helpers::*;
use crate::on_both_databases;

on_both_databases!(
    a_watcher_resumes_after_a_disconnect_with_exactly_the_events_it_missed,
    a_watcher_resumes_across_a_server_restart_from_the_cursor_shutdown_gave_it,
    two_watchers_with_different_filters_get_exactly_their_events,
);

const QUIET: Duration = Duration::from_millis(700);

/// Creates an invite to organization `org` for `email`; returns its id.
async fn invite(scene: &mut Scene, org: &str, email: &str) -> String {
    create(&mut scene.client, email_invite(org, email), &scene.alice)
        .await
        .0
        .id
}

async fn a_watcher_resumes_after_a_disconnect_with_exactly_the_events_it_missed(db: Db) {
    let mut scene = alice_invites_bob(db).await;
    let org = Some(("organization", "org-1"));
    let mut stream = watch(&mut scene.client, watch_request(org, &[], ""), &scene.alice).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(invite(&mut scene, "org-1", &format!("a{n}@example.org")).await);
    }
    let first = next_messages(&mut stream, 3).await;
    drop(stream);

    for n in 0..3 {
        ids.push(invite(&mut scene, "org-1", &format!("b{n}@example.org")).await);
    }
    revoke(&mut scene.client, &ids[0], &scene.alice).await;
    let cursor = &first.last().unwrap().cursor;
    let mut resumed = watch(
        &mut scene.client,
        watch_request(org, &[], cursor),
        &scene.alice,
    )
    .await;
    let rest = next_messages(&mut resumed, 4).await;

    let created = |id: &String| (Type::Created, id.clone(), 1);
    assert_eq!(
        seen(&first),
        ids[..3].iter().map(created).collect::<Vec<_>>()
    );
    let mut missed: Vec<_> = ids[3..].iter().map(created).collect();
    missed.push((Type::Revoked, ids[0].clone(), 2));
    assert_eq!(seen(&rest), missed, "exactly the missing events, in order");
    assert_no_more_messages(&mut resumed, QUIET).await;
    assert!(
        rest.iter()
            .all(|m| m.event.as_ref().unwrap().token.is_empty()),
        "never a token"
    );
    scene.end().await;
}

async fn a_watcher_resumes_across_a_server_restart_from_the_cursor_shutdown_gave_it(db: Db) {
    let mut scene = alice_invites_bob(db).await;
    let mut stream = watch(&mut scene.client, watch_request(None, &[], ""), &admin()).await;
    let before: Vec<_> = [
        invite(&mut scene, "org-1", "a@example.org").await,
        invite(&mut scene, "org-2", "b@example.org").await,
    ]
    .into();
    let read = next_messages(&mut stream, 2).await;
    let Scene { app, events, .. } = scene;
    let options = Options {
        database_url: app.database_url.clone(),
        exchange: app.exchange.clone(),
        amqp_url: amqp_url(),
        sweep_interval: Duration::from_secs(3600),
        flags: Vec::new(),
    };

    let stopping = Instant::now();
    app.stop().await;
    let stopped_in = stopping.elapsed();
    let (after_read, ended) = read_to_end(&mut stream).await;
    let restarted = TestApp::start(options).await;
    let mut client = restarted.client().await;
    let alice = token("alice", None, false);
    let (later, _) = create(&mut client, email_invite("org-3", "c@example.org"), &alice).await;
    let cursor = cursor_in(&ended);
    let mut resumed = watch(&mut client, watch_request(None, &[], &cursor), &admin()).await;
    let rest = next_messages(&mut resumed, 1).await;

    assert!(
        stopped_in < Duration::from_secs(5),
        "an open stream does not hold the drain: {stopped_in:?}"
    );
    assert!(after_read.is_empty());
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    assert_eq!(reason(&ended), "SERVER_SHUTTING_DOWN");
    assert_eq!(cursor, read[1].cursor, "the cursor of the last event sent");
    let created = |id: &String| (Type::Created, id.clone(), 1);
    assert_eq!(seen(&read), before.iter().map(created).collect::<Vec<_>>());
    assert_eq!(seen(&rest), [created(&later.id)], "only what came after");
    assert_no_more_messages(&mut resumed, QUIET).await;
    events.delete_exchange().await;
    restarted.stop().await;
}

async fn two_watchers_with_different_filters_get_exactly_their_events(db: Db) {
    let mut scene = alice_invites_bob(db).await;
    let ui = token_granting("ui", None, false, &["organization/org-a"]);
    let org_a = watch_request(Some(("organization", "org-a")), &[], "");
    let mut of_org_a = watch(&mut scene.client, org_a, &ui).await;
    let endings = watch_request(None, &[Type::Accepted, Type::Revoked], "");
    let mut of_endings = watch(&mut scene.client, endings, &admin()).await;

    let in_a = invite(&mut scene, "org-a", "bob@example.org").await;
    let in_b = invite(&mut scene, "org-b", "bob@example.org").await;
    scene
        .client
        .accept_invite(authed(accept_by_id(in_a.clone()), &scene.bob))
        .await
        .unwrap();
    revoke(&mut scene.client, &in_b, &scene.alice).await;
    create(&mut scene.client, open_link("p-1", None), &scene.alice).await;

    let a = next_messages(&mut of_org_a, 2).await;
    let endings = next_messages(&mut of_endings, 2).await;

    assert_eq!(
        seen(&a),
        [
            (Type::Created, in_a.clone(), 1),
            (Type::Accepted, in_a.clone(), 2)
        ]
    );
    assert_eq!(
        seen(&endings),
        [(Type::Accepted, in_a, 2), (Type::Revoked, in_b, 2)]
    );
    assert_no_more_messages(&mut of_org_a, QUIET).await;
    assert_no_more_messages(&mut of_endings, Duration::from_millis(100)).await;
    scene.end().await;
}

fn admin() -> String {
    token("ops", None, true)
}

/// Refusals are the call's answer, before any stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_an_ungranted_target_or_with_a_foreign_cursor_is_refused() {
    let app = spawn_app(Db::Sqlite).await;
    let mut client = app.client().await;
    let ui = token_granting("ui", None, false, &["organization/acme=member"]);
    let refuse = |request| {
        let mut client = client.clone();
        let ui = ui.clone();
        async move {
            client
                .watch_invites(authed(request, &ui))
                .await
                .unwrap_err()
        }
    };

    let other_target = refuse(watch_request(Some(("organization", "other")), &[], "")).await;
    let every_target = refuse(watch_request(None, &[], "")).await;
    let foreign_cursor = refuse(watch_request(Some(("organization", "acme")), &[], "bm9wZQ")).await;
    let malformed = refuse(watch_request(Some(("Org", "")), &[Type::Unspecified], "")).await;
    let granted = watch(
        &mut client,
        watch_request(Some(("organization", "acme")), &[], ""),
        &ui,
    );

    for refused in [&other_target, &every_target] {
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert_eq!(reason(refused), "WATCH_NOT_GRANTED");
    }
    assert_eq!(foreign_cursor.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&foreign_cursor), ["cursor"]);
    assert_eq!(
        bad_fields(&malformed),
        ["target_type", "target_id", "event_types"]
    );
    drop(granted.await);
    app.stop().await;
}
