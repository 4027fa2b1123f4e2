//! Protobuf requests → the domain's raw inputs. Shape only: the rules are the
//! domain's. Destructuring every field means a new proto field breaks the
//! build here until someone decides what it means.

use chrono::{DateTime, SubsecRound as _, Utc};

use crate::{
    app::{IdempotencyKey, InviteRef},
    domain::{
        BatchDraft, DraftInvitee, InviteDraft, InviteError, InviteStatus, Patch, Violations,
        paging::RawListRequest,
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
                client_time(&ts).ok_or_else(|| "is not a valid timestamp".to_string()),
            )
        })
    };
    let starts_at = time("invite.starts_at", starts_at);
    let expires_at = time("invite.expires_at", expires_at);
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
        passcode_hash: None,
        // Reported with the domain's findings, so that every bad field is listed.
        unreadable: bad,
    })
}

/// A client's timestamp, cut to the microseconds both databases keep, so that
/// what a write returns is what a later read returns, on either database.
fn client_time(ts: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    pb::from_timestamp(ts).map(|at| at.trunc_subsecs(6))
}

/// The idempotency key of a create request: its `request_id`, and a hash of
/// the rest of it. The passcode is left out of that hash: a fast hash of a
/// short secret would be a way to guess it.
pub fn idempotency_key<M: prost::Message>(
    request_id: &str,
    request_without_secrets: &M,
) -> Result<Option<IdempotencyKey>, InviteError> {
    IdempotencyKey::parse(request_id, &request_without_secrets.encode_to_vec())
}

/// The idempotency key of a CreateInvite request, blind to what a create
/// ignores (the invite's output-only fields, id and etag): a retry that
/// echoes a previous answer's invite is the same request, and an output-only
/// field never causes an error (AIP-203).
pub fn create_idempotency_key(
    request_id: &str,
    request: &pb::CreateInviteRequest,
) -> Result<Option<IdempotencyKey>, InviteError> {
    if request_id.is_empty() {
        return Ok(None);
    }
    let mut hashed = request.clone();
    if let Some(invite) = hashed.invite.as_mut() {
        forget_output_only(invite);
    }
    idempotency_key(request_id, &hashed)
}

/// Resets what `invite_draft` ignores. A field added to the proto later is
/// hashed until it is listed here: a retry may be refused, never confused.
fn forget_output_only(invite: &mut pb::Invite) {
    invite.id.clear();
    invite.status = 0;
    invite.use_count = 0;
    invite.requires_passcode = false;
    invite.accepted_by.clear();
    invite.accepted_at = None;
    invite.rejected_at = None;
    invite.revoked_by.clear();
    invite.revoked_at = None;
    invite.revoke_reason.clear();
    invite.create_time = None;
    invite.update_time = None;
    invite.etag.clear();
}

pub fn batch_draft(request: pb::BatchCreateInvitesRequest) -> BatchDraft {
    let pb::BatchCreateInvitesRequest {
        target_type,
        target_id,
        emails,
        role,
        expires_at,
        metadata,
        inviter_id,
        // Handled by the caller.
        notify: _,
        request_id: _,
        validate_only: _,
    } = request;
    let mut unreadable = Violations::default();
    let expires_at = expires_at.and_then(|ts| {
        unreadable.check(
            "expires_at",
            client_time(&ts).ok_or_else(|| "is not a valid timestamp".to_string()),
        )
    });
    BatchDraft {
        target_type,
        target_id,
        inviter_id,
        emails,
        role,
        expires_at,
        metadata: metadata.as_ref().map(pb::struct_to_json),
        unreadable,
    }
}

/// What UpdateInvite may change, by `update_mask` path.
const UPDATABLE: [&str; 5] = ["role", "expires_at", "starts_at", "max_uses", "metadata"];

/// The invite's id, the client's etag, and the patch the mask selects.
pub fn update_request(
    request: pb::UpdateInviteRequest,
) -> Result<(String, String, Patch), InviteError> {
    let pb::UpdateInviteRequest {
        invite,
        update_mask,
    } = request;
    let invite = invite.ok_or_else(|| InviteError::invalid("invite", "is required"))?;
    let paths = update_mask.map(|mask| mask.paths).unwrap_or_default();
    let mut bad = Violations::default();
    if paths.is_empty() {
        bad.add(
            "update_mask",
            format!(
                "is required: name the fields to change among {}",
                UPDATABLE.join(", ")
            ),
        );
    }
    let mut patch = Patch::default();
    for path in &paths {
        let path = path.strip_prefix("invite.").unwrap_or(path);
        match path {
            "role" => patch.role = Some(invite.role.clone()),
            "expires_at" => match invite.expires_at.as_ref().map(client_time) {
                Some(Some(at)) => patch.expires_at = Some(at),
                Some(None) => bad.add("invite.expires_at", "is not a valid timestamp"),
                None => bad.add("invite.expires_at", "is required when update_mask names it"),
            },
            "starts_at" => match invite.starts_at.as_ref().map(client_time) {
                Some(Some(at)) => patch.starts_at = Some(Some(at)),
                Some(None) => bad.add("invite.starts_at", "is not a valid timestamp"),
                None => patch.starts_at = Some(None),
            },
            "max_uses" => patch.max_uses = Some(invite.max_uses),
            "metadata" => patch.metadata = Some(invite.metadata.as_ref().map(pb::struct_to_json)),
            other => bad.add(
                "update_mask",
                format!(
                    "{} cannot be updated; the fields are {}",
                    crate::domain::quoted(other),
                    UPDATABLE.join(", ")
                ),
            ),
        }
    }
    bad.into_result()?;
    Ok((invite.id, invite.etag, patch))
}

/// A `google.protobuf.Duration` as a TTL; None when unset.
pub fn ttl(ttl: Option<prost_types::Duration>) -> Result<Option<chrono::Duration>, InviteError> {
    ttl.map(|d| {
        let valid = (0..1_000_000_000).contains(&d.nanos) && d.seconds >= 0;
        valid
            // Cut to microseconds, as timestamps are: now + ttl is stored.
            .then(|| chrono::Duration::new(d.seconds, (d.nanos - d.nanos % 1000) as u32))
            .flatten()
            .ok_or_else(|| InviteError::invalid("ttl", "is not a valid positive duration"))
    })
    .transpose()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_times_and_ttls_are_cut_to_microseconds() {
        let at = prost_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: 123_456_789,
        };
        assert_eq!(
            client_time(&at).unwrap().timestamp_subsec_nanos(),
            123_456_000
        );
        let ttl = ttl(Some(prost_types::Duration {
            seconds: 60,
            nanos: 999,
        }));
        assert_eq!(ttl, Ok(Some(chrono::Duration::seconds(60))));
    }
}
