//! Group commit: creates and accepts that arrive together share one
//! transaction and one connection, and each still gets its own answer and
//! its own event.

use std::time::Duration;

use invite_service::pb;
use sea_orm::{ConnectionTrait as _, Database, TransactionTrait as _};
use tonic::Code;

use crate::{
    helpers::*,
    pool_health::{Keyed, hold_table, lock_waiters, spawn_creates},
};

/// Waits until some connection of the test's database waits on a lock,
/// then long enough for every call to have arrived.
async fn until_one_waits(observer: &sea_orm::DatabaseConnection, database: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while lock_waiters(observer, database).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no call waited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_share_one_transaction_and_one_connection() {
    let app = spawn_app(Db::Postgres).await;
    let mut events = Events::bind(&app.exchange).await;
    let database = app.database_url.rsplit('/').next().unwrap().to_owned();
    let (admin, blocker) = hold_table(&app, "SHARE").await;
    let calls = spawn_creates(&app, 20, Keyed::No).await;
    let observer = Database::connect(&app.database_url).await.unwrap();
    // The first group waits on the lock; the other creates queue behind it
    // instead of taking connections.
    until_one_waits(&observer, &database).await;
    let waiting = lock_waiters(&observer, &database).await;
    blocker.rollback().await.unwrap();
    let mut ids = Vec::new();
    for call in calls {
        ids.push(call.await.unwrap().unwrap().into_inner().invite.unwrap().id);
    }

    assert_eq!(waiting, 1, "connections waiting on the lock");
    let mut published: Vec<_> = events
        .take(20)
        .await
        .into_iter()
        .map(|received| {
            assert_eq!(received.routing_key, "invite.created");
            assert_eq!(received.event.sequence, 1);
            received.event.invite.unwrap().id
        })
        .collect();
    published.sort();
    ids.sort();
    assert_eq!(published, ids, "one created event for each invite");
    events.assert_no_more(Duration::from_millis(300)).await;
    observer.close().await.ok();
    admin.close().await.ok();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_of_a_links_last_uses_in_one_group_have_one_winner_each() {
    let app = spawn_app(Db::Postgres).await;
    let mut events = Events::bind(&app.exchange).await;
    let database = app.database_url.rsplit('/').next().unwrap().to_owned();
    let alice = token("alice", None, false);
    let link = app
        .client()
        .await
        .create_invite(authed(open_link("org-1", Some(3)), &alice))
        .await
        .unwrap()
        .into_inner();
    let link_id = link.invite.unwrap().id;
    events.take(1).await;
    // Lets plain reads through and holds every FOR UPDATE back.
    let (admin, blocker) = hold_table(&app, "EXCLUSIVE").await;
    let mut calls = Vec::new();
    for n in 0..8 {
        let mut client = app.client().await;
        let user = format!("user{n}");
        let (bearer, link) = (token(&user, None, false), link.token.clone());
        calls.push(tokio::spawn(async move {
            let answer = client
                .accept_invite(authed(accept_by_token(link), &bearer))
                .await;
            (user, answer)
        }));
    }
    let observer = Database::connect(&app.database_url).await.unwrap();
    until_one_waits(&observer, &database).await;
    let waiting = lock_waiters(&observer, &database).await;
    blocker.rollback().await.unwrap();
    let mut winners = Vec::new();
    for call in calls {
        match call.await.unwrap() {
            (user, Ok(_)) => winners.push(user),
            (_, Err(status)) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }

    assert_eq!(waiting, 1, "connections waiting on the lock");
    assert_eq!(winners.len(), 3, "one winner for each use: {winners:?}");
    let received = events.take(3).await;
    let mut actors: Vec<_> = received.iter().map(|r| r.event.actor_id.clone()).collect();
    assert_events(
        &received,
        &[
            ("invite.accepted", &link_id, &actors[0], 2),
            ("invite.accepted", &link_id, &actors[1], 3),
            ("invite.accepted", &link_id, &actors[2], 4),
        ],
    );
    actors.sort();
    winners.sort();
    assert_eq!(actors, winners, "an event for each winner");
    events.assert_no_more(Duration::from_millis(300)).await;
    let stored = app
        .client()
        .await
        .get_invite(authed(pb::GetInviteRequest { id: link_id }, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.use_count, 3, "the group's writes are stored");
    assert_eq!(stored.status(), pb::InviteStatus::Accepted);
    observer.close().await.ok();
    admin.close().await.ok();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_of_an_invite_held_elsewhere_does_not_hold_up_other_accepts() {
    let app = spawn_app(Db::Postgres).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let (held, held_token) = create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &alice,
    )
    .await;
    let (_, free_token) = create(
        &mut client,
        email_invite("org-1", "carol@example.org"),
        &alice,
    )
    .await;
    let admin = Database::connect(&app.database_url).await.unwrap();
    let holder = admin.begin().await.unwrap();
    holder
        .execute_unprepared(&format!(
            "SELECT id FROM invites WHERE id = '{}' FOR UPDATE",
            held.id
        ))
        .await
        .unwrap();
    let bob = token("bob", Some("bob@example.org"), false);
    let mut waiting_client = app.client().await;
    let waiting = tokio::spawn(async move {
        waiting_client
            .accept_invite(authed(accept_by_token(held_token), &bob))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let carol = token("carol", Some("carol@example.org"), false);
    let free = tokio::time::timeout(
        Duration::from_secs(5),
        client.accept_invite(authed(accept_by_token(free_token), &carol)),
    )
    .await
    .expect("the other invite's accept is not held up");
    holder.rollback().await.unwrap();
    let held_answer = waiting.await.unwrap();

    assert_eq!(
        free.unwrap().into_inner().status,
        pb::InviteStatus::Accepted as i32
    );
    assert_eq!(
        held_answer.unwrap().into_inner().status,
        pb::InviteStatus::Accepted as i32,
        "the held invite is accepted once released"
    );
    admin.close().await.ok();
    app.stop().await;
}
