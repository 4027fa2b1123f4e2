//! GetInviteByToken (the landing page) and ListInviteEvents (the audit trail).

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::pb::{self, InviteEventType, InviteStatus};
use tonic::Code;

on_both_databases!(
    the_landing_page_shows_the_invite_to_its_invitee_only,
    an_invites_history_lists_its_events_in_order_without_tokens,
    a_deleted_invites_history_stays_with_its_inviter,
);

async fn the_landing_page_shows_the_invite_to_its_invitee_only(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let (invite, link) = create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &token("alice", None, false),
    )
    .await;
    let by_token = |t: &str| pb::GetInviteByTokenRequest { token: t.into() };

    let shown = client
        .get_invite_by_token(authed(
            by_token(&link),
            &token("bob", Some("bob@example.org"), false),
        ))
        .await
        .unwrap()
        .into_inner();
    let stranger = client
        .get_invite_by_token(authed(by_token(&link), &token("mallory", None, false)))
        .await
        .unwrap_err();
    let unknown = client
        .get_invite_by_token(authed(
            by_token("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            &token("bob", None, false),
        ))
        .await
        .unwrap_err();

    assert_eq!(shown, invite);
    assert_eq!(stranger.code(), Code::PermissionDenied);
    assert_eq!(reason(&stranger), "INVITEE_MISMATCH");
    assert_eq!(unknown.code(), Code::NotFound);
    app.stop().await;
}

async fn an_invites_history_lists_its_events_in_order_without_tokens(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let request = pb::CreateInviteRequest {
        notify: true,
        ..email_invite("org-1", "bob@example.org")
    };
    let (invite, link) = create(&mut client, request, &alice).await;
    let resend = pb::ResendInviteRequest {
        id: invite.id.clone(),
        notify: true,
        ..Default::default()
    };
    let resent = client
        .resend_invite(authed(resend, &alice))
        .await
        .unwrap()
        .into_inner();
    client
        .accept_invite(authed(
            accept_by_token(resent.token.clone()),
            &token("bob", Some("bob@example.org"), false),
        ))
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListInviteEventsRequest {
            invite_id: invite.id.clone(),
            page_size: 2,
            page_token,
        };
        let page = client
            .list_invite_events(authed(request, &alice))
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }

    let types: Vec<_> = seen.iter().map(|e| e.r#type()).collect();
    assert_eq!(
        types,
        [
            InviteEventType::Created,
            InviteEventType::Resent,
            InviteEventType::Accepted
        ]
    );
    assert_eq!(
        seen.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(
        seen.iter().all(|e| e.token.is_empty()),
        "history never shows a token"
    );
    assert!(!format!("{seen:?}").contains(&link));
    assert_eq!(
        seen[2].invite.as_ref().unwrap().status(),
        InviteStatus::Accepted
    );
    let stranger = client
        .list_invite_events(authed(
            pb::ListInviteEventsRequest {
                invite_id: invite.id,
                ..Default::default()
            },
            &token("mallory", None, false),
        ))
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound);
    app.stop().await;
}

async fn a_deleted_invites_history_stays_with_its_inviter(db: Db) {
    let Scene {
        app,
        mut client,
        alice,
        invite,
        ..
    } = alice_invites_bob(db).await;
    client
        .delete_invite(authed(
            pb::DeleteInviteRequest {
                id: invite.id.clone(),
            },
            &alice,
        ))
        .await
        .unwrap();
    let history = |caller: String| {
        let mut client = client.clone();
        let request = authed(
            pb::ListInviteEventsRequest {
                invite_id: invite.id.clone(),
                ..Default::default()
            },
            &caller,
        );
        async move { client.list_invite_events(request).await }
    };

    let inviters = history(alice.clone()).await.unwrap().into_inner();
    let admins = history(token("svc", None, true))
        .await
        .unwrap()
        .into_inner();
    let strangers = history(token("mallory", None, false)).await.unwrap_err();

    let types: Vec<_> = inviters.events.iter().map(|e| e.r#type()).collect();
    assert_eq!(types, [InviteEventType::Created, InviteEventType::Deleted]);
    assert_eq!(admins.events.len(), 2);
    assert_eq!(strangers.code(), Code::NotFound);
    app.stop().await;
}
