//! The relay under stress: one invite's long backlog.

mod fixtures;

use std::time::Duration;

use invite_service::domain::EventKind;
use uuid::Uuid;

use crate::helpers::*;
use crate::on_both_databases;
use fixtures::{RawEvent, insert_events};

on_both_databases!(one_invites_backlog_does_not_hold_back_another_invites_event,);

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

fn invite_id(received: &Received) -> String {
    received
        .event
        .invite
        .as_ref()
        .expect("an invite")
        .id
        .clone()
}
