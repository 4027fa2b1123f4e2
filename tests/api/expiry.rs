//! Expiry: refused at once, swept in the background, once per invite even
//! with several replicas.

use std::{collections::HashMap, time::Duration};

use futures_util::StreamExt as _;

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::pb::{self, InviteEventType, InviteStatus};
use tonic::Code;

on_both_databases!(
    accepting_after_expiry_fails_before_the_sweep_reaches_the_invite,
    the_sweep_expires_pending_invites_with_one_event_each,
    an_expired_invite_the_sweep_has_not_reached_does_not_block_a_new_one,
);

fn expiring_soon(email: &str) -> pb::CreateInviteRequest {
    let mut request = email_invite("org-1", email);
    request.invite.as_mut().unwrap().expires_at = Some(timestamp_in(chrono::Duration::seconds(2)));
    request
}

/// The sweep runs once an hour here: only the accept-time check can refuse,
/// and the invite is still PENDING afterwards, with no `invite.expired`.
async fn accepting_after_expiry_fails_before_the_sweep_reaches_the_invite(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let (invite, link) = create(&mut client, expiring_soon("bob@example.org"), &alice).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;

    let late = client
        .accept_invite(authed(
            accept_by_token(link),
            &token("bob", Some("bob@example.org"), false),
        ))
        .await
        .unwrap_err();
    let after = client
        .get_invite(authed(
            pb::GetInviteRequest {
                id: invite.id.clone(),
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(late.code(), Code::FailedPrecondition);
    assert_eq!(reason(&late), "INVITE_EXPIRED");
    assert_eq!(
        after.status(),
        InviteStatus::Pending,
        "not swept: the accept refused it"
    );
    assert_eq!(events.next().await.routing_key, "invite.created");
    events.assert_no_more(Duration::from_millis(500)).await;
    events.delete_exchange().await;
    app.stop().await;
}

async fn the_sweep_expires_pending_invites_with_one_event_each(db: Db) {
    let mut options = Options::fresh(db).await;
    options.sweep_interval = Duration::from_millis(200);
    let mut events = Events::bind(&options.exchange).await;
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let (soon, _) = create(&mut client, expiring_soon("bob@example.org"), &alice).await;
    let (later, _) = create(&mut client, email_invite("org-1", "cy@example.org"), &alice).await;

    let received = events.take(3).await;

    let expired: Vec<_> = received
        .iter()
        .filter(|r| r.routing_key == "invite.expired")
        .collect();
    assert_eq!(expired.len(), 1);
    let expired = expired[0];
    assert_eq!(expired.event.r#type(), InviteEventType::Expired);
    assert_eq!(expired.event.actor_id, "", "the service's own change");
    assert_eq!(expired.event.request_id, "", "no call caused it");
    assert_eq!(expired.header("x-request-id"), None);
    assert_eq!(expired.event.sequence, 2);
    assert_eq!(expired.event.invite.as_ref().unwrap().id, soon.id);
    let swept = client
        .get_invite(authed(pb::GetInviteRequest { id: soon.id }, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(swept.status(), InviteStatus::Expired);
    let kept = client
        .get_invite(authed(pb::GetInviteRequest { id: later.id }, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept.status(), InviteStatus::Pending);
    events.assert_no_more(Duration::from_millis(600)).await;
    events.delete_exchange().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sweeping_one_postgres_expire_each_invite_once() {
    const INVITES: usize = 300;
    let mut options = Options::fresh(Db::Postgres).await;
    options.sweep_interval = Duration::from_millis(100);
    options
        .flags
        .extend(["--metrics-listen".into(), "127.0.0.1:0".into()]);
    let mut events = Events::bind(&options.exchange).await;
    let first = TestApp::start(options.clone()).await;
    let second = TestApp::start(options).await;
    let client = first.client().await;
    let alice = token("alice", None, false);
    // Many invites due at one instant: a sweep of them all takes long
    // enough that the other replica's sweep runs while it holds them, so
    // claims that were not disjoint would show.
    let due = timestamp_in(chrono::Duration::seconds(3));
    let creates = (0..INVITES).map(|n| {
        let mut client = client.clone();
        let mut request = email_invite("org-1", &format!("u{n}@example.org"));
        request.invite.as_mut().unwrap().expires_at = Some(due);
        let alice = alice.clone();
        async move { create(&mut client, request, &alice).await }
    });
    futures_util::stream::iter(creates)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;

    let received = events.take(2 * INVITES).await;

    let mut expired_per_invite: HashMap<String, usize> = HashMap::new();
    for r in received
        .iter()
        .filter(|r| r.routing_key == "invite.expired")
    {
        *expired_per_invite
            .entry(r.event.invite.as_ref().unwrap().id.clone())
            .or_default() += 1;
        assert_eq!(r.event.sequence, 2);
    }
    assert_eq!(expired_per_invite.len(), INVITES);
    assert!(
        expired_per_invite.values().all(|&n| n == 1),
        "each invite expired once"
    );
    events.assert_no_more(Duration::from_millis(700)).await;
    // The replicas' claims were disjoint, and neither sweep failed on the
    // other's locks (a failed sweep is retried, so the events alone would
    // not show it).
    let (first_scraped, second_scraped) = (first.scrape().await, second.scrape().await);
    let counted = |scraped: &str, series: &str| -> u64 {
        scraped
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} missing"))
            .parse()
            .unwrap()
    };
    assert_eq!(
        counted(&first_scraped, "invites_expired_total")
            + counted(&second_scraped, "invites_expired_total"),
        INVITES as u64,
        "the replicas together expired each invite once"
    );
    for scraped in [&first_scraped, &second_scraped] {
        assert_eq!(counted(scraped, "invites_sweep_failures_total"), 0);
    }
    events.delete_exchange().await;
    first.stop().await;
    second.stop().await;
}

async fn an_expired_invite_the_sweep_has_not_reached_does_not_block_a_new_one(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let (old, _) = create(&mut client, expiring_soon("bob@example.org"), &alice).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;

    let (new, _) = create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &alice,
    )
    .await;

    let received = events.take(3).await;
    let keys: Vec<_> = received.iter().map(|r| r.routing_key.as_str()).collect();
    assert_eq!(keys, ["invite.created", "invite.expired", "invite.created"]);
    assert_eq!(received[1].event.invite.as_ref().unwrap().id, old.id);
    assert_eq!(received[2].event.invite.as_ref().unwrap().id, new.id);
    let old_now = client
        .get_invite(authed(pb::GetInviteRequest { id: old.id }, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(old_now.status(), InviteStatus::Expired);
    events.delete_exchange().await;
    app.stop().await;
}
