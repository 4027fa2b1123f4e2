//! Faults under load: the broker or PostgreSQL goes away and comes back
//! while creates and accepts run. Whatever was answered OK has its event,
//! and nothing is half-written.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use invite_service::pb::{self, invite_service_client::InviteServiceClient};
use sea_orm::{ConnectionTrait as _, Database, Statement};
use tokio::{sync::Mutex, time::Instant};
use tonic::{Code, transport::Channel};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::*;

/// Many calls from one inviter and one invitee: no rate limit in the way.
fn unlimited(mut options: Options) -> Options {
    options
        .flags
        .extend(["--create-rate-limit", "0", "--token-rate-limit", "0"].map(String::from));
    options
}

/// (invite id, sequence) of each event a call answered OK promised.
type Promised = Arc<Mutex<HashSet<(String, i64)>>>;

/// A failed call: its code and how long it took to fail.
type Failure = (Code, Duration);

/// One caller's loop until `until`: create an invite for bob, accept it.
/// Records what OK answers promise, and every failure.
async fn create_and_accept(
    mut client: InviteServiceClient<Channel>,
    caller: usize,
    until: Instant,
    promised: Promised,
) -> Vec<Failure> {
    let alice = token("alice", None, false);
    let bob = token("bob", None, false);
    let mut failures = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let request = pb::CreateInviteRequest {
            invite: Some(pb::Invite {
                target_type: "organization".into(),
                target_id: format!("org-{caller}-{n}"),
                invitee: Some(pb::invite::Invitee::InviteeUserId("bob".into())),
                ..Default::default()
            }),
            ..Default::default()
        };
        let started = Instant::now();
        let created = match client.create_invite(authed(request, &alice)).await {
            Ok(created) => created.into_inner(),
            Err(status) => {
                failures.push((status.code(), started.elapsed()));
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let id = created.invite.unwrap().id;
        promised.lock().await.insert((id.clone(), 1));
        let started = Instant::now();
        match client
            .accept_invite(authed(accept_by_token(created.token), &bob))
            .await
        {
            Ok(_) => {
                promised.lock().await.insert((id, 2));
            }
            Err(status) => failures.push((status.code(), started.elapsed())),
        }
    }
    failures
}

async fn load(
    app: &TestApp,
    callers: usize,
    run_for: Duration,
    promised: &Promised,
) -> Vec<Failure> {
    let until = Instant::now() + run_for;
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let client = app.client().await;
        tasks.push(tokio::spawn(create_and_accept(
            client,
            caller,
            until,
            promised.clone(),
        )));
    }
    let mut failures = Vec::new();
    for task in tasks {
        failures.extend(task.await.unwrap());
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_answered_ok_while_the_broker_comes_and_goes_has_its_event_delivered() {
    let mut link = BrokerLink::up().await;
    let mut options = unlimited(Options::fresh(Db::Postgres).await);
    options.amqp_url = link.amqp_url();
    let mut events = Events::bind(&options.exchange).await;
    let app = TestApp::start(options).await;
    let promised = Promised::default();

    let running = load(&app, 4, Duration::from_secs(3), &promised);
    let cutting = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        link.cut();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        link.restore().await;
    };
    let (failures, ()) = tokio::join!(running, cutting);
    wait_until_outbox_is_empty(&app.database_url).await;

    let promised = promised.lock().await.clone();
    assert!(
        failures.is_empty(),
        "the broker plays no part in calls: {failures:?}"
    );
    assert!(
        promised.len() > 20,
        "load ran: {} events promised",
        promised.len()
    );
    let mut delivered: HashMap<(String, i64), usize> = HashMap::new();
    let mut message_ids = HashSet::new();
    while delivered.len() < promised.len() {
        let received = events.next().await;
        let key = (
            received.event.invite.as_ref().unwrap().id.clone(),
            received.event.sequence,
        );
        assert!(
            promised.contains(&key),
            "an event no call promised: {key:?}"
        );
        message_ids.insert(
            received
                .properties
                .message_id()
                .clone()
                .unwrap()
                .to_string(),
        );
        *delivered.entry(key).or_default() += 1;
    }
    assert_eq!(
        message_ids.len(),
        promised.len(),
        "one message id per event, however often it was delivered"
    );
    events.delete_exchange().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgres_comes_and_goes_calls_fail_fast_and_nothing_is_half_written() {
    let mut options = unlimited(Options::fresh(Db::Postgres).await);
    let mut link = TcpLink::to_postgres_of(&options.database_url).await;
    let direct_url = options.database_url.clone();
    options.database_url = link.postgres_url(&options.database_url);
    let app = TestApp::start(options).await;
    let promised = Promised::default();

    let running = load(&app, 4, Duration::from_secs(4), &promised);
    let cutting = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        link.cut();
        let cut_at = Instant::now();
        let mut went_down = None;
        while cut_at.elapsed() < Duration::from_secs(10) {
            if app.health().await == ServingStatus::NotServing {
                went_down = Some(cut_at.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        link.restore().await;
        went_down
    };
    let (failures, went_down) = tokio::join!(running, cutting);
    wait_for_serving(&app).await;
    let after = app
        .client()
        .await
        .create_invite(authed(
            email_invite("org-after", "after@example.org"),
            &token("alice", None, false),
        ))
        .await;

    assert!(went_down.is_some(), "health went NOT_SERVING while cut");
    assert!(!failures.is_empty(), "some calls met the cut");
    assert!(
        failures.iter().all(|(code, _)| *code == Code::Unavailable),
        "calls fail UNAVAILABLE, nothing else: {failures:?}"
    );
    // Within the pool's acquire timeout (5 s), never queued without end.
    assert!(
        failures
            .iter()
            .all(|(_, took)| *took < Duration::from_secs(6)),
        "calls fail fast: {failures:?}"
    );
    assert!(after.is_ok(), "recovered without a restart: {after:?}");
    let db = Database::connect(&direct_url).await.unwrap();
    let orphans = |sql: &str| {
        let db = &db;
        let sql = sql.to_owned();
        async move {
            db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .unwrap()
                .unwrap()
                .try_get::<i64>("", "n")
                .unwrap()
        }
    };
    let invites_without_event = orphans(
        "SELECT COUNT(*) AS n FROM invites i WHERE NOT EXISTS \
         (SELECT 1 FROM invite_events e WHERE e.invite_id = i.id AND e.sequence = 1)",
    )
    .await;
    let events_without_invite = orphans(
        "SELECT COUNT(*) AS n FROM invite_events e WHERE NOT EXISTS \
         (SELECT 1 FROM invites i WHERE i.id = e.invite_id)",
    )
    .await;
    let accepted_without_event = orphans(
        "SELECT COUNT(*) AS n FROM invites i WHERE i.status = 'accepted' AND NOT EXISTS \
         (SELECT 1 FROM invite_events e WHERE e.invite_id = i.id AND e.event_type = 'accepted')",
    )
    .await;
    assert_eq!(invites_without_event, 0);
    assert_eq!(events_without_invite, 0);
    assert_eq!(accepted_without_event, 0);
    let promised = promised.lock().await.len();
    assert!(promised > 20, "load ran: {promised} events promised");
    app.stop().await;
}

async fn wait_for_serving(app: &TestApp) {
    for _ in 0..300 {
        if app.health().await == ServingStatus::Serving {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("health did not come back to SERVING within 30 s");
}

/// The service killed with SIGKILL while creates and accepts run, then
/// started again on the same database: what was answered OK is published,
/// nothing stays stuck in the outbox, and nothing is half-written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_killed_mid_load_and_started_again_loses_no_event_and_leaves_none_stuck() {
    let options = Options::fresh(Db::Postgres).await;
    let mut events = Events::bind(&options.exchange).await;
    let mut first = start_replica("first", &options.database_url, &options.exchange).await;
    let promised = Promised::default();
    let until = Instant::now() + Duration::from_secs(30);
    let callers: Vec<_> = (0..4)
        .map(|caller| {
            tokio::spawn(create_and_accept(
                first.client.clone(),
                caller,
                until,
                promised.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();
    for caller in callers {
        // Calls made after the kill fail; the loops are stopped here.
        caller.abort();
    }
    let _second = start_replica("second", &options.database_url, &options.exchange).await;
    wait_until_outbox_is_empty(&options.database_url).await;

    let promised = promised.lock().await.clone();
    assert!(
        promised.len() > 20,
        "load ran: {} events promised",
        promised.len()
    );
    let mut delivered = HashSet::new();
    while !promised.is_subset(&delivered) {
        let received = events.next().await;
        delivered.insert((
            received.event.invite.as_ref().unwrap().id.clone(),
            received.event.sequence,
        ));
    }
    let db = Database::connect(&options.database_url).await.unwrap();
    let invites_without_event = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM invites i WHERE NOT EXISTS \
             (SELECT 1 FROM invite_events e WHERE e.invite_id = i.id AND e.sequence = 1)",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(invites_without_event, 0);
    events.delete_exchange().await;
}
