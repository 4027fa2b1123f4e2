//! Retention (`--retention`): finished invites, and deleted invites'
//! histories, kept longer than the retention are removed with everything
//! they left; pending and recent ones stay, and nothing goes while one of
//! its events waits to be published. Time goes by through rows backdated
//! in the test's own database.

mod rows;

use std::time::Duration;

use futures_util::StreamExt as _;
use invite_service::pb::{self, InviteStatus, invite_service_client::InviteServiceClient};
use tonic::{Code, Status, transport::Channel};

use crate::helpers::*;
use crate::on_both_databases;
use rows::{Rows, Tables, counted};

on_both_databases!(
    finished_invites_kept_longer_than_the_retention_are_removed_with_all_they_left,
    a_finished_invite_with_an_unpublished_event_is_kept_until_the_event_is_published,
);

/// Longer than the retention the servers under test run with (`1h`).
fn past_retention() -> chrono::Duration {
    chrono::Duration::hours(2)
}

/// A server sweeping five times a second with a retention of an hour.
async fn retaining(db: Db) -> Options {
    let mut options = Options::fresh(db).await;
    options.sweep_interval = Duration::from_millis(200);
    options
        .flags
        .extend(["--retention", "1h", "--metrics-listen", "127.0.0.1:0"].map(String::from));
    options
}

async fn get(
    client: &mut InviteServiceClient<Channel>,
    id: &str,
    caller: &str,
) -> Result<pb::Invite, Status> {
    let request = pb::GetInviteRequest { id: id.into() };
    Ok(client
        .get_invite(authed(request, caller))
        .await?
        .into_inner())
}

async fn history(
    client: &mut InviteServiceClient<Channel>,
    id: &str,
    caller: &str,
) -> Result<Vec<pb::InviteEvent>, Status> {
    let request = pb::ListInviteEventsRequest {
        invite_id: id.into(),
        ..Default::default()
    };
    Ok(client
        .list_invite_events(authed(request, caller))
        .await?
        .into_inner()
        .events)
}

/// Creates a pending invite, whose event is then the newest in the log: the
/// pass keeps the invite holding the newest numbered event (the sequencer
/// numbers on from it), so a test whose invites should all go writes one.
async fn newer_event(client: &mut InviteServiceClient<Channel>, caller: &str) -> String {
    let request = email_invite("org-9", "newest@example.org");
    create(client, request, caller).await.0.id
}

async fn finished_invites_kept_longer_than_the_retention_are_removed_with_all_they_left(db: Db) {
    let options = retaining(db).await;
    let mut events = Events::bind(&options.exchange).await;
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    // Used up by two users: two redemptions.
    let (used_up, link) = create(&mut client, open_link("party-1", Some(2)), &alice).await;
    for user in ["bob", "cy"] {
        let accept = authed(accept_by_token(link.clone()), &token(user, None, false));
        client.accept_invite(accept).await.unwrap();
    }
    // A wrong passcode, then revoked: a row of passcode failures.
    let with_passcode = pb::CreateInviteRequest {
        passcode: "castle-42".into(),
        ..email_invite("org-1", "dan@example.org")
    };
    let (revoked, link) = create(&mut client, with_passcode, &alice).await;
    let wrong = pb::AcceptInviteRequest {
        passcode: "guess".into(),
        ..accept_by_token(link)
    };
    let dan = token("dan", Some("dan@example.org"), false);
    let refused = client.accept_invite(authed(wrong, &dan)).await.unwrap_err();
    assert_eq!(reason(&refused), "PASSCODE_INVALID");
    revoke(&mut client, &revoked.id, &alice).await;
    let (pending, _) = create(
        &mut client,
        email_invite("org-1", "eve@example.org"),
        &alice,
    )
    .await;
    let (recent, _) = create(
        &mut client,
        email_invite("org-1", "fay@example.org"),
        &alice,
    )
    .await;
    let fay = token("fay", Some("fay@example.org"), false);
    let reject = pb::RejectInviteRequest {
        invite_ref: Some(pb::reject_invite_request::InviteRef::Id(recent.id.clone())),
    };
    client.reject_invite(authed(reject, &fay)).await.unwrap();
    let (deleted, _) = create(
        &mut client,
        email_invite("org-1", "gus@example.org"),
        &alice,
    )
    .await;
    let delete = pb::DeleteInviteRequest {
        id: deleted.id.clone(),
    };
    client.delete_invite(authed(delete, &alice)).await.unwrap();
    newer_event(&mut client, &alice).await;
    events.take(11).await;
    wait_until_outbox_is_empty(&app.database_url).await;
    let tables = Tables::open(&app.database_url).await;
    let before = tables.rows_of(&used_up.id).await;
    assert_eq!((before.events, before.redemptions), (3, 2));
    assert_eq!(tables.rows_of(&revoked.id).await.passcode_failures, 1);
    assert_eq!(
        history(&mut client, &deleted.id, &alice)
            .await
            .unwrap()
            .len(),
        2
    );

    let old = [&used_up.id, &revoked.id, &pending.id, &deleted.id].map(String::as_str);
    tables.backdate(&old, past_retention()).await;
    let removed = [&used_up.id, &revoked.id, &deleted.id].map(String::as_str);
    tables.wait_until_gone(&removed).await;

    for id in removed {
        let got = get(&mut client, id, &alice).await.unwrap_err();
        assert_eq!(got.code(), Code::NotFound, "GetInvite {id}");
        let listed = history(&mut client, id, &alice).await.unwrap_err();
        assert_eq!(listed.code(), Code::NotFound, "ListInviteEvents {id}");
    }
    let kept = get(&mut client, &pending.id, &alice).await.unwrap();
    assert_eq!(kept.status(), InviteStatus::Pending, "pending, however old");
    assert_eq!(
        history(&mut client, &pending.id, &alice)
            .await
            .unwrap()
            .len(),
        1
    );
    let kept = get(&mut client, &recent.id, &alice).await.unwrap();
    assert_eq!(
        kept.status(),
        InviteStatus::Rejected,
        "finished, but recently"
    );
    assert_eq!(
        history(&mut client, &recent.id, &alice)
            .await
            .unwrap()
            .len(),
        2
    );
    let scraped = app.scrape().await;
    assert_eq!(counted(&scraped, "invites_retention_deleted_total"), 3);
    assert_eq!(counted(&scraped, "invites_retention_failures_total"), 0);
    events.assert_no_more(Duration::from_millis(500)).await;
    tables.close().await;
    events.delete_exchange().await;
    app.stop().await;
}

