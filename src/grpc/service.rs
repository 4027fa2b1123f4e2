//! The InviteService handlers: authenticate, convert, call the use case,
//! convert back. Nothing else happens here.

use prost::Message as _;
use tonic::{Request, Response, Status};

use super::{dry_run, requests, watch};
use crate::{
    app::Invites,
    domain::{Caller, Invite},
    pb::{self, invite_service_server::InviteService},
};

pub struct InviteApi {
    invites: Invites,
}

impl InviteApi {
    pub fn new(invites: Invites) -> Self {
        Self { invites }
    }
}

/// Names the invite in the call's log line; a requested id only when it
/// reads as one, so the line never carries whatever a caller sent.
fn note_invite_id(raw: &str) {
    if let Ok(id) = uuid::Uuid::parse_str(raw) {
        tracing::Span::current().record("invite_id", tracing::field::display(id));
    }
}

fn note_invite(invite: &Invite) {
    tracing::Span::current().record("invite_id", tracing::field::display(invite.id));
}

/// The caller the auth interceptor put on the request.
fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::internal("the request was not authenticated"))
}

#[tonic::async_trait]
impl InviteService for InviteApi {
    type WatchInvitesStream = watch::WatchStream;

    async fn watch_invites(
        &self,
        request: Request<pb::WatchInvitesRequest>,
    ) -> Result<Response<Self::WatchInvitesStream>, Status> {
        let caller = caller(&request)?;
        let raw = watch::watch_request(request.into_inner());
        let items = self.invites.watch(&caller, raw).await?;
        Ok(Response::new(watch::responses(items)))
    }

    async fn create_invite(
        &self,
        request: Request<pb::CreateInviteRequest>,
    ) -> Result<Response<pb::CreateInviteResponse>, Status> {
        if request.get_ref().validate_only {
            dry_run::note(&request);
        }
        let caller = caller(&request)?;
        let mut request = request.into_inner();
        let passcode = std::mem::take(&mut request.passcode);
        let request_id = std::mem::take(&mut request.request_id);
        let validate_only = std::mem::take(&mut request.validate_only);
        // Checked on a dry run too, as the real call would.
        let key = requests::create_idempotency_key(&request_id, &request)?;
        let pb::CreateInviteRequest {
            invite,
            notify,
            passcode: _,
            request_id: _,
            validate_only: _,
        } = request;
        let draft = requests::invite_draft(invite)?;
        if validate_only {
            let preview = self
                .invites
                .preview_create(&caller, draft, &passcode)
                .await?;
            return Ok(Response::new(dry_run::create_answer(preview)));
        }
        let (invite, token) = self
            .invites
            .create(&caller, draft, &passcode, notify, key)
            .await?;
        note_invite(&invite);
        Ok(Response::new(pb::CreateInviteResponse {
            invite: Some((&invite).into()),
            token: token.expose().to_owned(),
        }))
    }

    async fn get_invite(
        &self,
        request: Request<pb::GetInviteRequest>,
    ) -> Result<Response<pb::Invite>, Status> {
        let caller = caller(&request)?;
        note_invite_id(&request.get_ref().id);
        let invite = self.invites.get(&caller, &request.get_ref().id).await?;
        Ok(Response::new((&invite).into()))
    }

    async fn list_invites(
        &self,
        request: Request<pb::ListInvitesRequest>,
    ) -> Result<Response<pb::ListInvitesResponse>, Status> {
        let caller = caller(&request)?;
        let raw = requests::list_request(request.into_inner())?;
        let page = self.invites.list(&caller, raw).await?;
        Ok(Response::new(pb::ListInvitesResponse {
            invites: page.invites.iter().map(Into::into).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
            total_size: i32::try_from(page.total_size).unwrap_or(i32::MAX),
        }))
    }

    async fn accept_invite(
        &self,
        request: Request<pb::AcceptInviteRequest>,
    ) -> Result<Response<pb::Invite>, Status> {
        let caller = caller(&request)?;
        let pb::AcceptInviteRequest {
            invite_ref,
            passcode,
        } = request.into_inner();
        let reference = requests::invite_ref(invite_ref)?;
        let invite = self.invites.accept(&caller, reference, &passcode).await?;
        note_invite(&invite);
        Ok(Response::new((&invite).into()))
    }

