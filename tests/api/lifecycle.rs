//! Each state change answers with the changed invite and publishes its event.

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::pb::{self, InviteEventType, InviteStatus};

on_both_databases!(
    creating_an_invite_returns_it_with_a_token_and_publishes_invite_created,
    a_notify_invite_carries_its_token_in_the_created_event_only,
    the_invitee_accepting_publishes_invite_accepted_with_the_next_sequence,
    accepting_twice_returns_the_first_acceptance_and_publishes_nothing_new,
    the_invitee_rejecting_publishes_invite_rejected,
    accepting_a_revoked_invite_fails_with_failed_precondition,
    deleting_publishes_invite_deleted_and_the_invite_is_gone,
    a_second_pending_invite_for_the_same_invitee_already_exists,
);

async fn creating_an_invite_returns_it_with_a_token_and_publishes_invite_created(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);

    let created = client
        .create_invite(authed(email_invite("org-1", "Bob@Example.org"), &alice))
        .await
        .unwrap()
        .into_inner();

    let invite = created.invite.unwrap();
    assert!(created.token.len() >= 22, "a token of at least 128 bits");
    assert_eq!(
        uuid::Uuid::parse_str(&invite.id).unwrap().get_version_num(),
        7
    );
    assert_eq!(invite.status(), InviteStatus::Pending);
    assert_eq!(invite.inviter_id, "alice");
    assert_eq!(invite.role, "member");
    assert_eq!(invite.max_uses, Some(1));
    assert!(invite.expires_at.is_some() && !invite.etag.is_empty());

    let received = events.next().await;
    assert_eq!(received.routing_key, "invite.created");
    assert_eq!(received.event.r#type(), InviteEventType::Created);
    assert_eq!(received.event.sequence, 1);
    assert_eq!(received.event.actor_id, "alice");
    assert_eq!(received.event.invite.as_ref(), Some(&invite));
    assert!(received.event.token.is_empty(), "no token without notify");
    let props = &received.properties;
    assert_eq!(
        props.message_id().as_ref().map(|s| s.as_str()),
        Some(received.event.event_id.as_str())
    );
    assert_eq!(
        props.content_type().as_ref().map(|s| s.as_str()),
        Some("application/x-protobuf")
    );
    assert_eq!(
        props.kind().as_ref().map(|s| s.as_str()),
        Some("invites.v1.InviteEvent")
    );
    assert_eq!(
        props.app_id().as_ref().map(|s| s.as_str()),
        Some("invite-service")
    );
    assert_eq!(*props.delivery_mode(), Some(2), "persistent");
    assert!(props.timestamp().is_some());
    events.delete_exchange().await;
    app.stop().await;
}

async fn a_notify_invite_carries_its_token_in_the_created_event_only(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let request = pb::CreateInviteRequest {
        notify: true,
        ..email_invite("org-1", "bob@example.org")
    };

    let created = client
        .create_invite(authed(request, &alice))
        .await
        .unwrap()
        .into_inner();
    let bob = token("bob", Some("bob@example.org"), false);
    let accept = accept_by_token(created.token.clone());
    client.accept_invite(authed(accept, &bob)).await.unwrap();

    let [created_event, accepted_event] = <[Received; 2]>::try_from(events.take(2).await)
        .ok()
        .unwrap();
    assert_eq!(created_event.event.token, created.token);
    assert!(accepted_event.event.token.is_empty());
    events.delete_exchange().await;
    app.stop().await;
}

