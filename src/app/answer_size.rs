//! How big an answer is on the wire. gRPC clients refuse a message over
//! 4 MiB unless told otherwise, so no answer is bigger: a batch whose answer
//! would be is refused before it writes, and pages stop early.

use prost::Message as _;

use crate::{
    domain::{BatchPlan, FieldViolation, Invite, InviteError, InviteToken},
    pb,
};

/// The 4 MiB gRPC clients accept by default, less room for what an answer
/// holds beside its list (a page token, a total).
pub const ANSWER_BUDGET: usize = 4 * 1024 * 1024 - 64 * 1024;

/// What a message of `len` bytes adds to a repeated field numbered below 16
/// (a one-byte key): the key, the length, the message.
pub fn entry_len(len: usize) -> usize {
    1 + prost::length_delimiter_len(len) + len
}

/// An invite's share of a ListInvitesResponse.
pub fn invite_len(invite: &Invite) -> usize {
    entry_len(pb::Invite::from(invite).encoded_len())
}

/// An invite and its token's share of a BatchCreateInvitesResponse.
fn created_len(invite: &Invite, token: &str) -> usize {
    let entry = pb::CreatedInvite {
        invite: Some(invite.into()),
        token: token.to_owned(),
    };
    entry_len(entry.encoded_len())
}

/// Refuses a batch whose answer would pass the budget, naming what to shrink.
/// Counted as if every planned invite were created: one found already
/// invited at write time only makes the answer smaller.
pub fn ensure_batch_fits(plan: &BatchPlan) -> Result<(), InviteError> {
    // Tokens all have one length: a fresh one stands for those to come.
    let token = InviteToken::generate().expose().to_owned();
    let created: usize = plan
        .invites
        .iter()
        .map(|(_, invite)| created_len(invite, &token))
        .sum();
    let refused: usize = plan
        .refused
        .iter()
        .map(|refused| {
            let entry = pb::InvalidEmail {
                email: refused.email.clone(),
                reason: refused.reason.as_str().to_owned(),
            };
            entry_len(entry.encoded_len())
        })
        .sum();
    let total = created + refused;
    if total <= ANSWER_BUDGET {
        return Ok(());
    }
    let addresses = plan.invites.len() + plan.refused.len();
    let mut violations = vec![FieldViolation::new(
        "emails",
        format!(
            "would make an answer of {total} bytes, over the {ANSWER_BUDGET} a gRPC client \
             accepts: send at most about {} addresses per call",
            addresses * ANSWER_BUDGET / total
        ),
    )];
    if plan
        .invites
        .iter()
        .any(|(_, invite)| invite.metadata.is_some())
    {
        violations.push(FieldViolation::new(
            "metadata",
            "is repeated in every invite of the answer: smaller metadata lets more \
             addresses fit in one call",
        ));
    }
    Err(InviteError::Invalid(violations))
}

/// Refuses to replay a first answer that has grown past the budget since
/// (its invites' metadata updated): the client could not read it.
pub fn ensure_replay_fits(invites: &[(Invite, InviteToken)]) -> Result<(), InviteError> {
    let total: usize = invites
        .iter()
        .map(|(invite, token)| created_len(invite, token.expose()))
        .sum();
    if total <= ANSWER_BUDGET {
        return Ok(());
    }
    Err(InviteError::invalid(
        "request_id",
        format!(
            "names a first answer that has grown to {total} bytes since (its invites were \
             updated), over the {ANSWER_BUDGET} a gRPC client accepts: read the invites with \
             ListInvites instead"
        ),
    ))
}