    async fn reject_invite(
        &self,
        request: Request<pb::RejectInviteRequest>,
    ) -> Result<Response<pb::Invite>, Status> {
        let caller = caller(&request)?;
        let reference = requests::invite_ref(request.into_inner().invite_ref)?;
        let invite = self.invites.reject(&caller, reference).await?;
        note_invite(&invite);
        Ok(Response::new((&invite).into()))
    }

    async fn revoke_invite(
        &self,
        request: Request<pb::RevokeInviteRequest>,
    ) -> Result<Response<pb::Invite>, Status> {
        let caller = caller(&request)?;
        let pb::RevokeInviteRequest { id, reason } = request.into_inner();
        note_invite_id(&id);
        let invite = self.invites.revoke(&caller, &id, &reason).await?;
        Ok(Response::new((&invite).into()))
    }

    async fn delete_invite(
        &self,
        request: Request<pb::DeleteInviteRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&request)?;
        note_invite_id(&request.get_ref().id);
        self.invites.delete(&caller, &request.get_ref().id).await?;
        Ok(Response::new(()))
    }

    async fn batch_create_invites(
        &self,
        request: Request<pb::BatchCreateInvitesRequest>,
    ) -> Result<Response<pb::BatchCreateInvitesResponse>, Status> {
        if request.get_ref().validate_only {
            dry_run::note(&request);
        }
        let caller = caller(&request)?;
        let mut request = request.into_inner();
        let request_id = std::mem::take(&mut request.request_id);
        let validate_only = std::mem::take(&mut request.validate_only);
        // Checked on a dry run too, as the real call would.
        let key = requests::idempotency_key(&request_id, &request)?;
        let notify = request.notify;
        let draft = requests::batch_draft(request);
        if validate_only {
            let preview = self.invites.preview_batch_create(&caller, draft).await?;
            return Ok(Response::new(dry_run::batch_answer(preview)));
        }
        let created = self
            .invites
            .batch_create(&caller, draft, notify, key)
            .await?;
        Ok(Response::new(pb::BatchCreateInvitesResponse {
            created: created
                .invites
                .iter()
                .map(|(invite, token)| pb::CreatedInvite {
                    invite: Some(invite.into()),
                    token: token.expose().to_owned(),
                })
                .collect(),
            invalid: created.refused.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_invite_by_token(
        &self,
        request: Request<pb::GetInviteByTokenRequest>,
    ) -> Result<Response<pb::Invite>, Status> {
        let caller = caller(&request)?;
        let invite = self
            .invites
            .get_by_token(&caller, &request.get_ref().token)
            .await?;
        note_invite(&invite);
        Ok(Response::new((&invite).into()))
    }

    async fn update_invite(
        &self,
        request: Request<pb::UpdateInviteRequest>,
    ) -> Result<Response<pb::Invite>, Status> {
        let caller = caller(&request)?;
        let (id, etag, patch) = requests::update_request(request.into_inner())?;
        note_invite_id(&id);
        let invite = self.invites.update(&caller, &id, &etag, patch).await?;
        Ok(Response::new((&invite).into()))
    }

    async fn resend_invite(
        &self,
        request: Request<pb::ResendInviteRequest>,
    ) -> Result<Response<pb::ResendInviteResponse>, Status> {
        let caller = caller(&request)?;
        let pb::ResendInviteRequest { id, notify, ttl } = request.into_inner();
        note_invite_id(&id);
        let ttl = requests::ttl(ttl)?;
        let (invite, token) = self.invites.resend(&caller, &id, ttl, notify).await?;
        Ok(Response::new(pb::ResendInviteResponse {
            invite: Some((&invite).into()),
            token: token.expose().to_owned(),
        }))
    }

    async fn list_invite_events(
        &self,
        request: Request<pb::ListInviteEventsRequest>,
    ) -> Result<Response<pb::ListInviteEventsResponse>, Status> {
        let caller = caller(&request)?;
        let pb::ListInviteEventsRequest {
            invite_id,
            page_size,
            page_token,
        } = request.into_inner();
        note_invite_id(&invite_id);
        let history = self
            .invites
            .history(&caller, &invite_id, page_size, &page_token)
            .await?;
        let events = history
            .events
            .iter()
            .map(|stored| {
                pb::InviteEvent::decode(stored.payload.as_slice()).map_err(|err| {
                    Status::from(crate::error::Error::Internal(
                        anyhow::Error::new(err).context(format!("event {} payload", stored.id)),
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ListInviteEventsResponse {
            events,
            next_page_token: history.next_page_token.unwrap_or_default(),
        }))
    }
}
