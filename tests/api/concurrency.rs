//! Races settled by the database: row locks and unique indexes.

use std::time::Duration;

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::pb::InviteStatus;
use tonic::Code;

on_both_databases!(twenty_concurrent_accepts_of_a_single_use_link_have_one_winner_and_one_event);

async fn twenty_concurrent_accepts_of_a_single_use_link_have_one_winner_and_one_event(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let link = client
        .create_invite(authed(
            open_link("party-1", None),
            &token("host", None, false),
        ))
        .await
        .unwrap()
        .into_inner();

    let racers = (0..20).map(|n| {
        let mut client = client.clone();
        let link_token = link.token.clone();
        tokio::spawn(async move {
            let accept = accept_by_token(link_token);
            client
                .accept_invite(authed(accept, &token(&format!("racer-{n}"), None, false)))
                .await
        })
    });
    let results = futures_util::future::join_all(racers).await;

    let (won, lost): (Vec<_>, Vec<_>) = results
        .into_iter()
        .map(|r| r.unwrap())
        .partition(Result::is_ok);
    assert_eq!(won.len(), 1, "exactly one winner");
    for refused in lost.into_iter().map(Result::unwrap_err) {
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert_eq!(reason(&refused), "INVITE_EXHAUSTED");
    }
    let winner = won.into_iter().next().unwrap().unwrap().into_inner();
    assert_eq!(winner.status(), InviteStatus::Accepted);
    assert_eq!(winner.use_count, 1);
    let received = events.take(2).await;
    assert_eq!(received[0].routing_key, "invite.created");
    assert_eq!(received[1].routing_key, "invite.accepted");
    assert_eq!(received[1].event.actor_id, winner.accepted_by);
    events.assert_no_more(Duration::from_secs(1)).await;
    events.delete_exchange().await;
    app.stop().await;
}
