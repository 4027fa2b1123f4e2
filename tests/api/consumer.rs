//! The membership consumer example against a service under churn: each
//! acceptance becomes exactly one membership, through a restart, a
//! redelivered copy and an out-of-order one; a poison message ends in the
//! dead-letter queue after its tries.
//!
//! The example is compiled into this test as a module rather than run as a
//! process: `cargo test --test api` does not build examples, and in-process
//! the test reads the consumer's tally and stops it as SIGTERM would.

mod churn;
mod fixtures;

#[path = "../../examples/membership_consumer/main.rs"]
#[allow(dead_code)] // its `main` is for `cargo run --example`
mod membership_consumer;

use std::{collections::BTreeSet, sync::Arc};

use uuid::Uuid;

use crate::helpers::*;
use crate::on_both_databases;
use churn::{Acceptance, churn};
use fixtures::*;
use membership_consumer::{Settings, Tally};

on_both_databases!(each_acceptance_becomes_exactly_one_membership_while_the_service_churns);

/// A message that keeps failing is tried this many times plus one.
const DELIVERY_LIMIT: u16 = 3;

async fn each_acceptance_becomes_exactly_one_membership_while_the_service_churns(db: Db) {
    let app = spawn_app(db).await;
    let settings = consumer_settings(&app, db, DELIVERY_LIMIT).await;
    let broker = Broker::declare(&settings).await;
    let tally = Arc::new(Tally::default());

    let expected = churn_through_a_restart(&app, &settings, &tally).await;
    let consumer = Running::start(&settings, &tally);
    wait_for_members(&settings, expected.len()).await;
    let poison_id = publish_copies_and_poison(&broker, &app).await;
    wait_for_copies_and_poison(&broker, &settings, &tally).await;
    consumer.stop().await;

    assert_eq!(
        memberships(&settings).await,
        expected,
        "one member per acceptance, no more"
    );
    let counts = tally.now();
    assert_eq!(counts.added, expected.len() as u64, "{counts:?}");
    assert!(
        counts.duplicates >= 1,
        "the copy is a duplicate: {counts:?}"
    );
    assert!(
        counts.out_of_order >= 1,
        "the older one is out of order: {counts:?}"
    );
    let tries = u64::from(DELIVERY_LIMIT) + 1;
    assert_eq!(counts.failed, tries, "the poison's tries, no other failure");
    assert_eq!(
        broker.ready(&settings.queue).await,
        0,
        "nothing left in the queue"
    );
    assert_poison_is_the_dead_letter(&broker, &settings, &poison_id).await;
    broker.delete(&settings).await;
    app.stop().await;
}

/// Half the churn with the consumer up; it stops (what it holds goes back to
/// the queue) and the other half piles up while it is down. The acceptances
/// that succeeded, each (target, user) once.
async fn churn_through_a_restart(
    app: &TestApp,
    settings: &Settings,
    tally: &Arc<Tally>,
) -> BTreeSet<Acceptance> {
    let client = app.client().await;
    let consumer = Running::start(settings, tally);
    let mut accepted = churn(&client, 0).await;
    consumer.stop().await;
    accepted.extend(churn(&client, 1).await);
    accepted.into_iter().collect()
}

async fn wait_for_members(settings: &Settings, wanted: usize) {
    eventually("every acceptance is a member", || async {
        let members = memberships(settings).await.len();
        (members == wanted)
            .then_some(())
            .ok_or(format!("{members} of {wanted} members"))
    })
    .await;
}

/// By hand: a copy of an applied message (same id), an older acceptance of a
/// link under a new id, and a body that is not an InviteEvent, whose id this
/// returns.
async fn publish_copies_and_poison(broker: &Broker, app: &TestApp) -> String {
    let events = accepted_events(&app.database_url).await;
    let copied = &events[0];
    let copied_id = copied.id.to_string();
    broker
        .publish(&app.exchange, &copied_id, &copied.payload)
        .await;
    let older = events
        .windows(2)
        .find(|pair| pair[0].invite_id == pair[1].invite_id)
        .map(|pair| &pair[0])
        .expect("a link accepted more than once");
    let fresh_id = Uuid::now_v7().to_string();
    broker
        .publish(&app.exchange, &fresh_id, &older.payload)
        .await;
    let poison_id = format!("poison-{}", Uuid::now_v7());
    broker
        .publish(&app.exchange, &poison_id, b"not an InviteEvent")
        .await;
    poison_id
}

async fn wait_for_copies_and_poison(broker: &Broker, settings: &Settings, tally: &Tally) {
    let dead_letters = settings.dead_letter_queue();
    eventually("the copies are seen, the poison dead-lettered", || async {
        let counts = tally.now();
        let dead = broker.ready(&dead_letters).await;
        let done = counts.duplicates >= 1 && counts.already_members == 1 && dead == 1;
        done.then_some(())
            .ok_or(format!("{counts:?}, {dead} dead letters"))
    })
    .await;
}

async fn assert_poison_is_the_dead_letter(broker: &Broker, settings: &Settings, poison_id: &str) {
    let dead = broker
        .take(&settings.dead_letter_queue())
        .await
        .expect("a dead letter");
    let properties = &dead.delivery.properties;
    let dead_id = properties.message_id().as_ref().map(|id| id.as_str());
    assert_eq!(dead_id, Some(poison_id), "the poison is the dead letter");
    assert_eq!(
        header(&dead, "x-first-death-reason").as_deref(),
        Some("delivery_limit"),
        "dead-lettered for its tries, not rejected"
    );
}
