//! ListInvites: filters, pages, totals, and who sees what.

use std::collections::HashSet;

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::pb::{self, InviteStatus};
use tonic::Code;

on_both_databases!(
    paging_through_more_invites_than_a_page_serves_each_once_newest_first,
    filters_narrow_the_list_and_emails_match_in_any_case,
    a_page_token_from_other_filters_or_a_negative_page_size_is_invalid,
    a_non_admin_lists_only_invites_they_sent_or_received,
);

fn by_target(target_id: &str) -> pb::ListInvitesRequest {
    pb::ListInvitesRequest {
        target_type: "organization".into(),
        target_id: target_id.into(),
        ..Default::default()
    }
}

async fn paging_through_more_invites_than_a_page_serves_each_once_newest_first(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let mut created = Vec::new();
    for n in 0..23 {
        let request = email_invite("org-1", &format!("user{n}@example.org"));
        created.push(
            client
                .create_invite(authed(request, &alice))
                .await
                .unwrap()
                .into_inner()
                .invite
                .unwrap()
                .id,
        );
    }

    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let request = pb::ListInvitesRequest {
            page_size: 5,
            page_token: page_token.clone(),
            ..by_target("org-1")
        };
        let page = client
            .list_invites(authed(request, &alice))
            .await
            .unwrap()
            .into_inner();
        // The total counts what matches now; the late invite joins it.
        assert_eq!(page.total_size, if pages <= 1 { 23 } else { 24 });
        assert!(page.invites.len() <= 5);
        // An invite created while paging must not shift what later pages hold.
        if pages == 1 {
            client
                .create_invite(authed(email_invite("org-1", "late@example.org"), &alice))
                .await
                .unwrap();
        }
        seen.extend(page.invites.into_iter().map(|i| i.id));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }

    assert_eq!(pages, 5);
    created.reverse();
    assert_eq!(seen, created, "each exactly once, newest first");
    app.stop().await;
}

async fn filters_narrow_the_list_and_emails_match_in_any_case(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let admin = token("svc", None, true);
    let mut admin_role = email_invite("org-1", "Ann@Example.org");
    admin_role.invite.as_mut().unwrap().role = "admin".into();
    let ann = client
        .create_invite(authed(admin_role, &alice))
        .await
        .unwrap()
        .into_inner();
    let bob = client
        .create_invite(authed(email_invite("org-1", "bob@example.org"), &alice))
        .await
        .unwrap()
        .into_inner();
    client
        .create_invite(authed(
            email_invite("org-2", "cy@example.org"),
            &token("carol", None, false),
        ))
        .await
        .unwrap();
    let revoke = pb::RevokeInviteRequest {
        id: bob.invite.as_ref().unwrap().id.clone(),
        reason: String::new(),
    };
    client.revoke_invite(authed(revoke, &alice)).await.unwrap();

    let list = |request: pb::ListInvitesRequest| {
        let mut client = client.clone();
        let admin = admin.clone();
        async move {
            let page = client
                .list_invites(authed(request, &admin))
                .await
                .unwrap()
                .into_inner();
            page.invites.into_iter().map(|i| i.id).collect::<Vec<_>>()
        }
    };
    let ann_id = ann.invite.unwrap().id;
    let bob_id = bob.invite.unwrap().id;

    assert_eq!(
        list(pb::ListInvitesRequest {
            role: "admin".into(),
            ..by_target("org-1")
        })
        .await,
        std::slice::from_ref(&ann_id)
    );
    assert_eq!(
        list(pb::ListInvitesRequest {
            status: InviteStatus::Revoked.into(),
            ..Default::default()
        })
        .await,
        std::slice::from_ref(&bob_id)
    );
    assert_eq!(
        list(pb::ListInvitesRequest {
            invitee_email: "ANN@example.ORG".into(),
            ..Default::default()
        })
        .await,
        std::slice::from_ref(&ann_id)
    );
    assert_eq!(
        list(pb::ListInvitesRequest {
            inviter_id: "alice".into(),
            ..Default::default()
        })
        .await,
        [bob_id, ann_id]
    );
    assert_eq!(list(by_target("org-2")).await.len(), 1);
    app.stop().await;
}

async fn a_page_token_from_other_filters_or_a_negative_page_size_is_invalid(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    for n in 0..3 {
        client
            .create_invite(authed(
                email_invite("org-1", &format!("u{n}@example.org")),
                &alice,
            ))
            .await
            .unwrap();
    }
    let first = client
        .list_invites(authed(
            pb::ListInvitesRequest {
                page_size: 1,
                ..by_target("org-1")
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();

    let other_filters = pb::ListInvitesRequest {
        page_size: 1,
        page_token: first.next_page_token,
        ..by_target("org-2")
    };
    let refused = client
        .list_invites(authed(other_filters, &alice))
        .await
        .unwrap_err();
    let negative = client
        .list_invites(authed(
            pb::ListInvitesRequest {
                page_size: -1,
                ..by_target("org-1")
            },
            &alice,
        ))
        .await
        .unwrap_err();

    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&refused), ["page_token"]);
    assert_eq!(negative.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&negative), ["page_size"]);
    let huge = pb::ListInvitesRequest {
        page_size: 100_000,
        ..by_target("org-1")
    };
    assert_eq!(
        client
            .list_invites(authed(huge, &alice))
            .await
            .unwrap()
            .into_inner()
            .invites
            .len(),
        3
    );
    app.stop().await;
}

async fn a_non_admin_lists_only_invites_they_sent_or_received(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let carol = token("carol", None, false);
    let sent = client
        .create_invite(authed(email_invite("org-1", "bob@example.org"), &alice))
        .await
        .unwrap()
        .into_inner();
    let received = client
        .create_invite(authed(email_invite("org-1", "alice@example.org"), &carol))
        .await
        .unwrap()
        .into_inner();
    client
        .create_invite(authed(email_invite("org-1", "dan@example.org"), &carol))
        .await
        .unwrap();

    let alice_verified = token("alice", Some("alice@example.org"), false);
    let page = client
        .list_invites(authed(by_target("org-1"), &alice_verified))
        .await
        .unwrap()
        .into_inner();

    let ids: HashSet<_> = page.invites.into_iter().map(|i| i.id).collect();
    let expected: HashSet<_> = [sent.invite.unwrap().id, received.invite.unwrap().id].into();
    assert_eq!(ids, expected);
    assert_eq!(page.total_size, 2);
    let all = client
        .list_invites(authed(by_target("org-1"), &token("svc", None, true)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.total_size, 3);
    app.stop().await;
}
