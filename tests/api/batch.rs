//! BatchCreateInvites: partial success, one transaction, one event per invite.

use std::time::Duration;

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::pb;
use tonic::Code;

on_both_databases!(
    a_batch_creates_the_valid_invites_and_lists_each_refused_address_with_its_reason,
    more_than_a_thousand_addresses_is_invalid_argument,
);

fn batch(emails: &[&str]) -> pb::BatchCreateInvitesRequest {
    pb::BatchCreateInvitesRequest {
        target_type: "account_group".into(),
        target_id: "grp-1".into(),
        emails: emails.iter().map(|e| e.to_string()).collect(),
        role: "viewer".into(),
        expires_at: Some(timestamp_in(chrono::Duration::days(30))),
        metadata: invite_service::pb::json_to_struct(&serde_json::json!({
            "subscription_references": ["sub-a", "sub-b"]
        })),
        notify: true,
        ..Default::default()
    }
}

async fn a_batch_creates_the_valid_invites_and_lists_each_refused_address_with_its_reason(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let mut earlier = email_invite("grp-1", "dana@example.org");
    earlier.invite.as_mut().unwrap().target_type = "account_group".into();
    let (dana, _) = create(&mut client, earlier, &alice).await;
    assert_events(
        &events.take(1).await,
        &[("invite.created", &dana.id, "alice", 1)],
    );

    let request = batch(&[
        " ann@example.org",
        "jim pimblett@example.org",
        "ANN@example.org",
        "alex@fictiveglobal",
        "dana@example.org",
        "bob@example.org",
    ]);
    let answer = client
        .batch_create_invites(authed(request, &alice))
        .await
        .unwrap()
        .into_inner();

    let created: Vec<_> = answer
        .created
        .iter()
        .map(|c| c.invite.as_ref().unwrap().invite_email().to_owned())
        .collect();
    assert_eq!(created, ["ann@example.org", "bob@example.org"]);
    for c in &answer.created {
        let invite = c.invite.as_ref().unwrap();
        assert!(c.token.len() >= 22);
        assert_eq!(invite.role, "viewer");
        assert_eq!(invite.metadata, batch(&[]).metadata);
    }
    let refused: Vec<_> = answer
        .invalid
        .iter()
        .map(|i| (i.email.as_str(), i.reason.as_str()))
        .collect();
    assert_eq!(
        refused,
        [
            ("jim pimblett@example.org", "INVALID_EMAIL"),
            ("ANN@example.org", "DUPLICATE_IN_REQUEST"),
            ("alex@fictiveglobal", "INVALID_EMAIL"),
            ("dana@example.org", "ALREADY_INVITED"),
        ]
    );
    let received = events.take(2).await;
    let ids: Vec<_> = answer
        .created
        .iter()
        .map(|c| c.invite.as_ref().unwrap().id.as_str())
        .collect();
    assert_events(
        &received,
        &[
            ("invite.created", ids[0], "alice", 1),
            ("invite.created", ids[1], "alice", 1),
        ],
    );
    for (event, created) in received.iter().zip(&answer.created) {
        assert_eq!(event.routing_key, "invite.created");
        assert_eq!(event.event.token, created.token, "notify carries the token");
        assert_eq!(event.event.invite, created.invite);
    }
    events.assert_no_more(Duration::from_millis(500)).await;
    events.delete_exchange().await;
    app.stop().await;
}

trait InviteEmail {
    fn invite_email(&self) -> &str;
}

impl InviteEmail for pb::Invite {
    fn invite_email(&self) -> &str {
        match &self.invitee {
            Some(pb::invite::Invitee::InviteeEmail(email)) => email,
            _ => "",
        }
    }
}

async fn more_than_a_thousand_addresses_is_invalid_argument(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let many: Vec<String> = (0..1001).map(|n| format!("u{n}@example.org")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();

    let refused = client
        .batch_create_invites(authed(batch(&refs), &token("alice", None, false)))
        .await
        .unwrap_err();

    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&refused), ["emails"]);
    let all: Vec<_> = many[..1000].iter().map(String::as_str).collect();
    let answer = client
        .batch_create_invites(authed(batch(&all), &token("alice", None, false)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.created.len(), 1000);
    app.stop().await;
}
