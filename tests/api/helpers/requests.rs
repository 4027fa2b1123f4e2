//! Tokens, requests and the usual arrange step (alice invites bob).

use std::time::Duration;

use invite_service::{
    domain::Grant,
    grpc::auth::{DEFAULT_GRANTS_CLAIM, TokenRequest, mint},
    pb::{self, invite_service_client::InviteServiceClient},
};
use tonic::{Request, transport::Channel};

use super::*;

/// The target types the tests invite to: every test user may invite to any
/// of them with any role, unless a test says otherwise with [`token_granting`].
pub const TEST_GRANTS: [&str; 3] = ["organization/*", "party/*", "account_group/*"];

/// A signed bearer token for `sub`, optionally with a verified email / admin
/// scope, granted [`TEST_GRANTS`].
pub fn token(sub: &str, email: Option<&str>, admin: bool) -> String {
    token_granting(sub, email, admin, &TEST_GRANTS)
}

/// A signed bearer token with exactly these grants (`TYPE/ID[=ROLE,ROLE]`).
pub fn token_granting(sub: &str, email: Option<&str>, admin: bool, grants: &[&str]) -> String {
    let grants: Vec<Grant> = grants.iter().map(|g| g.parse().unwrap()).collect();
    mint(
        SECRET.as_bytes(),
        &TokenRequest {
            sub,
            email,
            admin,
            ttl: Duration::from_secs(3600),
            issuer: None,
            audience: None,
            grants: &grants,
            grants_claim: DEFAULT_GRANTS_CLAIM,
        },
    )
    .unwrap()
}

/// Wraps a message with `authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// An invite to `target_id` for the given email, as a CreateInviteRequest.
pub fn email_invite(target_id: &str, email: &str) -> pb::CreateInviteRequest {
    pb::CreateInviteRequest {
        invite: Some(pb::Invite {
            target_type: "organization".into(),
            target_id: target_id.into(),
            invitee: Some(pb::invite::Invitee::InviteeEmail(email.into())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An open link to `target_id` that `max_uses` users may use.
pub fn open_link(target_id: &str, max_uses: Option<i32>) -> pb::CreateInviteRequest {
    pb::CreateInviteRequest {
        invite: Some(pb::Invite {
            target_type: "party".into(),
            target_id: target_id.into(),
            max_uses,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `ErrorInfo.reason` of a status.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

/// The fields a status's `BadRequest` names.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .bad_request()
        .map(|br| {
            br.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

pub fn accept_by_token(token: impl Into<String>) -> pb::AcceptInviteRequest {
    pb::AcceptInviteRequest {
        invite_ref: Some(pb::accept_invite_request::InviteRef::Token(token.into())),
        passcode: String::new(),
    }
}

pub fn accept_by_id(id: impl Into<String>) -> pb::AcceptInviteRequest {
    pb::AcceptInviteRequest {
        invite_ref: Some(pb::accept_invite_request::InviteRef::Id(id.into())),
        passcode: String::new(),
    }
}

/// Creates an invite as `inviter` and returns it with its token.
pub async fn create(
    client: &mut InviteServiceClient<Channel>,
    request: pb::CreateInviteRequest,
    inviter: &str,
) -> (pb::Invite, String) {
    let created = client
        .create_invite(authed(request, inviter))
        .await
        .expect("create the invite")
        .into_inner();
    (created.invite.expect("an invite"), created.token)
}

/// Revokes an invite as `caller`, which must be allowed to.
pub async fn revoke(client: &mut InviteServiceClient<Channel>, id: &str, caller: &str) {
    let request = pb::RevokeInviteRequest {
        id: id.into(),
        ..Default::default()
    };
    client
        .revoke_invite(authed(request, caller))
        .await
        .expect("revoke the invite");
}

/// A timestamp `offset` from now.
pub fn timestamp_in(offset: chrono::Duration) -> prost_types::Timestamp {
    invite_service::pb::timestamp(chrono::Utc::now() + offset)
}

/// The usual start of a test: a server, a queue bound to its exchange, a
/// client, and alice's pending invite for bob@example.org (made after the
/// queue was bound, so its `invite.created` is the first event).
pub struct Scene {
    pub app: TestApp,
    pub events: Events,
    pub client: InviteServiceClient<Channel>,
    /// alice's bearer token: the inviter.
    pub alice: String,
    /// bob's bearer token, with his verified email: the invitee.
    pub bob: String,
    pub invite: pb::Invite,
    /// The invite's token.
    pub link: String,
}

pub async fn alice_invites_bob(db: Db) -> Scene {
    let app = spawn_app(db).await;
    let events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let (invite, link) = create(
        &mut client,
        email_invite("org-1", "bob@example.org"),
        &alice,
    )
    .await;
    Scene {
        app,
        events,
        client,
        alice,
        bob: token("bob", Some("bob@example.org"), false),
        invite,
        link,
    }
}

impl Scene {
    /// Deletes the test's exchange and stops the server.
    pub async fn end(self) {
        self.events.delete_exchange().await;
        self.app.stop().await;
    }
}