async fn a_finished_invite_with_an_unpublished_event_is_kept_until_the_event_is_published(db: Db) {
    let mut link = BrokerLink::up().await;
    let mut options = retaining(db).await;
    options.amqp_url = link.amqp_url();
    let events = Events::bind(&options.exchange).await;
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let (waiting, _) = create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &alice,
    )
    .await;
    let (witness, _) = create(&mut client, email_invite("org-1", "cy@example.org"), &alice).await;
    revoke(&mut client, &witness.id, &alice).await;
    wait_until_outbox_is_empty(&app.database_url).await;
    link.cut();
    revoke(&mut client, &waiting.id, &alice).await;
    let tables = Tables::open(&app.database_url).await;
    assert_eq!(tables.unpublished_of(&waiting.id).await, 1);

    tables
        .backdate(&[&waiting.id, &witness.id], past_retention())
        .await;
    // The witness going shows that a pass ran after both were backdated.
    tables.wait_until_gone(&[&witness.id]).await;

    let kept = get(&mut client, &waiting.id, &alice).await.unwrap();
    assert_eq!(kept.status(), InviteStatus::Revoked);
    assert_eq!(
        tables.rows_of(&waiting.id).await,
        Rows {
            invites: 1,
            events: 2,
            ..Rows::NONE
        }
    );
    assert_eq!(
        counted(&app.scrape().await, "invites_retention_deleted_total"),
        1
    );

    link.restore().await;
    newer_event(&mut client, &alice).await;
    tables.wait_until_gone(&[&waiting.id]).await;

    let gone = get(&mut client, &waiting.id, &alice).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(
        counted(&app.scrape().await, "invites_retention_deleted_total"),
        2
    );
    tables.close().await;
    events.delete_exchange().await;
    app.stop().await;
}

/// One retention pass at a time across replicas: each removal is done, and
/// counted, once; neither replica's pass fails on the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_retaining_on_one_postgres_remove_each_invite_once() {
    const INVITES: usize = 40;
    let options = retaining(Db::Postgres).await;
    let events = Events::bind(&options.exchange).await;
    let first = TestApp::start(options.clone()).await;
    let second = TestApp::start(options).await;
    let client = first.client().await;
    let alice = token("alice", None, false);
    let finish = (0..INVITES).map(|n| {
        let (mut client, alice) = (client.clone(), alice.clone());
        async move {
            let request = email_invite("org-1", &format!("u{n}@example.org"));
            let (invite, _) = create(&mut client, request, &alice).await;
            // Half revoked, half deleted: both kinds of removal.
            if n % 2 == 0 {
                revoke(&mut client, &invite.id, &alice).await;
            } else {
                let delete = pb::DeleteInviteRequest {
                    id: invite.id.clone(),
                };
                client.delete_invite(authed(delete, &alice)).await.unwrap();
            }
            invite.id
        }
    });
    let ids: Vec<String> = futures_util::stream::iter(finish)
        .buffer_unordered(8)
        .collect()
        .await;
    newer_event(&mut client.clone(), &alice).await;
    wait_until_outbox_is_empty(&first.database_url).await;
    let tables = Tables::open(&first.database_url).await;
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();

    tables.backdate(&ids, past_retention()).await;
    tables.wait_until_gone(&ids).await;

    let (first_scraped, second_scraped) = (first.scrape().await, second.scrape().await);
    assert_eq!(
        counted(&first_scraped, "invites_retention_deleted_total")
            + counted(&second_scraped, "invites_retention_deleted_total"),
        INVITES as u64,
        "the replicas together removed each invite once"
    );
    for scraped in [&first_scraped, &second_scraped] {
        assert_eq!(counted(scraped, "invites_retention_failures_total"), 0);
    }
    tables.close().await;
    events.delete_exchange().await;
    first.stop().await;
    second.stop().await;
}
