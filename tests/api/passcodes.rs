//! Passcodes: checked after everything else, counted, locked after 5 misses.

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::{
    app::{InviteRef, Invites, ReplaySeal},
    domain::{Caller, CreatePolicy, DraftInvitee, Id, InviteDraft, InviteError, Policy},
    error::Error,
    outbox::CommitWakeup,
    pb::{self, InviteStatus},
    store::{PoolSettings, Store},
};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

on_both_databases!(
    five_wrong_passcodes_lock_the_invite_until_it_is_resent,
    a_stranger_holding_the_token_cannot_burn_the_invitees_tries,
    one_holder_of_a_link_cannot_lock_it_for_everyone,
    a_callers_queued_tries_see_each_others_failures_and_burn_no_more_work,
);

fn with_passcode(passcode: &str) -> pb::CreateInviteRequest {
    pb::CreateInviteRequest {
        passcode: passcode.into(),
        ..email_invite("org-1", "bob@example.org")
    }
}

fn accept_with(token: &str, passcode: &str) -> pb::AcceptInviteRequest {
    pb::AcceptInviteRequest {
        passcode: passcode.into(),
        ..accept_by_token(token)
    }
}

async fn five_wrong_passcodes_lock_the_invite_until_it_is_resent(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let bob = token("bob", Some("bob@example.org"), false);
    let (invite, link) = create(&mut client, with_passcode("castle-42"), &alice).await;
    assert!(invite.requires_passcode);

    let missing = client
        .accept_invite(authed(accept_by_token(link.clone()), &bob))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::PermissionDenied);
    assert_eq!(reason(&missing), "PASSCODE_REQUIRED");
    for _ in 0..5 {
        let wrong = client
            .accept_invite(authed(accept_with(&link, "guess"), &bob))
            .await
            .unwrap_err();
        assert_eq!(wrong.code(), Code::PermissionDenied);
        assert_eq!(reason(&wrong), "PASSCODE_INVALID");
    }
    let locked = client
        .accept_invite(authed(accept_with(&link, "castle-42"), &bob))
        .await
        .unwrap_err();
    assert_eq!(locked.code(), Code::ResourceExhausted);
    assert_eq!(reason(&locked), "PASSCODE_LOCKED");

    let resend = pb::ResendInviteRequest {
        id: invite.id.clone(),
        ..Default::default()
    };
    let resent = client
        .resend_invite(authed(resend, &alice))
        .await
        .unwrap()
        .into_inner();
    let accepted = client
        .accept_invite(authed(accept_with(&resent.token, "castle-42"), &bob))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.status(), InviteStatus::Accepted);
    // Failed tries change nothing anyone else needs to hear about.
    let keys: Vec<_> = events
        .take(3)
        .await
        .into_iter()
        .map(|r| r.routing_key)
        .collect();
    assert_eq!(keys, ["invite.created", "invite.resent", "invite.accepted"]);
    events
        .assert_no_more(std::time::Duration::from_millis(300))
        .await;
    events.delete_exchange().await;
    app.stop().await;
}

async fn a_stranger_holding_the_token_cannot_burn_the_invitees_tries(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let (_, link) = create(
        &mut client,
        with_passcode("castle-42"),
        &token("alice", None, false),
    )
    .await;
    let mallory = token("mallory", Some("mallory@example.org"), false);

    for _ in 0..6 {
        let refused = client
            .accept_invite(authed(accept_with(&link, "guess"), &mallory))
            .await
            .unwrap_err();
        assert_eq!(reason(&refused), "INVITEE_MISMATCH");
    }

    let bob = token("bob", Some("bob@example.org"), false);
    client
        .accept_invite(authed(accept_with(&link, "castle-42"), &bob))
        .await
        .expect("the invitee still has all their tries");
    app.stop().await;
}

/// An open link anyone may use any number of times, with a passcode.
fn link_with_passcode(passcode: &str) -> pb::CreateInviteRequest {
    pb::CreateInviteRequest {
        passcode: passcode.into(),
        ..open_link("party-1", Some(0))
    }
}

