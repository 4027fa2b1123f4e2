//! Protobuf requests → the domain's raw inputs. Shape only: the rules are the
//! domain's. Destructuring every field means a new proto field breaks the
//! build here until someone decides what it means.

use crate::{
    app::InviteRef,
    domain::{
        DraftInvitee, InviteDraft, InviteError, InviteStatus, Violations, paging::RawListRequest,
    },
    pb,
};

pub fn invite_draft(invite: Option<pb::Invite>) -> Result<InviteDraft, InviteError> {
    let Some(invite) = invite else {
        return Err(InviteError::invalid("invite", "is required"));
    };
    let pb::Invite {
        // Output only: ignored on create, as AIP-133 asks.
        id: _,
        status: _,
        use_count: _,
        requires_passcode: _,
        accepted_by: _,
        accepted_at: _,
        rejected_at: _,
        revoked_by: _,
        revoked_at: _,
        revoke_reason: _,
        create_time: _,
        update_time: _,
        etag: _,
        target_type,
        target_id,
        inviter_id,
        invitee,
        allowed_email_domains,
        role,
        starts_at,
        expires_at,
        max_uses,
        metadata,
    } = invite;
    let mut bad = Violations::default();
    let mut time = |field: &str, ts: Option<prost_types::Timestamp>| {
        ts.and_then(|ts| {
            bad.check(
                field,
                pb::from_timestamp(&ts).ok_or_else(|| "is not a valid timestamp".to_string()),
            )
        })
    };
    let starts_at = time("invite.starts_at", starts_at);
    let expires_at = time("invite.expires_at", expires_at);
    bad.into_result()?;
    let invitee = match invitee {
        None => DraftInvitee::None,
        Some(pb::invite::Invitee::InviteeEmail(email)) => DraftInvitee::Email(email),
        Some(pb::invite::Invitee::InviteePhone(phone)) => DraftInvitee::Phone(phone),
        Some(pb::invite::Invitee::InviteeUserId(id)) => DraftInvitee::UserId(id),
    };
    Ok(InviteDraft {
        target_type,
        target_id,
        inviter_id,
        invitee,
        allowed_email_domains,
        role,
        starts_at,
        expires_at,
        max_uses,
        metadata: metadata.as_ref().map(pb::struct_to_json),
    })
}

pub fn list_request(request: pb::ListInvitesRequest) -> Result<RawListRequest, InviteError> {
    let pb::ListInvitesRequest {
        target_type,
        target_id,
        status,
        role,
        invitee_email,
        inviter_id,
        page_size,
        page_token,
    } = request;
    let status = match pb::InviteStatus::try_from(status) {
        Ok(pb::InviteStatus::Unspecified) => None,
        Ok(pb::InviteStatus::Pending) => Some(InviteStatus::Pending),
        Ok(pb::InviteStatus::Accepted) => Some(InviteStatus::Accepted),
        Ok(pb::InviteStatus::Rejected) => Some(InviteStatus::Rejected),
        Ok(pb::InviteStatus::Revoked) => Some(InviteStatus::Revoked),
        Ok(pb::InviteStatus::Expired) => Some(InviteStatus::Expired),
        Err(_) => return Err(InviteError::invalid("status", "is not an InviteStatus")),
    };
    Ok(RawListRequest {
        target_type,
        target_id,
        status,
        role,
        invitee_email,
        inviter_id,
        page_size,
        page_token,
    })
}

/// The `id` / `token` oneof of AcceptInvite and RejectInvite.
pub fn invite_ref<R>(reference: Option<R>) -> Result<InviteRef, InviteError>
where
    R: Into<InviteRef>,
{
    reference
        .map(Into::into)
        .ok_or_else(|| InviteError::invalid("id", "either id or token is required"))
}

impl From<pb::accept_invite_request::InviteRef> for InviteRef {
    fn from(reference: pb::accept_invite_request::InviteRef) -> Self {
        use pb::accept_invite_request::InviteRef as R;
        match reference {
            R::Id(id) => Self::Id(id),
            R::Token(token) => Self::Token(token),
        }
    }
}

impl From<pb::reject_invite_request::InviteRef> for InviteRef {
    fn from(reference: pb::reject_invite_request::InviteRef) -> Self {
        use pb::reject_invite_request::InviteRef as R;
        match reference {
            R::Id(id) => Self::Id(id),
            R::Token(token) => Self::Token(token),
        }
    }
}
