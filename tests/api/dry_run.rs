//! validate_only (AIP-163): a dry run answers what the real call would, its
//! errors included, without a token, and writes and publishes nothing.

use std::time::Duration;

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::{
    pb::{self, InviteStatus},
    store::entities::{idempotency_key, invite, invite_event},
};
use sea_orm::{Database, EntityTrait, PaginatorTrait};
use tonic::{Code, Request, Status};

mod batch;

on_both_databases!(
    a_dry_run_create_answers_the_invite_it_would_make_without_a_token_and_writes_nothing,
    a_dry_run_with_bad_fields_is_refused_with_the_real_calls_violations,
    a_dry_run_for_an_address_already_invited_is_refused_as_the_real_call_is,
    a_caller_the_real_call_refuses_is_refused_alike,
);

const KEY: &str = "0196a3c2-5f1e-7c9a-8b1d-2e3f4a5b6c7d";

fn as_dry_run(request: &pb::CreateInviteRequest) -> pb::CreateInviteRequest {
    pb::CreateInviteRequest {
        validate_only: true,
        ..request.clone()
    }
}

fn as_dry_batch(request: &pb::BatchCreateInvitesRequest) -> pb::BatchCreateInvitesRequest {
    pb::BatchCreateInvitesRequest {
        validate_only: true,
        ..request.clone()
    }
}

/// Rows in every table a create writes: invites, events (the outbox), and
/// idempotent answers.
async fn stored_rows(database_url: &str) -> [u64; 3] {
    let db = Database::connect(database_url).await.unwrap();
    let rows = [
        invite::Entity::find().count(&db).await.unwrap(),
        invite_event::Entity::find().count(&db).await.unwrap(),
        idempotency_key::Entity::find().count(&db).await.unwrap(),
    ];
    db.close().await.ok();
    rows
}

/// What a client acts on in a refusal.
fn refusal(status: &Status) -> (Code, String, String, Vec<String>) {
    let message = status.message().to_owned();
    (status.code(), message, reason(status), bad_fields(status))
}

/// The same create as a dry run, then for real; both must be refused.
async fn both_refused(
    app: &TestApp,
    request: pb::CreateInviteRequest,
    bearer: &str,
) -> [Status; 2] {
    let mut client = app.client().await;
    let dry = client
        .create_invite(authed(as_dry_run(&request), bearer))
        .await;
    let real = client.create_invite(authed(request, bearer)).await;
    [dry.unwrap_err(), real.unwrap_err()]
}

async fn both_refused_batch(
    app: &TestApp,
    request: pb::BatchCreateInvitesRequest,
    bearer: &str,
) -> [Status; 2] {
    let mut client = app.client().await;
    let dry = client
        .batch_create_invites(authed(as_dry_batch(&request), bearer))
        .await;
    let real = client.batch_create_invites(authed(request, bearer)).await;
    [dry.unwrap_err(), real.unwrap_err()]
}

/// The invite a real call made, less what only the write makes: what the
/// dry run of the same request showed.
fn without_what_the_write_made(invite: &pb::Invite) -> pb::Invite {
    pb::Invite {
        id: String::new(),
        etag: String::new(),
        create_time: None,
        update_time: None,
        ..invite.clone()
    }
}

async fn a_dry_run_create_answers_the_invite_it_would_make_without_a_token_and_writes_nothing(
    db: Db,
) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let mut request = pb::CreateInviteRequest {
        passcode: "castle-42".into(),
        notify: true,
        request_id: KEY.into(),
        ..email_invite("org-1", "bob@example.org")
    };
    let asked = request.invite.as_mut().unwrap();
    asked.role = "admin".into();
    asked.expires_at = Some(timestamp_in(chrono::Duration::days(3)));

    let preview = client
        .create_invite(authed(as_dry_run(&request), &alice))
        .await
        .unwrap()
        .into_inner();

    assert!(preview.token.is_empty(), "no token");
    let shown = preview.invite.unwrap();
    assert_eq!((shown.id.as_str(), shown.etag.as_str()), ("", ""));
    assert_eq!((shown.create_time, shown.update_time), (None, None));
    assert_eq!(shown.status(), InviteStatus::Pending);
    assert_eq!(
        (shown.inviter_id.as_str(), shown.role.as_str()),
        ("alice", "admin")
    );
    assert!(shown.requires_passcode);
    assert_eq!(stored_rows(&app.database_url).await, [0, 0, 0]);
    let listed = client
        .list_invites(authed(pb::ListInvitesRequest::default(), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_size, 0);
    events.assert_no_more(Duration::from_millis(500)).await;

    // The key was neither kept nor replayed: it makes the invite now.
    let (made, link) = create(&mut client, request, &alice).await;
    assert!(!link.is_empty());
    assert_eq!(without_what_the_write_made(&made), shown);
    assert_events(
        &events.take(1).await,
        &[("invite.created", &made.id, "alice", 1)],
    );
    events.delete_exchange().await;
    app.stop().await;
}

