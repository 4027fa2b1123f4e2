//! The security boundary through gRPC: what a token proves, and what it
//! does not, is what decides who may act on an invite.

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::{grpc::auth::Claims, pb};
use jsonwebtoken::{EncodingKey, Header};
use tonic::Code;

on_both_databases!(
    an_unverified_email_or_phone_identifies_no_invitee,
    admins_accepting_or_rejecting_someone_elses_invite_are_refused,
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
