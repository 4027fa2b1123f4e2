//! Three replicas as real processes on one PostgreSQL database and one
//! exchange, the relay's current leader killed with SIGKILL half-way: no
//! event is lost, each invite's events keep their order, and another
//! replica takes the relay over within seconds.

use std::{collections::HashMap, time::Duration};

use futures_util::StreamExt as _;
use invite_service::pb::{self, invite_service_client::InviteServiceClient};
use sea_orm::{ConnectionTrait as _, Database, DatabaseConnection, Statement};
use tonic::transport::Channel;

use crate::helpers::*;

const REPLICAS: usize = 3;
/// Invites created before the kill and while it happens.
const BEFORE: usize = 60;
const DURING: usize = 60;

/// The replica whose relay holds the advisory lock now, polled until one does.
async fn relay_leader(db: &DatabaseConnection) -> String {
    let query = "SELECT a.application_name FROM pg_locks l \
                 JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted \
                 AND a.datname = current_database()";
    for _ in 0..5000 {
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), query))
            .await
            .unwrap();
        if let Some(row) = row {
            return row.try_get::<String>("", "application_name").unwrap();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("no replica's relay took the lock while events were waiting");
}

/// Creates invite `n` on one replica, idempotently: a replica killed before
/// it answered leaves the retry, with the same request id, to another.
async fn create_anywhere(
    replicas: &[InviteServiceClient<Channel>],
    n: usize,
    alice: &str,
) -> (usize, pb::Invite, String) {
    let request_id = uuid::Uuid::now_v7().to_string();
    let mut failures = Vec::new();
    for attempt in 0..replicas.len() {
        let mut client = replicas[(n + attempt) % replicas.len()].clone();
        let request = pb::CreateInviteRequest {
            request_id: request_id.clone(),
            ..email_invite("org-1", &format!("u{n}@example.org"))
        };
        match client.create_invite(authed(request, alice)).await {
            Ok(created) => {
                let created = created.into_inner();
                return (n, created.invite.unwrap(), created.token);
            }
            Err(status) => failures.push(status),
        }
    }
    panic!("no replica created invite {n}: {failures:?}");
}

async fn create_many(
    replicas: Vec<InviteServiceClient<Channel>>,
    numbers: std::ops::Range<usize>,
) -> Vec<(usize, pb::Invite, String)> {
    let alice = token("alice", None, false);
    futures_util::stream::iter(numbers)
        .map(|n| {
            let (replicas, alice) = (replicas.clone(), alice.clone());
            async move { create_anywhere(&replicas, n, &alice).await }
        })
        .buffer_unordered(6)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_relay_leader_of_three_replicas_loses_no_event_and_keeps_each_invites_order() {
    let options = Options::fresh(Db::Postgres).await;
    let mut events = Events::bind(&options.exchange).await;
    let mut replicas = Vec::new();
    for n in 1..=REPLICAS {
        replicas.push(
            start_replica(
                &format!("replica-{n}"),
                &options.database_url,
                &options.exchange,
            )
            .await,
        );
    }
    let db = Database::connect(&options.database_url).await.unwrap();
    let clients = |replicas: &[Replica]| {
        replicas
            .iter()
            .map(|r| r.client.clone())
            .collect::<Vec<_>>()
    };

    let mut invites = create_many(clients(&replicas), 0..BEFORE).await;
    let during = tokio::spawn(create_many(clients(&replicas), BEFORE..BEFORE + DURING));
    let leader = relay_leader(&db).await;
    let victim = replicas.iter().position(|r| r.name == leader).unwrap();
    let mut killed = replicas.remove(victim);
    killed.child.start_kill().unwrap();
    killed.child.wait().await.unwrap();
    let killed_at = chrono::Utc::now();
    invites.extend(during.await.unwrap());
    let survivors = clients(&replicas);
    let bob = |n: usize| {
        token(
            &format!("bob{n}"),
            Some(&format!("u{n}@example.org")),
            false,
        )
    };
    let alice = token("alice", None, false);
    let mut expected: HashMap<String, u64> = HashMap::new();
    for (n, invite, link) in &invites {
        let mut client = survivors[n % survivors.len()].clone();
        if n % 2 == 0 {
            client
                .accept_invite(authed(accept_by_token(link.clone()), &bob(*n)))
                .await
                .unwrap();
        } else {
            client
                .revoke_invite(authed(
                    pb::RevokeInviteRequest {
                        id: invite.id.clone(),
                        reason: String::new(),
                    },
                    &alice,
                ))
                .await
                .unwrap();
        }
        expected.insert(invite.id.clone(), 2);
    }

    let total = 2 * (BEFORE + DURING);
    let mut seen: HashMap<String, Vec<u64>> = HashMap::new();
    let mut distinct = 0;
    while distinct < total {
        let received = events.next().await;
        let invite_id = received.event.invite.as_ref().unwrap().id.clone();
        let sequences = seen.entry(invite_id).or_default();
        let sequence = u64::try_from(received.event.sequence).unwrap();
        if !sequences.contains(&sequence) {
            distinct += 1;
        }
        sequences.push(sequence);
    }
    wait_until_outbox_is_empty(&options.database_url).await;
    let takeover = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT EXTRACT(EPOCH FROM MIN(published_at) - $1)::float8 AS seconds \
             FROM invite_events WHERE occurred_at > $1",
            [killed_at.into()],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<f64>("", "seconds")
        .unwrap();

    assert_eq!(seen.len(), expected.len(), "every invite's events arrived");
    for (invite_id, sequences) in &seen {
        // At least once: the last event may come again (a kill between
        // the broker's confirm and the stamp), but never an older one after
        // a newer, nor a gap.
        let mut highest = 0;
        for &sequence in sequences {
            assert!(
                sequence == highest || sequence == highest + 1,
                "invite {invite_id}: {sequences:?} out of order"
            );
            highest = sequence;
        }
        assert_eq!(
            highest, expected[invite_id],
            "invite {invite_id}: {sequences:?}"
        );
    }
    assert!(
        takeover < 10.0,
        "the relay was taken over {takeover:.1} s after {leader} was killed"
    );
    events.delete_exchange().await;
    for mut replica in replicas {
        replica.child.start_kill().ok();
        replica.child.wait().await.ok();
    }
}
