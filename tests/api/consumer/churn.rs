//! What a busy service does meanwhile: single-use invites accepted, links
//! raced for, invites rejected and revoked; and which acceptances succeeded.

use invite_service::pb::{self, invite_service_client::InviteServiceClient};
use tokio::task::JoinSet;
use tonic::{Code, transport::Channel};

use crate::helpers::*;

const SINGLE_USE: usize = 6;
const LINKS: usize = 2;
const USES_PER_LINK: i32 = 3;
const RACERS_PER_LINK: usize = 5;
const REJECTED: usize = 3;
const REVOKED: usize = 3;

/// A successful AcceptInvite: `user` is now a member of the invite's target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acceptance {
    pub target_type: String,
    pub target_id: String,
    pub user: String,
    pub invite_id: String,
}

impl Acceptance {
    fn of(invite: &pb::Invite, user: &str) -> Self {
        Self {
            target_type: invite.target_type.clone(),
            target_id: invite.target_id.clone(),
            user: user.to_owned(),
            invite_id: invite.id.clone(),
        }
    }
}

/// Runs one wave of calls concurrently, every name suffixed with `wave`;
/// each target is used by one invite only, so an acceptance and its
/// membership name each other.
pub async fn churn(client: &InviteServiceClient<Channel>, wave: usize) -> Vec<Acceptance> {
    let mut calls = JoinSet::new();
    for n in 0..SINGLE_USE {
        calls.spawn(single_use(client.clone(), format!("{wave}-{n}")));
    }
    for n in 0..LINKS {
        calls.spawn(link(client.clone(), format!("{wave}-{n}")));
    }
    for n in 0..REJECTED {
        calls.spawn(rejected(client.clone(), format!("{wave}-{n}")));
    }
    for n in 0..REVOKED {
        calls.spawn(revoked(client.clone(), format!("{wave}-{n}")));
    }
    let mut accepted = Vec::new();
    while let Some(call) = calls.join_next().await {
        accepted.extend(call.expect("a churn task"));
    }
    accepted
}

fn alice() -> String {
    token("alice", None, false)
}

/// An invite for `user`'s address, and the user's token with it verified.
async fn invite_user(
    client: &mut InviteServiceClient<Channel>,
    kind: &str,
    name: &str,
) -> (pb::Invite, String, String) {
    let (user, target) = (format!("{kind}-{name}"), format!("org-{kind}-{name}"));
    let email = format!("{user}@example.org");
    let (invite, link) = create(client, email_invite(&target, &email), &alice()).await;
    (invite, link, token(&user, Some(&email), false))
}

async fn single_use(mut client: InviteServiceClient<Channel>, name: String) -> Vec<Acceptance> {
    let (_, link, invitee) = invite_user(&mut client, "member", &name).await;
    let accepted = client
        .accept_invite(authed(accept_by_token(link), &invitee))
        .await
        .expect("the invitee accepts")
        .into_inner();
    vec![Acceptance::of(&accepted, &format!("member-{name}"))]
}

/// A link raced for by more users than it has uses; a winner accepting
/// again gets their redemption back, and must not become two members.
async fn link(mut client: InviteServiceClient<Channel>, name: String) -> Vec<Acceptance> {
    let request = open_link(&format!("party-{name}"), Some(USES_PER_LINK));
    let (_, link) = create(&mut client, request, &alice()).await;
    let mut racers = JoinSet::new();
    for n in 0..RACERS_PER_LINK {
        let (mut client, link) = (client.clone(), link.clone());
        let user = format!("racer-{name}-{n}");
        racers.spawn(async move {
            let request = authed(accept_by_token(link), &token(&user, None, false));
            (client.accept_invite(request).await, user)
        });
    }
    let mut accepted = Vec::new();
    while let Some(raced) = racers.join_next().await {
        match raced.expect("a racer") {
            (Ok(invite), user) => accepted.push(Acceptance::of(&invite.into_inner(), &user)),
            (Err(refused), _) => assert_eq!(reason(&refused), "INVITE_EXHAUSTED"),
        }
    }
    assert_eq!(
        accepted.len(),
        USES_PER_LINK as usize,
        "as many winners as uses"
    );
    let again = authed(
        accept_by_token(link),
        &token(&accepted[0].user, None, false),
    );
    let again = client.accept_invite(again).await.expect("a winner again");
    accepted.push(Acceptance::of(&again.into_inner(), &accepted[0].user));
    accepted
}

async fn rejected(mut client: InviteServiceClient<Channel>, name: String) -> Vec<Acceptance> {
    let (invite, _, invitee) = invite_user(&mut client, "declined", &name).await;
    let reject = pb::RejectInviteRequest {
        invite_ref: Some(pb::reject_invite_request::InviteRef::Id(invite.id)),
    };
    client
        .reject_invite(authed(reject, &invitee))
        .await
        .expect("the invitee rejects");
    vec![]
}

/// Revoked, then accepted too late: a refused acceptance makes no member.
async fn revoked(mut client: InviteServiceClient<Channel>, name: String) -> Vec<Acceptance> {
    let (invite, link, invitee) = invite_user(&mut client, "revoked", &name).await;
    let revoke = pb::RevokeInviteRequest {
        id: invite.id,
        reason: "churn".into(),
    };
    client
        .revoke_invite(authed(revoke, &alice()))
        .await
        .expect("alice revokes");
    let late = client
        .accept_invite(authed(accept_by_token(link), &invitee))
        .await
        .expect_err("a revoked invite cannot be accepted");
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    vec![]
}
