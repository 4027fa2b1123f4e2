//! The sequencer: every committed event gets one `log_position`, in an order
//! in which events became visible, so a reader of "after the cursor" never
//! skips an event whose transaction committed late.

use std::time::Duration;

use invite_service::{
    pb,
    store::{self, entities::invite_event},
};
use migration::{Migrator, MigratorTrait as _};
use prost::Message as _;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait as _, Database, DatabaseConnection, EntityTrait as _,
    QueryOrder as _, TransactionTrait as _,
};
use uuid::Uuid;

use crate::helpers::*;
use crate::on_both_databases;

on_both_databases!(every_committed_event_is_numbered_once_keeping_each_invites_order);

async fn every_committed_event_is_numbered_once_keeping_each_invites_order(db: Db) {
    let scene = alice_invites_bob(db).await;
    let mut client = scene.client.clone();
    client
        .accept_invite(authed(accept_by_token(scene.link.clone()), &scene.bob))
        .await
        .unwrap();
    for n in 0..5 {
        create(
            &mut client,
            email_invite("org-2", &format!("u{n}@example.org")),
            &scene.alice,
        )
        .await;
    }
    let conn = Database::connect(&scene.app.database_url).await.unwrap();

    let rows = numbered_rows(&conn, 7).await;

    let numbers: Vec<i64> = rows.iter().map(|row| row.log_position.unwrap()).collect();
    let mut unique = numbers.clone();
    unique.dedup();
    assert_eq!(unique, numbers, "one number each, in ascending order");
    let invite = Uuid::parse_str(&scene.invite.id).unwrap();
    let sequences: Vec<i64> = rows
        .iter()
        .filter(|row| row.invite_id == invite)
        .map(|row| row.sequence)
        .collect();
    assert_eq!(sequences, [1, 2], "an invite's events in their order");
    assert!(
        rows.iter()
            .all(|row| row.target_type.as_deref() == Some("organization")),
        "each row names its invite's target"
    );
    conn.close().await.ok();
    scene.end().await;
}

/// The case "position greater than the last seen" gets wrong: a transaction
/// takes a position, another takes a higher one and commits first. The
/// first is numbered after the second, so a reader that has passed the
/// second still reads the first. PostgreSQL only: SQLite's one writer
/// cannot interleave the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_late_is_numbered_after_those_committed_before_it() {
    let app = spawn_app(Db::Postgres).await;
    let conn = Database::connect(&app.database_url).await.unwrap();
    let late = conn.begin().await.unwrap();
    let early_position = insert_event(&late).await;
    let later_position = insert_event(&conn).await;

    let seen_first = wait_until_numbered(&conn, later_position).await;
    late.commit().await.unwrap();
    let seen_last = wait_until_numbered(&conn, early_position).await;

    assert!(early_position < later_position);
    assert!(
        seen_last > seen_first,
        "numbered in the order they became visible: {seen_first} then {seen_last}"
    );
    conn.close().await.ok();
    app.stop().await;
}

/// An event row as a use case writes it (for an invite of its own), written
/// on `conn`; returns its position.
pub(crate) async fn insert_event(conn: &impl sea_orm::ConnectionTrait) -> i64 {
    let invite_id = Uuid::now_v7();
    let id = Uuid::now_v7();
    let body = pb::InviteEvent {
        event_id: id.to_string(),
        r#type: pb::InviteEventType::Created.into(),
        sequence: 1,
        invite: Some(pb::Invite {
            id: invite_id.to_string(),
            target_type: "organization".into(),
            target_id: "org-1".into(),
            inviter_id: "alice".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let row = invite_event::ActiveModel {
        id: Set(id),
        invite_id: Set(invite_id),
        sequence: Set(1),
        event_type: Set("created".into()),
        actor_id: Set("alice".into()),
        occurred_at: Set(chrono::Utc::now()),
        payload: Set(body.encode_to_vec()),
        target_type: Set(Some("organization".into())),
        target_id: Set(Some("org-1".into())),
        ..Default::default()
    };
    invite_event::Entity::insert(row)
        .exec(conn)
        .await
        .unwrap()
        .last_insert_id
}

/// The row's `log_position`, once the sequencer has given it one.
async fn wait_until_numbered(conn: &DatabaseConnection, position: i64) -> i64 {
    for _ in 0..100 {
        let row = invite_event::Entity::find_by_id(position)
            .one(conn)
            .await
            .unwrap()
            .expect("the row");
        if let Some(number) = row.log_position {
            return number;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("row {position} was not numbered within 5 s");
}

/// The event rows in log order, once `count` of them are numbered and none
/// is waiting.
async fn numbered_rows(conn: &DatabaseConnection, count: usize) -> Vec<invite_event::Model> {
    for _ in 0..100 {
        let rows = invite_event::Entity::find()
            .order_by_asc(invite_event::Column::LogPosition)
            .all(conn)
            .await
            .unwrap();
        // Judged on the rows read, in one statement: a second look for
        // unnumbered rows could come after the sequencer numbered them.
        let numbered = rows.iter().all(|row| row.log_position.is_some());
        if numbered && rows.len() == count {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{count} numbered events were not there within 5 s");
}

/// The relay stamps rows the sequencer may be numbering: both must lock them
/// in position order, or each can hold a row the other waits for, a
/// deadlock PostgreSQL breaks only after a second. Here the lower row is
/// moved past the higher one on disk (an update writes a new version), so
/// an UPDATE that locks in its scan order meets the higher row first.
/// PostgreSQL only: SQLite has no row locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relays_stamp_locks_rows_in_position_order() {
    let url = fresh_database(Db::Postgres).await;
    let conn = Database::connect(&url).await.unwrap();
    Migrator::up(&conn, None).await.unwrap();
    let low = insert_event(&conn).await;
    let high = insert_event(&conn).await;
    conn.execute_unprepared(&format!(
        "UPDATE invite_events SET actor_id = 'bob' WHERE position = {low}"
    ))
    .await
    .unwrap();
    let holder = conn.begin().await.unwrap();
    lock_row(&holder, high, "").await.unwrap();

    let stamper_conn = Database::connect(&url).await.unwrap();
    let stamper = tokio::spawn(async move {
        let txn = stamper_conn.begin().await.unwrap();
        store::mark_published(&txn, &[low, high], chrono::Utc::now())
            .await
            .unwrap();
        txn.commit().await.unwrap();
    });
    wait_until_a_row_lock_is_awaited(&conn).await;
    let low_taken = lock_row(&holder, low, "NOWAIT").await;

    let refused = low_taken.expect_err(&format!(
        "the stamp waits for row {high} without holding row {low}: it locks out of order"
    ));
    assert!(
        refused.to_string().contains("could not obtain lock"),
        "{refused}"
    );
    holder.rollback().await.unwrap();
    stamper.await.unwrap();
    let stamped = invite_event::Entity::find().all(&conn).await.unwrap();
    assert!(stamped.iter().all(|row| row.published_at.is_some()));
    conn.close().await.ok();
}

async fn lock_row(
    txn: &sea_orm::DatabaseTransaction,
    position: i64,
    wait: &str,
) -> Result<(), sea_orm::DbErr> {
    txn.execute_unprepared(&format!(
        "SELECT position FROM invite_events WHERE position = {position} FOR UPDATE {wait}"
    ))
    .await
    .map(drop)
}

/// Returns once a session of this database waits for a row lock.
async fn wait_until_a_row_lock_is_awaited(conn: &DatabaseConnection) {
    for _ in 0..100 {
        let waiting = conn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*) AS waiting FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "waiting")
            .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the stamp did not wait for the held row within 5 s");
}
