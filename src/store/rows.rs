//! Rows ↔ domain invites. A stored row that breaks a rule the domain enforces
//! is a corrupt row: an internal error, never a silently wrong answer.

use anyhow::{Context as _, anyhow};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, Iterable};

use super::entities::invite;
use crate::domain::{
    Email, EmailDomain, Id, Identifier, Invite, InviteStatus, Invitee, PasscodeHash, Phone,
    TokenDigest,
};

/// Every row of a query as a domain invite; one corrupt row fails them all.
pub(super) fn all_to_domain(rows: Vec<invite::Model>) -> anyhow::Result<Vec<Invite>> {
    rows.into_iter().map(to_domain).collect()
}

pub(super) fn to_domain(row: invite::Model) -> anyhow::Result<Invite> {
    let id = row.id;
    let corrupt = |what: &str, why: String| anyhow!("invite {id}: stored {what} is invalid: {why}");
    let parse_id = |what: &str, raw: &str| Id::parse(raw).map_err(|why| corrupt(what, why));
    let optional_id =
        |what: &str, raw: Option<String>| raw.map(|raw| parse_id(what, &raw)).transpose();
    let invitee = match (row.invitee_email, row.invitee_phone, row.invitee_user_id) {
        (Some(email), None, None) => {
            Invitee::Email(Email::parse(&email).map_err(|w| corrupt("email", w))?)
        }
        (None, Some(phone), None) => {
            Invitee::Phone(Phone::parse(&phone).map_err(|w| corrupt("phone", w))?)
        }
        (None, None, Some(user)) => Invitee::User(parse_id("invitee_user_id", &user)?),
        (None, None, None) => {
            let domains: Vec<String> = serde_json::from_value(row.allowed_email_domains)
                .with_context(|| format!("invite {id}: stored allowed_email_domains"))?;
            let allowed_domains = domains
                .iter()
                .map(|d| EmailDomain::parse(d).map_err(|w| corrupt("domain", w)))
                .collect::<Result<_, _>>()?;
            Invitee::OpenLink { allowed_domains }
        }
        _ => return Err(corrupt("invitee", "more than one invitee is set".into())),
    };
    Ok(Invite {
        id,
        target_type: Identifier::parse(&row.target_type).map_err(|w| corrupt("target_type", w))?,
        target_id: parse_id("target_id", &row.target_id)?,
        inviter_id: parse_id("inviter_id", &row.inviter_id)?,
        invitee,
        role: Identifier::parse(&row.role).map_err(|w| corrupt("role", w))?,
        status: InviteStatus::parse(&row.status)
            .ok_or_else(|| corrupt("status", row.status.clone()))?,
        starts_at: row.starts_at,
        expires_at: row.expires_at,
        max_uses: u32::try_from(row.max_uses).map_err(|e| corrupt("max_uses", e.to_string()))?,
        use_count: u32::try_from(row.use_count).map_err(|e| corrupt("use_count", e.to_string()))?,
        metadata: row.metadata,
        passcode_hash: row.passcode_hash.map(PasscodeHash::from_stored),
        accepted_by: optional_id("accepted_by", row.accepted_by)?,
        accepted_at: row.accepted_at,
        rejected_at: row.rejected_at,
        revoked_by: optional_id("revoked_by", row.revoked_by)?,
        revoked_at: row.revoked_at,
        revoke_reason: row.revoke_reason,
        created_at: row.created_at,
        updated_at: row.updated_at,
        version: row.version,
        last_sequence: row.last_sequence,
    })
}

/// Every column of a row, for an insert.
pub(super) fn to_new_row(invite: &Invite, token: &TokenDigest) -> invite::ActiveModel {
    let (email, phone, user, domains) = match &invite.invitee {
        Invitee::Email(email) => (Some(email.as_str().to_owned()), None, None, vec![]),
        Invitee::Phone(phone) => (None, Some(phone.as_str().to_owned()), None, vec![]),
        Invitee::User(id) => (None, None, Some(id.to_string()), vec![]),
        Invitee::OpenLink { allowed_domains } => (
            None,
            None,
            None,
            allowed_domains
                .iter()
                .map(|d| d.as_str().to_owned())
                .collect(),
        ),
    };
    let mut row = to_changed_row(invite);
    row.target_type = Set(invite.target_type.as_str().to_owned());
    row.target_id = Set(invite.target_id.to_string());
    row.inviter_id = Set(invite.inviter_id.to_string());
    row.invitee_email = Set(email);
    row.invitee_phone = Set(phone);
    row.invitee_user_id = Set(user);
    row.invitee_key = Set(invite.invitee.key());
    row.allowed_email_domains = Set(serde_json::Value::from(domains));
    row.passcode_hash = Set(invite.passcode_hash.as_ref().map(|h| h.as_str().to_owned()));
    row.passcode_failures = Set(0);
    row.token_hash = Set(token.as_str().to_owned());
    row.created_at = Set(invite.created_at);
    row
}

/// The columns a state change may touch, for an update.
pub(super) fn to_changed_row(invite: &Invite) -> invite::ActiveModel {
    invite::ActiveModel {
        id: Set(invite.id),
        role: Set(invite.role.as_str().to_owned()),
        status: Set(invite.status.as_str().to_owned()),
        starts_at: Set(invite.starts_at),
        expires_at: Set(invite.expires_at),
        max_uses: Set(invite.max_uses as i32),
        use_count: Set(invite.use_count as i32),
        metadata: Set(invite.metadata.clone()),
        accepted_by: Set(invite.accepted_by.as_ref().map(ToString::to_string)),
        accepted_at: Set(invite.accepted_at),
        rejected_at: Set(invite.rejected_at),
        revoked_by: Set(invite.revoked_by.as_ref().map(ToString::to_string)),
        revoked_at: Set(invite.revoked_at),
        revoke_reason: Set(invite.revoke_reason.clone()),
        updated_at: Set(invite.updated_at),
        version: Set(invite.version),
        last_sequence: Set(invite.last_sequence),
        ..Default::default()
    }
}

/// The columns `to_changed_row` sets, but the id: what an update writes.
pub(super) fn changed_columns(invite: &Invite) -> Vec<invite::Column> {
    let row = to_changed_row(invite);
    invite::Column::iter()
        .filter(|&column| !matches!(column, invite::Column::Id) && row.get(column).is_set())
        .collect()
}
