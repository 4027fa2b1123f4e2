//! The InviteService handlers: authenticate, convert, call the use case,
//! convert back. Nothing else happens here.

use tonic::{Request, Response, Status};

use super::requests;
use crate::{
    app::Invites,
    domain::Caller,
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
    async fn create_invite(
        &self,
        request: Request<pb::CreateInviteRequest>,
    ) -> Result<Response<pb::CreateInviteResponse>, Status> {
        let caller = caller(&request)?;
        let pb::CreateInviteRequest { invite, notify } = request.into_inner();
        let draft = requests::invite_draft(invite)?;
        let (invite, token) = self.invites.create(&caller, draft, notify).await?;
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
        let reference = requests::invite_ref(request.into_inner().invite_ref)?;
        let invite = self.invites.accept(&caller, reference).await?;
        Ok(Response::new((&invite).into()))
    }

    async fn reject_invite(
        &self,
        request: Request<pb::RejectInviteRequest>,
    ) -> Result<Response<pb::Invite>, Status> {
        let caller = caller(&request)?;
        let reference = requests::invite_ref(request.into_inner().invite_ref)?;
        let invite = self.invites.reject(&caller, reference).await?;
        Ok(Response::new((&invite).into()))
    }

    async fn revoke_invite(
        &self,
        request: Request<pb::RevokeInviteRequest>,
    ) -> Result<Response<pb::Invite>, Status> {
        let caller = caller(&request)?;
        let pb::RevokeInviteRequest { id, reason } = request.into_inner();
        let invite = self.invites.revoke(&caller, &id, &reason).await?;
        Ok(Response::new((&invite).into()))
    }

    async fn delete_invite(
        &self,
        request: Request<pb::DeleteInviteRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&request)?;
        self.invites.delete(&caller, &request.get_ref().id).await?;
        Ok(Response::new(()))
    }
}
