//! Reusable and timed links.

use std::time::Duration;

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::pb::InviteStatus;
use tonic::Code;

on_both_databases!(
    a_reusable_link_counts_each_user_once_and_closes_at_its_last_use,
    racers_for_the_last_uses_of_a_link_get_exactly_that_many_wins,
    a_link_used_before_its_start_is_not_yet_valid,
    a_link_limited_to_domains_admits_only_verified_addresses_there,
    an_open_link_is_accepted_with_its_token_not_its_id,
);

async fn a_reusable_link_counts_each_user_once_and_closes_at_its_last_use(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let (_, link) = create(
        &mut client,
        open_link("party-1", Some(3)),
        &token("host", None, false),
    )
    .await;
    let accept = |user: &str| {
        let mut client = client.clone();
        let request = authed(accept_by_token(link.clone()), &token(user, None, false));
        async move { client.accept_invite(request).await }
    };

    let first = accept("u1").await.unwrap().into_inner();
    let again = accept("u1").await.unwrap().into_inner();
    accept("u2").await.unwrap();
    let last = accept("u3").await.unwrap().into_inner();
    let late = accept("u4").await.unwrap_err();

    assert_eq!(first, again, "the same user gets the first redemption back");
    assert_eq!(first.status(), InviteStatus::Pending);
    assert_eq!(first.use_count, 1);
    assert_eq!(last.status(), InviteStatus::Accepted);
    assert_eq!(last.use_count, 3);
    assert_eq!(late.code(), Code::FailedPrecondition);
    assert_eq!(reason(&late), "INVITE_EXHAUSTED");
    let received = events.take(4).await;
    let actors: Vec<_> = received[1..]
        .iter()
        .map(|r| r.event.actor_id.as_str())
        .collect();
    assert_eq!(actors, ["u1", "u2", "u3"], "one invite.accepted per use");
    assert!(
        received[1..]
            .iter()
            .all(|r| r.routing_key == "invite.accepted")
    );
    events.assert_no_more(Duration::from_millis(500)).await;
    events.delete_exchange().await;
    app.stop().await;
}

async fn racers_for_the_last_uses_of_a_link_get_exactly_that_many_wins(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let (_, link) = create(
        &mut client,
        open_link("party-1", Some(5)),
        &token("host", None, false),
    )
    .await;
    for early in ["early-1", "early-2"] {
        client
            .accept_invite(authed(
                accept_by_token(link.clone()),
                &token(early, None, false),
            ))
            .await
            .unwrap();
    }

    let racers = (0..12).map(|n| {
        let mut client = client.clone();
        let request = authed(
            accept_by_token(link.clone()),
            &token(&format!("racer-{n}"), None, false),
        );
        tokio::spawn(async move { client.accept_invite(request).await })
    });
    let results: Vec<_> = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 3, "exactly the 3 uses left");
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(reason(refused), "INVITE_EXHAUSTED");
    }
    let received = events.take(6).await;
    assert_eq!(
        received
            .iter()
            .filter(|r| r.routing_key == "invite.accepted")
            .count(),
        5
    );
    let sequences: Vec<_> = received.iter().map(|r| r.event.sequence).collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5, 6]);
    events.assert_no_more(Duration::from_millis(700)).await;
    events.delete_exchange().await;
    app.stop().await;
}

async fn a_link_used_before_its_start_is_not_yet_valid(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let mut request = open_link("party-1", Some(0));
    request.invite.as_mut().unwrap().starts_at = Some(timestamp_in(chrono::Duration::hours(1)));
    let (invite, link) = create(&mut client, request, &token("host", None, false)).await;

    let early = client
        .accept_invite(authed(accept_by_token(link), &token("u1", None, false)))
        .await
        .unwrap_err();

    assert!(invite.starts_at.is_some());
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert_eq!(reason(&early), "INVITE_NOT_YET_VALID");
    app.stop().await;
}

async fn a_link_limited_to_domains_admits_only_verified_addresses_there(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let mut request = open_link("channel-9", Some(0));
    request.invite.as_mut().unwrap().allowed_email_domains = vec!["example.org".into()];
    let (invite, link) = create(&mut client, request, &token("host", None, false)).await;
    let accept = |caller: String| {
        let mut client = client.clone();
        let request = authed(accept_by_token(link.clone()), &caller);
        async move { client.accept_invite(request).await }
    };

    let outsider = accept(token("eve", Some("eve@elsewhere.org"), false))
        .await
        .unwrap_err();
    let unverified = accept(token("anon", None, false)).await.unwrap_err();
    let insider = accept(token("bob", Some("Bob@Example.org"), false))
        .await
        .unwrap();

    assert_eq!(invite.allowed_email_domains, ["example.org"]);
    for refused in [&outsider, &unverified] {
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert_eq!(reason(refused), "INVITEE_MISMATCH");
    }
    assert_eq!(insider.into_inner().use_count, 1);
    app.stop().await;
}

async fn an_open_link_is_accepted_with_its_token_not_its_id(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let (link, _) = create(
        &mut client,
        open_link("party-1", Some(0)),
        &token("host", None, false),
    )
    .await;

    let stranger = client
        .accept_invite(authed(
            accept_by_id(link.id.clone()),
            &token("u1", None, false),
        ))
        .await
        .unwrap_err();
    let host = client
        .accept_invite(authed(accept_by_id(link.id), &token("host", None, false)))
        .await
        .unwrap_err();

    assert_eq!(stranger.code(), Code::NotFound);
    assert_eq!(host.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&host), ["id"]);
    app.stop().await;
}
