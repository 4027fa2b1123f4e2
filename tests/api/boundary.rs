//! The security boundary through gRPC: what a token proves, and what it
//! does not, is what decides who may act on an invite.

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::{grpc::auth::Claims, pb, store::entities::invite_event};
use jsonwebtoken::{EncodingKey, Header};
use prost::Message as _;
use sea_orm::{Database, EntityTrait as _};
use serde_json::{Value, json};
use tonic::{Code, Request};

on_both_databases!(
    an_unverified_email_or_phone_identifies_no_invitee,
    admins_accepting_or_rejecting_someone_elses_invite_are_refused,
    a_token_is_in_an_event_only_when_notify_asks_for_it,
);

/// A token whose address and phone number are there but not verified.
fn unverified(sub: &str, email: &str, phone: &str) -> String {
    let claims = Claims {
        sub: sub.into(),
        exp: jsonwebtoken::get_current_timestamp() + 600,
        email: Some(email.into()),
        email_verified: false,
        phone_number: Some(phone.into()),
        phone_number_verified: false,
        scope: None,
        iss: None,
        aud: None,
        other: serde_json::Map::new(),
    };
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn an_unverified_email_or_phone_identifies_no_invitee(db: Db) {
    let app = spawn_app(db).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let (_, by_email) = create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &alice,
    )
    .await;
    let mut to_phone = email_invite("org-1", "unused@example.org");
    to_phone.invite.as_mut().unwrap().invitee =
        Some(pb::invite::Invitee::InviteePhone("+14155550100".into()));
    let (_, by_phone) = create(&mut client, to_phone, &alice).await;
    let claims_to_be_bob = unverified("mallory", "bob@example.org", "+14155550100");

    let mut refusals = Vec::new();
    for link in [by_email, by_phone] {
        let refused = client
            .accept_invite(authed(accept_by_token(link), &claims_to_be_bob))
            .await
            .unwrap_err();
        refusals.push((refused.code(), reason(&refused)));
    }
    let listed = client
        .list_invites(authed(pb::ListInvitesRequest::default(), &claims_to_be_bob))
        .await
        .unwrap()
        .into_inner();

    let mismatch = (Code::PermissionDenied, "INVITEE_MISMATCH".to_owned());
    assert_eq!(refusals, [mismatch.clone(), mismatch]);
    assert_eq!(
        listed.total_size, 0,
        "bob's invites are not listed to an unverified claim"
    );
    app.stop().await;
}

async fn admins_accepting_or_rejecting_someone_elses_invite_are_refused(db: Db) {
    let scene = alice_invites_bob(db).await;
    let mut client = scene.client.clone();
    let admin = token("svc-admin", None, true);

    let accepted = client
        .accept_invite(authed(accept_by_token(scene.link.clone()), &admin))
        .await
        .unwrap_err();
    let rejected = client
        .reject_invite(authed(
            pb::RejectInviteRequest {
                invite_ref: Some(pb::reject_invite_request::InviteRef::Id(
                    scene.invite.id.clone(),
                )),
            },
            &admin,
        ))
        .await
        .unwrap_err();

    for refused in [&accepted, &rejected] {
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        assert_eq!(reason(refused), "INVITEE_MISMATCH");
    }
    scene.end().await;
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Claims for `sub`, valid for an hour.
fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "exp": now() + 3600 })
}

