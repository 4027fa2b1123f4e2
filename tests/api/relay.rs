//! The relay under stress: one invite's long backlog, a consumer queue that
//! refuses messages, a broker that stops answering, an outbox row that
//! cannot be published.

mod fixtures;

use std::time::{Duration, Instant};

use invite_service::{domain::EventKind, store::entities::invite_event};
use lapin::types::FieldTable;
use sea_orm::{ColumnTrait, Database, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::helpers::*;
use crate::on_both_databases;
use fixtures::{Link, Queue, RawEvent, insert_events};

on_both_databases!(
    one_invites_backlog_does_not_hold_back_another_invites_event,
    a_refused_event_is_retried_on_the_same_connection_every_few_seconds,
    a_broker_that_stops_answering_costs_one_timeout_per_batch_not_one_per_event,
    an_undecodable_event_stays_unpublished_and_holds_back_only_its_own_invite,
    heads_behind_backlogs_longer_than_the_prefix_are_read_by_invite,
);

async fn one_invites_backlog_does_not_hold_back_another_invites_event(db: Db) {
    const BACKLOG: i64 = 1000;
    let mut link = BrokerLink::up().await;
    let mut options = Options::fresh(db).await;
    options.amqp_url = link.amqp_url();
    let mut events = Events::bind(&options.exchange).await;
    let app = TestApp::start(options).await;
    let (popular, other) = (Uuid::now_v7(), Uuid::now_v7());

    link.cut();
    let mut outage: Vec<_> = (1..=BACKLOG)
        .map(|seq| RawEvent::new(popular, seq, EventKind::Accepted))
        .collect();
    outage.push(RawEvent::new(other, 1, EventKind::Created));
    insert_events(&app.database_url, outage).await;
    link.restore().await;

    let mut popular_sequences = Vec::new();
    loop {
        let received = events.next().await;
        if invite_id(&received) == other.to_string() {
            break;
        }
        popular_sequences.push(received.event.sequence);
    }
    assert!(
        popular_sequences.len() < 10,
        "the other invite's event waited behind {} of the popular invite's",
        popular_sequences.len()
    );
    while popular_sequences.len() < BACKLOG as usize {
        popular_sequences.push(events.next().await.event.sequence);
    }
    assert_eq!(
        popular_sequences,
        (1..=BACKLOG).collect::<Vec<_>>(),
        "one invite's events leave in sequence order"
    );
    events.assert_no_more(Duration::from_millis(500)).await;
    events.delete_exchange().await;
    app.stop().await;
}

async fn a_refused_event_is_retried_on_the_same_connection_every_few_seconds(db: Db) {
    let link = Link::up().await;
    let mut options = Options::fresh(db).await;
    options.amqp_url = link.amqp_url();
    let full = Queue::full(&options.exchange).await;
    // Every copy the broker routes reaches this queue too, even when the full
    // one refuses it: it shows each attempt of the relay.
    let mut attempts = Events::bind(&options.exchange).await;
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let (invite, _) = create(&mut client, email_invite("org-1", "b@example.org"), &alice).await;

    // Long enough for a backoff to reach its cap and stay there.
    let first = Instant::now();
    while first.elapsed() < Duration::from_secs(16) {
        let retried = tokio::time::timeout(Duration::from_secs(10), attempts.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "refused, and not retried within 10 s ({:?} in)",
                    first.elapsed()
                )
            });
        assert_eq!(invite_id(&retried), invite.id);
    }
    full.drain_filler().await;
    let delivered = full.next_within(Duration::from_secs(10)).await;

    assert_eq!(delivered.invite.unwrap().id, invite.id);
    assert_eq!(link.accepted(), 1, "the relay kept its one connection");
    full.close().await;
    attempts.delete_exchange().await;
    app.stop().await;
}

async fn a_broker_that_stops_answering_costs_one_timeout_per_batch_not_one_per_event(db: Db) {
    let link = Link::up().await;
    let mut options = Options::fresh(db).await;
    options.amqp_url = link.amqp_url();
    let queue = Queue::bind(&options.exchange, FieldTable::default()).await;
    let app = TestApp::start(options).await;
    let warm_up = Uuid::now_v7();
    insert_events(
        &app.database_url,
        vec![RawEvent::new(warm_up, 1, EventKind::Created)],
    )
    .await;
    let connected = queue.next_within(Duration::from_secs(15)).await;
    assert_eq!(connected.invite.unwrap().id, warm_up.to_string());
    let invites: Vec<_> = (0..5).map(|_| Uuid::now_v7()).collect();

    link.hang_open_connections();
    let batch = invites
        .iter()
        .map(|&invite| RawEvent::new(invite, 1, EventKind::Created))
        .collect();
    insert_events(&app.database_url, batch).await;

    // One broker timeout (10 s) and a reconnect; not one timeout per event.
    let mut delivered = Vec::new();
    for _ in &invites {
        let event = queue.next_within(Duration::from_secs(30)).await;
        delivered.push(event.invite.unwrap().id);
    }
    let written: Vec<_> = invites.iter().map(Uuid::to_string).collect();
    assert_eq!(delivered, written);
    assert_eq!(link.accepted(), 2, "one reconnect");
    queue.close().await;
    app.stop().await;
}