async fn a_dry_run_with_bad_fields_is_refused_with_the_real_calls_violations(db: Db) {
    let app = spawn_app(db).await;
    let alice = token("alice", None, false);
    let mut bad_fields_and_passcode = pb::CreateInviteRequest {
        passcode: "123".into(),
        ..email_invite("has space", "not-an-address")
    };
    bad_fields_and_passcode.invite.as_mut().unwrap().role = "Admin!".into();
    let bad_key = pb::CreateInviteRequest {
        request_id: "retry-1".into(),
        ..email_invite("org-1", "bob@example.org")
    };
    let bad_batch = pb::BatchCreateInvitesRequest {
        target_type: "Group".into(),
        target_id: "grp-1".into(),
        emails: vec!["ann@example.org".into()],
        expires_at: Some(timestamp_in(-chrono::Duration::days(1))),
        ..Default::default()
    };
    let too_many = pb::BatchCreateInvitesRequest {
        target_type: "account_group".into(),
        target_id: "grp-1".into(),
        emails: (0..1001).map(|n| format!("u{n}@example.org")).collect(),
        ..Default::default()
    };

    let refused = [
        both_refused(&app, bad_fields_and_passcode, &alice).await,
        both_refused(&app, bad_key, &alice).await,
        both_refused_batch(&app, bad_batch, &alice).await,
        both_refused_batch(&app, too_many, &alice).await,
    ];

    for [dry, real] in &refused {
        assert_eq!(dry.code(), Code::InvalidArgument, "{dry:?}");
        assert_eq!(refusal(dry), refusal(real));
    }
    assert_eq!(
        bad_fields(&refused[0][0]),
        [
            "invite.target_id",
            "invite.role",
            "invite.invitee_email",
            "passcode"
        ]
    );
    assert_eq!(bad_fields(&refused[1][0]), ["request_id"]);
    assert_eq!(bad_fields(&refused[2][0]), ["target_type", "expires_at"]);
    assert_eq!(bad_fields(&refused[3][0]), ["emails"]);
    assert_eq!(stored_rows(&app.database_url).await, [0, 0, 0]);
    app.stop().await;
}

async fn a_dry_run_for_an_address_already_invited_is_refused_as_the_real_call_is(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &alice,
    )
    .await;
    let mut lapsing = email_invite("org-1", "cy@example.org");
    lapsing.invite.as_mut().unwrap().expires_at = Some(timestamp_in(chrono::Duration::seconds(2)));
    let (lapsed, _) = create(&mut client, lapsing, &alice).await;
    assert_eq!(events.take(2).await.len(), 2);
    tokio::time::sleep(Duration::from_millis(2200)).await;

    let [dry, real] = both_refused(&app, email_invite("org-1", "BOB@example.org"), &alice).await;
    // Past its expiry, unswept: the real call expires it and invites anew,
    // so the dry run is answered OK, and leaves it as it is.
    let again = email_invite("org-1", "cy@example.org");
    let preview = client
        .create_invite(authed(as_dry_run(&again), &alice))
        .await;

    assert_eq!(dry.code(), Code::AlreadyExists, "{dry:?}");
    assert_eq!(reason(&dry), "INVITE_ALREADY_EXISTS");
    assert_eq!(refusal(&dry), refusal(&real));
    assert!(preview.unwrap().into_inner().token.is_empty());
    assert_eq!(stored_rows(&app.database_url).await, [2, 2, 0]);
    events.assert_no_more(Duration::from_millis(500)).await;
    let (made, _) = create(&mut client, again, &alice).await;
    let received = events.take(2).await;
    assert_events(
        &received,
        &[
            ("invite.expired", &lapsed.id, "", 2),
            ("invite.created", &made.id, "alice", 1),
        ],
    );
    events.delete_exchange().await;
    app.stop().await;
}

async fn a_caller_the_real_call_refuses_is_refused_alike(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let members_only = token_granting(
        "alice",
        Some("alice@example.org"),
        false,
        &["organization/org-1=member"],
    );
    let mut as_admin = email_invite("org-1", "bob@example.org");
    as_admin.invite.as_mut().unwrap().role = "admin".into();
    let batch = pb::BatchCreateInvitesRequest {
        target_type: "account_group".into(),
        target_id: "grp-1".into(),
        emails: vec!["bob@example.org".into()],
        ..Default::default()
    };

    let refused = [
        both_refused(
            &app,
            email_invite("org-2", "bob@example.org"),
            &members_only,
        )
        .await,
        both_refused(&app, as_admin, &members_only).await,
        both_refused_batch(&app, batch, &members_only).await,
        both_refused(
            &app,
            email_invite("org-1", "ALICE@example.org"),
            &members_only,
        )
        .await,
    ];
    let anonymous = client
        .create_invite(Request::new(as_dry_run(&email_invite(
            "org-1",
            "bob@example.org",
        ))))
        .await
        .unwrap_err();

    for [dry, real] in &refused[..3] {
        assert_eq!(dry.code(), Code::PermissionDenied, "{dry:?}");
        assert_eq!(reason(dry), "INVITE_NOT_GRANTED");
        assert_eq!(refusal(dry), refusal(real));
    }
    let [dry, real] = &refused[3];
    assert_eq!(reason(dry), "SELF_INVITE");
    assert_eq!(refusal(dry), refusal(real));
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert_eq!(stored_rows(&app.database_url).await, [0, 0, 0]);
    app.stop().await;
}
