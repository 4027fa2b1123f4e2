//! The calls the generator makes, through the service's own tonic client.
//! Each RPC's inputs are unique per call where the service demands it
//! (a new invitee per create), prepared beforehand where it needs state
//! (an invite to accept per call).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use invite_service::{
    domain::Grant,
    grpc::auth::{TokenRequest, mint},
    pb::{self, invite_service_client::InviteServiceClient},
};
use tonic::{Request, transport::Channel};

use crate::server::SECRET;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Rpc {
    Create,
    Accept,
    Get,
    List,
    Batch,
}

impl Rpc {
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "CreateInvite",
            Self::Accept => "AcceptInvite",
            Self::Get => "GetInvite",
            Self::List => "ListInvites",
            Self::Batch => "BatchCreateInvites (10)",
        }
    }
}

/// What every caller shares: tokens, a counter for unique inputs, and the
/// invites prepared for accepts and reads.
pub struct Workload {
    pub alice: String,
    pub bob: String,
    next: AtomicUsize,
    /// Tokens of invites addressed to bob, one per accept.
    pending: std::sync::Mutex<Vec<String>>,
    /// Ids of existing invites, for gets.
    existing: Vec<String>,
}

fn token(sub: &str, grants: &[Grant]) -> String {
    mint(
        SECRET.as_bytes(),
        &TokenRequest {
            sub,
            email: None,
            admin: false,
            ttl: Duration::from_secs(24 * 3600),
            issuer: None,
            audience: None,
            grants,
            grants_claim: invite_service::grpc::auth::DEFAULT_GRANTS_CLAIM,
        },
    )
    .expect("a benchmark token")
}

fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ASCII"),
    );
    request
}

impl Workload {
    pub fn new() -> Self {
        let grants: Vec<Grant> = vec!["organization/*".parse().expect("a grant")];
        Self {
            alice: token("alice", &grants),
            bob: token("bob", &[]),
            next: AtomicUsize::new(0),
            pending: std::sync::Mutex::new(Vec::new()),
            existing: Vec::new(),
        }
    }

    fn unique(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// An invite for bob to a target of its own (one pending invite per
    /// target and invitee), or for a new address when `to_bob` is false.
    fn create_request(&self, to_bob: bool) -> pb::CreateInviteRequest {
        let n = self.unique();
        let invitee = if to_bob {
            pb::invite::Invitee::InviteeUserId("bob".into())
        } else {
            pb::invite::Invitee::InviteeEmail(format!("u{n}@example.org"))
        };
        pb::CreateInviteRequest {
            invite: Some(pb::Invite {
                target_type: "organization".into(),
                target_id: format!("org-{n}"),
                invitee: Some(invitee),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Creates `count` invites for bob (to accept) and keeps a sample of ids.
    pub async fn prepare(
        mut self,
        client: &InviteServiceClient<Channel>,
        count: usize,
    ) -> anyhow::Result<Arc<Self>> {
        use futures_util::StreamExt as _;
        let requests: Vec<_> = (0..count).map(|_| self.create_request(true)).collect();
        let created: Vec<_> = futures_util::stream::iter(requests)
            .map(|request| {
                let (mut client, alice) = (client.clone(), self.alice.clone());
                async move { client.create_invite(authed(request, &alice)).await }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut tokens = Vec::with_capacity(count);
        for answer in created {
            let created = answer?.into_inner();
            if self.existing.len() < 1000 {
                self.existing.push(created.invite.expect("an invite").id);
            }
            tokens.push(created.token);
        }
        self.pending = std::sync::Mutex::new(tokens);
        Ok(Arc::new(self))
    }

    /// How many invites are left to accept.
    pub fn pending(&self) -> usize {
        self.pending.lock().expect("not poisoned").len()
    }

    /// One call; Err carries the status code's name.
    pub async fn call(
        &self,
        rpc: Rpc,
        client: &mut InviteServiceClient<Channel>,
    ) -> Result<(), &'static str> {
        let answer = match rpc {
            Rpc::Create => client
                .create_invite(authed(self.create_request(false), &self.alice))
                .await
                .map(drop),
            Rpc::Accept => {
                let Some(token) = self.pending.lock().expect("not poisoned").pop() else {
                    return Err("NO_INVITE_LEFT");
                };
                let request = pb::AcceptInviteRequest {
                    invite_ref: Some(pb::accept_invite_request::InviteRef::Token(token)),
                    passcode: String::new(),
                };
                client
                    .accept_invite(authed(request, &self.bob))
                    .await
                    .map(drop)
            }
            Rpc::Get => {
                let id = self.existing[self.unique() % self.existing.len()].clone();
                client
                    .get_invite(authed(pb::GetInviteRequest { id }, &self.alice))
                    .await
                    .map(drop)
            }
            Rpc::List => {
                let request = pb::ListInvitesRequest {
                    page_size: 20,
                    ..Default::default()
                };
                client
                    .list_invites(authed(request, &self.alice))
                    .await
                    .map(drop)
            }
            Rpc::Batch => {
                let n = self.unique();
                let request = pb::BatchCreateInvitesRequest {
                    target_type: "organization".into(),
                    target_id: format!("batch-{n}"),
                    emails: (0..10).map(|i| format!("b{n}-{i}@example.org")).collect(),
                    ..Default::default()
                };
                client
                    .batch_create_invites(authed(request, &self.alice))
                    .await
                    .map(drop)
            }
        };
        answer.map_err(|status| invite_service::metrics::code_name(status.code()))
    }
}