async fn the_invitee_accepting_publishes_invite_accepted_with_the_next_sequence(db: Db) {
    let mut scene = alice_invites_bob(db).await;
    let bob_any_case = token("bob", Some("BOB@example.org"), false);

    let accepted = scene
        .client
        .accept_invite(authed(accept_by_id(scene.invite.id.clone()), &bob_any_case))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(accepted.status(), InviteStatus::Accepted);
    assert_eq!(accepted.accepted_by, "bob");
    assert_eq!(accepted.use_count, 1);
    assert!(accepted.accepted_at.is_some());
    let received = scene.events.take(2).await;
    let id = scene.invite.id.as_str();
    assert_events(
        &received,
        &[
            ("invite.created", id, "alice", 1),
            ("invite.accepted", id, "bob", 2),
        ],
    );
    assert_eq!(received[1].event.r#type(), InviteEventType::Accepted);
    assert_eq!(received[1].event.invite.as_ref(), Some(&accepted));
    scene.end().await;
}

async fn accepting_twice_returns_the_first_acceptance_and_publishes_nothing_new(db: Db) {
    let mut scene = alice_invites_bob(db).await;
    let accept = || authed(accept_by_token(scene.link.clone()), &scene.bob);

    let first = scene
        .client
        .accept_invite(accept())
        .await
        .unwrap()
        .into_inner();
    let second = scene
        .client
        .accept_invite(accept())
        .await
        .unwrap()
        .into_inner();

    assert_eq!(first, second);
    let id = scene.invite.id.as_str();
    assert_events(
        &scene.events.take(2).await,
        &[
            ("invite.created", id, "alice", 1),
            ("invite.accepted", id, "bob", 2),
        ],
    );
    scene
        .events
        .assert_no_more(std::time::Duration::from_millis(700))
        .await;
    scene.end().await;
}

async fn the_invitee_rejecting_publishes_invite_rejected(db: Db) {
    let mut scene = alice_invites_bob(db).await;
    let reject = pb::RejectInviteRequest {
        invite_ref: Some(pb::reject_invite_request::InviteRef::Id(
            scene.invite.id.clone(),
        )),
    };

    let rejected = scene
        .client
        .reject_invite(authed(reject, &scene.bob))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(rejected.status(), InviteStatus::Rejected);
    assert!(rejected.rejected_at.is_some());
    let received = scene.events.take(2).await;
    let id = scene.invite.id.as_str();
    assert_events(
        &received,
        &[
            ("invite.created", id, "alice", 1),
            ("invite.rejected", id, "bob", 2),
        ],
    );
    assert_eq!(received[1].event.r#type(), InviteEventType::Rejected);
    scene.end().await;
}

async fn accepting_a_revoked_invite_fails_with_failed_precondition(db: Db) {
    let mut scene = alice_invites_bob(db).await;
    let revoke = pb::RevokeInviteRequest {
        id: scene.invite.id.clone(),
        reason: "sent to the wrong team".into(),
    };
    let revoked = scene
        .client
        .revoke_invite(authed(revoke, &scene.alice))
        .await
        .unwrap()
        .into_inner();

    let refused = scene
        .client
        .accept_invite(authed(accept_by_token(scene.link.clone()), &scene.bob))
        .await
        .unwrap_err();

    assert_eq!(revoked.status(), InviteStatus::Revoked);
    assert_eq!(revoked.revoked_by, "alice");
    assert_eq!(revoked.revoke_reason, "sent to the wrong team");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&refused), "INVITE_NOT_PENDING");
    let received = scene.events.take(2).await;
    let id = scene.invite.id.as_str();
    assert_events(
        &received,
        &[
            ("invite.created", id, "alice", 1),
            ("invite.revoked", id, "alice", 2),
        ],
    );
    scene
        .events
        .assert_no_more(std::time::Duration::from_millis(500))
        .await;
    scene.end().await;
}

async fn deleting_publishes_invite_deleted_and_the_invite_is_gone(db: Db) {
    let mut scene = alice_invites_bob(db).await;
    let id = scene.invite.id.clone();

    scene
        .client
        .delete_invite(authed(
            pb::DeleteInviteRequest { id: id.clone() },
            &scene.alice,
        ))
        .await
        .unwrap();

    let gone = scene
        .client
        .get_invite(authed(
            pb::GetInviteRequest { id: id.clone() },
            &scene.alice,
        ))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
    let received = scene.events.take(2).await;
    assert_eq!(received[1].routing_key, "invite.deleted");
    assert_eq!(received[1].event.r#type(), InviteEventType::Deleted);
    assert_eq!(received[1].event.sequence, 2);
    assert_eq!(received[1].event.invite.as_ref().unwrap().id, id);
    scene.end().await;
}

async fn a_second_pending_invite_for_the_same_invitee_already_exists(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    client
        .create_invite(authed(email_invite("org-1", "bob@example.org"), &alice))
        .await
        .unwrap();

    let again = client
        .create_invite(authed(
            email_invite("org-1", "BOB@example.org"),
            &token("carol", None, false),
        ))
        .await
        .unwrap_err();

    assert_eq!(again.code(), tonic::Code::AlreadyExists);
    assert_eq!(reason(&again), "INVITE_ALREADY_EXISTS");
    // Another target is another invite.
    client
        .create_invite(authed(email_invite("org-2", "bob@example.org"), &alice))
        .await
        .unwrap();
    app.stop().await;
}
