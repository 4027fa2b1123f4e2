//! Races settled by the database: row locks and unique indexes.

use std::time::Duration;

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::pb::InviteStatus;
use tonic::Code;

on_both_databases!(twenty_concurrent_accepts_of_a_single_use_link_have_one_winner_and_one_event);

async fn twenty_concurrent_accepts_of_a_single_use_link_have_one_winner_and_one_event(db: Db) {
    const ROUNDS: usize = 5;
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let mut winners = Vec::new();
    // Several rounds: one race may by chance not overlap where it matters.
    for _ in 0..ROUNDS {
        let link = client
            .create_invite(authed(
                open_link("party-1", None),
                &token("host", None, false),
            ))
            .await
            .unwrap()
            .into_inner();
        let results = race_to_accept(&app, &link.token).await;

        let (won, lost): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
        assert_eq!(won.len(), 1, "exactly one winner");
        for refused in lost.into_iter().map(Result::unwrap_err) {
            assert_eq!(refused.code(), Code::FailedPrecondition);
            assert_eq!(reason(&refused), "INVITE_EXHAUSTED");
        }
        let winner = won.into_iter().next().unwrap().unwrap().into_inner();
        assert_eq!(winner.status(), InviteStatus::Accepted);
        assert_eq!(winner.use_count, 1);
        winners.push((winner.id, winner.accepted_by));
    }

    let received = events.take(2 * ROUNDS).await;
    let accepted: Vec<_> = received
        .iter()
        .filter(|r| r.routing_key == "invite.accepted")
        .map(|r| {
            (
                r.event.invite.as_ref().unwrap().id.clone(),
                r.event.actor_id.clone(),
            )
        })
        .collect();
    assert_eq!(
        accepted, winners,
        "one invite.accepted per link, by its winner"
    );
    events.assert_no_more(Duration::from_secs(1)).await;
    events.delete_exchange().await;
    app.stop().await;
}

/// Twenty users accept one link at once: released together, each on its own
/// connection, so that on PostgreSQL (where the row lock decides; SQLite's
/// one writer decides there whatever the code does) the accepts overlap.
async fn race_to_accept(
    app: &TestApp,
    link: &str,
) -> Vec<Result<tonic::Response<invite_service::pb::Invite>, tonic::Status>> {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let mut racers = Vec::new();
    for n in 0..20 {
        let mut client = app.client().await;
        let request = authed(
            accept_by_token(link.to_owned()),
            &token(&format!("racer-{n}"), None, false),
        );
        let start = start.clone();
        racers.push(tokio::spawn(async move {
            start.wait().await;
            client.accept_invite(request).await
        }));
    }
    futures_util::future::join_all(racers)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .collect()
}

/// A create that meets the duplicate while another transaction is revoking
/// it: the duplicate is gone once the create may look at it, so the create
/// succeeds instead of answering a spurious ALREADY_EXISTS. PostgreSQL only:
/// SQLite's single writer cannot interleave the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_that_stops_being_pending_mid_create_does_not_refuse_it() {
    use sea_orm::{ConnectionTrait as _, TransactionTrait as _};
    let mut scene = alice_invites_bob(Db::Postgres).await;
    let db = sea_orm::Database::connect(&scene.app.database_url)
        .await
        .unwrap();
    let revoker = db.begin().await.unwrap();
    let row = format!("'{}'", scene.invite.id);
    revoker
        .execute_unprepared(&format!(
            "SELECT id FROM invites WHERE id = {row} FOR UPDATE"
        ))
        .await
        .unwrap();

    let mut client = scene.client.clone();
    let request = authed(email_invite("org-1", "bob@example.org"), &scene.alice);
    let create = tokio::spawn(async move { client.create_invite(request).await });
    wait_until_a_query_waits_for_a_lock(&db).await;
    revoker
        .execute_unprepared(&format!(
            "UPDATE invites SET status = 'revoked' WHERE id = {row}"
        ))
        .await
        .unwrap();
    revoker.commit().await.unwrap();
    let created = create.await.unwrap();

    let created = created.expect("the duplicate was revoked before the create could see it");
    let created_id = created.into_inner().invite.unwrap().id;
    assert_ne!(created_id, scene.invite.id);
    db.close().await.ok();
    // The revoke was written behind the service's back: no event of its own.
    assert_events(
        &scene.events.take(2).await,
        &[
            ("invite.created", &scene.invite.id, "alice", 1),
            ("invite.created", &created_id, "alice", 1),
        ],
    );
    scene.end().await;
}

async fn wait_until_a_query_waits_for_a_lock(db: &sea_orm::DatabaseConnection) {
    use sea_orm::ConnectionTrait as _;
    let waiting = sea_orm::Statement::from_string(
        sea_orm::DbBackend::Postgres,
        "SELECT 1 FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    );
    for _ in 0..200 {
        if !db.query_all_raw(waiting.clone()).await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the create never waited for the duplicate's row lock");
}