async fn an_undecodable_event_stays_unpublished_and_holds_back_only_its_own_invite(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let (broken, garbled, healthy) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let undecodable = RawEvent::new(broken, 1, EventKind::Created)
        .with_payload(b"\xff\xff\xff not an InviteEvent")
        .with_token("a-token-to-send");
    let after_it = RawEvent::new(broken, 2, EventKind::Revoked);
    let without_token = RawEvent::new(garbled, 1, EventKind::Created).with_payload(b"\xff");
    let held = [
        (undecodable.id, "the undecodable event"),
        (after_it.id, "the event after it"),
        (without_token.id, "an undecodable event without a token"),
    ];
    let healthy_event = RawEvent::new(healthy, 1, EventKind::Created);
    let queued = vec![undecodable, after_it, without_token, healthy_event];
    insert_events(&app.database_url, queued).await;

    assert_eq!(invite_id(&events.next().await), healthy.to_string());
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let (later, _) = create(&mut client, email_invite("org-1", "c@example.org"), &alice).await;
    assert_eq!(
        invite_id(&events.next().await),
        later.id,
        "the broken invite's next event waits behind the undecodable one"
    );
    assert_unpublished(&app.database_url, &held).await;
    events.assert_no_more(Duration::from_millis(500)).await;
    events.delete_exchange().await;
    app.stop().await;
}

async fn assert_unpublished(database_url: &str, events: &[(Uuid, &str)]) {
    let db = Database::connect(database_url).await.unwrap();
    for (id, what) in events {
        let row = invite_event::Entity::find()
            .filter(invite_event::Column::Id.eq(*id))
            .one(&db)
            .await
            .unwrap()
            .expect("the row is kept");
        assert_eq!(row.published_at, None, "{what} is not stamped as published");
    }
    db.close().await.ok();
}

fn invite_id(received: &Received) -> String {
    received
        .event
        .invite
        .as_ref()
        .expect("an invite")
        .id
        .clone()
}

/// Nobody binds `invite.created` here: the broker routes it nowhere, and
/// that must not hold back the `invite.accepted` events a consumer did bind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_bound_to_one_key_gets_its_events_while_other_keys_route_nowhere() {
    let app = spawn_app(Db::Sqlite).await;
    let mut accepted_only = Events::bind_to(&app.exchange, "invite.accepted").await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let mut accepted = Vec::new();
    for invitee in ["bob", "carol"] {
        let email = format!("{invitee}@example.org");
        let (invite, link) = create(&mut client, email_invite("org-1", &email), &alice).await;
        client
            .accept_invite(authed(
                accept_by_token(link),
                &token(invitee, Some(&email), false),
            ))
            .await
            .unwrap();
        accepted.push((invite.id, invitee));
    }

    let received = accepted_only.take(2).await;

    let seen: Vec<_> = received
        .iter()
        .map(|r| {
            let event = &r.event;
            (
                r.routing_key.as_str(),
                event.invite.as_ref().unwrap().id.clone(),
                event.actor_id.as_str(),
                event.sequence,
            )
        })
        .collect();
    let expected: Vec<_> = accepted
        .iter()
        .map(|(id, invitee)| ("invite.accepted", id.clone(), *invitee, 2))
        .collect();
    assert_eq!(seen, expected);
    accepted_only
        .assert_no_more(Duration::from_millis(300))
        .await;
    accepted_only.delete_exchange().await;
    app.stop().await;
}

/// The relay finds heads in a prefix of the backlog; one invite's backlog
/// longer than the longest prefix must not hide the invites behind it.
async fn heads_behind_backlogs_longer_than_the_prefix_are_read_by_invite(db: Db) {
    let mut options = Options::fresh(db).await;
    options.amqp_url = "amqp://127.0.0.1:1/%2f".into(); // nothing publishes
    let app = TestApp::start(options).await;
    let (popular, other) = (Uuid::now_v7(), Uuid::now_v7());
    let mut backlog: Vec<_> = (1..=2_000)
        .map(|seq| RawEvent::new(popular, seq, EventKind::Accepted))
        .collect();
    backlog.push(RawEvent::new(other, 1, EventKind::Created));
    insert_events(&app.database_url, backlog).await;
    let conn = Database::connect(&app.database_url).await.unwrap();

    let within = |max_prefix| invite_service::store::unpublished_heads(&conn, 200, max_prefix);
    let heads = |events: Vec<invite_event::Model>| -> Vec<(Uuid, i64)> {
        events.iter().map(|e| (e.invite_id, e.sequence)).collect()
    };
    let by_invite = heads(within(1_600).await.unwrap());
    let from_prefix = heads(within(12_800).await.unwrap());

    assert_eq!(by_invite, vec![(popular, 1), (other, 1)], "past the prefix");
    assert_eq!(from_prefix, by_invite, "within the prefix");
    conn.close().await.ok();
    app.stop().await;
}