async fn one_holder_of_a_link_cannot_lock_it_for_everyone(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let (_, link) = create(
        &mut client,
        link_with_passcode("castle-42"),
        &token("host", None, false),
    )
    .await;
    let mallory = token("mallory", None, false);

    for _ in 0..5 {
        let wrong = client
            .accept_invite(authed(accept_with(&link, "guess"), &mallory))
            .await
            .unwrap_err();
        assert_eq!(reason(&wrong), "PASSCODE_INVALID");
    }
    let mallory_locked = client
        .accept_invite(authed(accept_with(&link, "castle-42"), &mallory))
        .await
        .unwrap_err();
    let carol = client
        .accept_invite(authed(
            accept_with(&link, "castle-42"),
            &token("carol", None, false),
        ))
        .await;

    assert_eq!(reason(&mallory_locked), "PASSCODE_LOCKED");
    assert_eq!(
        carol
            .expect("carol has her own tries")
            .into_inner()
            .use_count,
        1
    );
    app.stop().await;
}

/// Twelve wrong tries by one caller at once (fewer than the queue admits): the tries queued behind the
/// first ones see their failures once they get a turn, so no more than the
/// allowed five (plus one per other core running alongside) are hashed.
async fn a_callers_queued_tries_see_each_others_failures_and_burn_no_more_work(db: Db) {
    let store = Store::open(&fresh_database(db).await, PoolSettings::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let policy = Policy {
        default_ttl: chrono::Duration::days(7),
        max_ttl: chrono::Duration::days(30),
        create: CreatePolicy::Open,
    };
    let seal = ReplaySeal::new(SECRET.as_bytes());
    let invites = Invites::new(store, CommitWakeup::default(), policy, seal);
    let caller = |id: &str| Caller {
        user_id: Id::parse(id).unwrap(),
        verified_email: None,
        verified_phone: None,
        is_admin: false,
        grants: Vec::new(),
    };
    let draft = InviteDraft {
        target_type: "party".into(),
        target_id: "party-1".into(),
        invitee: DraftInvitee::None,
        max_uses: Some(0),
        ..Default::default()
    };
    let (_, token) = invites
        .create(&caller("host"), draft, "castle-42", false, None)
        .await
        .unwrap();

    let tries = (0..12).map(|_| {
        let invites = invites.clone();
        let link = InviteRef::Token(token.expose().to_owned());
        async move { invites.accept(&caller("mallory"), link, "guess").await }
    });
    let outcomes = futures_util::future::join_all(tries).await;

    let count = |refusal: InviteError| {
        outcomes
            .iter()
            .filter(|o| matches!(o, Err(Error::Rule(e)) if *e == refusal))
            .count()
    };
    assert_eq!(count(InviteError::WrongPasscode), 5, "{outcomes:?}");
    assert_eq!(count(InviteError::PasscodeLocked), 7, "{outcomes:?}");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let hashed = invites.passcode_verifications();
    assert!(
        hashed < 5 + cores,
        "{hashed} passcodes hashed for 5 allowed tries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passcode_checks_past_the_queue_are_refused_at_once_and_health_holds() {
    let mut options = Options::fresh(Db::Sqlite).await;
    // Above the 300 tries: the passcode queue is what refuses here, not the
    // cap on concurrent calls.
    options
        .flags
        .extend(["--max-concurrent-calls".into(), "1000".into()]);
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let (_, link) = create(
        &mut client,
        link_with_passcode("castle-42"),
        &token("host", None, false),
    )
    .await;

    let tries = (0..300).map(|n| {
        let mut client = client.clone();
        let request = authed(
            accept_with(&link, "guess"),
            &token(&format!("u{n}"), None, false),
        );
        async move { client.accept_invite(request).await.unwrap_err() }
    });
    let refusals = futures_util::future::join_all(tries).await;

    let busy = refusals
        .iter()
        .filter(|s| s.code() == Code::ResourceExhausted && reason(s) == "PASSCODE_BUSY")
        .count();
    let checked = refusals
        .iter()
        .filter(|s| reason(s) == "PASSCODE_INVALID")
        .count();
    assert!(busy > 0, "a full queue refuses");
    assert_eq!(busy + checked, 300, "every other try was checked");
    assert_eq!(app.health().await, ServingStatus::Serving);
    app.stop().await;
}
