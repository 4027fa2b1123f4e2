//! WatchInvites while many transactions commit at once, out of order: every
//! committed event reaches the watcher exactly once, and each invite's in
//! order. The test a cursor that skips late commits fails: on PostgreSQL a
//! transaction takes its position before all the others and commits after
//! the watcher has read them.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use crate::helpers::*;
use crate::on_both_databases;

on_both_databases!(every_event_committed_while_watching_arrives_once_and_in_each_invites_order);

const LINKS: usize = 6;
const USERS_PER_LINK: usize = 12;
const CREATORS: usize = 4;
const CREATES_EACH: usize = 15;

async fn every_event_committed_while_watching_arrives_once_and_in_each_invites_order(db: Db) {
    let app = spawn_app(db).await;
    let admin = token("ops", None, true);
    let mut stream = watch(
        &mut app.client().await,
        watch_request(None, &[], ""),
        &admin,
    )
    .await;
    // SQLite's one writer would wait for it: PostgreSQL only.
    let late = match db {
        Db::Postgres => Some(LateCommit::begin(&app.database_url).await),
        Db::Sqlite => None,
    };

    let mut writers = Vec::new();
    for n in 0..LINKS {
        writers.push(tokio::spawn(link_used_by_many(app.client().await, n)));
    }
    for n in 0..CREATORS {
        let mut client = app.client().await;
        writers.push(tokio::spawn(async move {
            let inviter = token(&format!("creator-{n}"), None, false);
            for k in 0..CREATES_EACH {
                let email = format!("c{n}-{k}@example.org");
                create(&mut client, email_invite("org-1", &email), &inviter).await;
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let expected = LINKS * (1 + USERS_PER_LINK) + CREATORS * CREATES_EACH;
    let mut received = next_messages(&mut stream, expected).await;
    if let Some(late) = late {
        late.commit().await;
        received.extend(next_messages(&mut stream, 1).await);
    }
    let committed: HashSet<String> = event_ids_in_log_order(&app.database_url)
        .await
        .into_iter()
        .collect();

    assert_eq!(committed.len(), received.len());
    let ids = event_ids(&received);
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "none repeated");
    assert_eq!(unique, committed, "none lost");
    let mut last_sequence: HashMap<String, i64> = HashMap::new();
    for (_, invite, sequence) in seen(&received) {
        let last = last_sequence.insert(invite.clone(), sequence).unwrap_or(0);
        assert_eq!(sequence, last + 1, "invite {invite}'s events in order");
    }
    assert_no_more_messages(&mut stream, Duration::from_millis(700)).await;
    app.stop().await;
}

/// A transaction holding an event row (a position below every event the
/// test writes next) until told to commit.
struct LateCommit {
    conn: sea_orm::DatabaseConnection,
    txn: sea_orm::DatabaseTransaction,
}

impl LateCommit {
    async fn begin(database_url: &str) -> Self {
        use sea_orm::TransactionTrait as _;
        let conn = sea_orm::Database::connect(database_url).await.unwrap();
        let txn = conn.begin().await.unwrap();
        crate::sequencer::insert_event(&txn).await;
        Self { conn, txn }
    }

    async fn commit(self) {
        self.txn.commit().await.unwrap();
        self.conn.close().await.ok();
    }
}

/// An open link, then many users accepting it at once.
async fn link_used_by_many(
    mut client: invite_service::pb::invite_service_client::InviteServiceClient<
        tonic::transport::Channel,
    >,
    n: usize,
) {
    let host = token(&format!("host-{n}"), None, false);
    let (_, link) = create(&mut client, open_link(&format!("p-{n}"), Some(0)), &host).await;
    let mut accepts = Vec::new();
    for user in 0..USERS_PER_LINK {
        let mut client = client.clone();
        let request = authed(
            accept_by_token(link.clone()),
            &token(&format!("guest-{n}-{user}"), None, false),
        );
        accepts.push(tokio::spawn(async move {
            client.accept_invite(request).await.expect("accepted")
        }));
    }
    for accept in accepts {
        accept.await.unwrap();
    }
}