/// A token with exactly these claims, HS256 under `secret`.
fn hs256_with(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// A token with exactly these claims, signed as the test servers expect.
fn hs256(claims: &Value) -> String {
    hs256_with(SECRET.as_bytes(), claims)
}

/// How the server answers a call with this `authorization` header: an
/// authenticated caller asking for an invite that does not exist gets NOT_FOUND.
async fn answer(app: &TestApp, authorization: &str) -> tonic::Status {
    let mut client = app.client().await;
    let mut request = Request::new(pb::GetInviteRequest {
        id: uuid::Uuid::now_v7().to_string(),
    });
    request
        .metadata_mut()
        .insert("authorization", authorization.parse().unwrap());
    client
        .get_invite(request)
        .await
        .expect_err("a random invite id was found")
}

fn assert_unauthenticated(status: &tonic::Status, why: &str, detail: &str, what: &str) {
    assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    assert_eq!(reason(status), why, "{what}: {status:?}");
    assert!(status.message().contains(detail), "{what}: {status:?}");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

async fn a_token_is_in_an_event_only_when_notify_asks_for_it(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let (plain, plain_token) = create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &alice,
    )
    .await;
    let notify = pb::CreateInviteRequest {
        notify: true,
        ..email_invite("org-1", "carol@example.org")
    };
    let (notified, notified_token) = create(&mut client, notify, &alice).await;

    let bob = token("bob", Some("bob@example.org"), false);
    client
        .accept_invite(authed(accept_by_id(&plain.id), &bob))
        .await
        .unwrap();
    let revoke = pb::RevokeInviteRequest {
        id: notified.id.clone(),
        reason: String::new(),
    };
    client.revoke_invite(authed(revoke, &alice)).await.unwrap();
    let received = events.take(4).await;
    wait_until_outbox_is_empty(&app.database_url).await;
    let conn = Database::connect(&app.database_url).await.unwrap();
    let stored = invite_event::Entity::find().all(&conn).await.unwrap();

    for message in &received {
        let invite_id = &message.event.invite.as_ref().unwrap().id;
        let carries = message.routing_key == "invite.created" && *invite_id == notified.id;
        let expected = if carries { notified_token.as_str() } else { "" };
        let what = format!("{} of {invite_id}", message.routing_key);
        assert_eq!(message.event.token, expected, "{what}");
        assert_eq!(
            contains(&message.body, notified_token.as_bytes()),
            carries,
            "{what}"
        );
        assert!(!contains(&message.body, plain_token.as_bytes()), "{what}");
    }
    assert_eq!(stored.len(), 4);
    for event in &stored {
        for secret in [&plain_token, &notified_token] {
            assert!(!contains(&event.payload, secret.as_bytes()), "{event:?}");
        }
        let body = pb::InviteEvent::decode(event.payload.as_slice()).unwrap();
        assert!(body.token.is_empty(), "{event:?}");
        assert_eq!(event.token, None, "erased once published");
    }
    conn.close().await.ok();
    events.delete_exchange().await;
    app.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated_each_with_its_reason() {
    let app = spawn_app(Db::Sqlite).await;
    let alice = hs256(&claims("alice"));
    let forged = hs256_with(b"another-secret-another-secret-another", &claims("alice"));
    // An admin's claims under alice's signature.
    let admin_claims = json!({ "sub": "alice", "exp": now() + 3600, "scope": "invites:admin" });
    let admin = hs256_with(b"unknown", &admin_claims);
    let (header, rest) = alice.split_once('.').unwrap();
    let signature = rest.rsplit_once('.').unwrap().1;
    let admin_payload = admin.split('.').nth(1).unwrap();
    let tampered = format!("{header}.{admin_payload}.{signature}");
    let expired = hs256(&json!({ "sub": "alice", "exp": now() - 3600 }));
    let bad_sub = hs256(&claims("has space"));
    // `{"alg":` cut short, before alice's claims and signature.
    let bad_jwt_header = format!("eyJhbGciOg.{rest}");
    let cases = [
        (
            "another secret",
            format!("Bearer {forged}"),
            "INVALID_TOKEN",
            "InvalidSignature",
        ),
        (
            "tampered claims",
            format!("Bearer {tampered}"),
            "INVALID_TOKEN",
            "InvalidSignature",
        ),
        ("expired", format!("Bearer {expired}"), "TOKEN_EXPIRED", ""),
        (
            "sub with a space",
            format!("Bearer {bad_sub}"),
            "INVALID_SUBJECT",
            "",
        ),
        (
            "JWT header",
            format!("Bearer {bad_jwt_header}"),
            "INVALID_TOKEN",
            "JSON error",
        ),
        (
            "Basic scheme",
            format!("Basic {alice}"),
            "MALFORMED_AUTHORIZATION",
            "",
        ),
        ("no scheme", alice.clone(), "MALFORMED_AUTHORIZATION", ""),
    ];

    for (what, authorization, why, detail) in cases {
        let status = answer(&app, &authorization).await;

        assert_unauthenticated(&status, why, detail, what);
    }
    let honest = answer(&app, &format!("Bearer {alice}")).await;
    assert_eq!(honest.code(), Code::NotFound, "{honest:?}");
    app.stop().await;
}
