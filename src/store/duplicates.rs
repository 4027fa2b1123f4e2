//! The pending invites that stand in a new one's way: what the unique index
//! `invites_one_pending_per_invitee` refuses, found again to act on it.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::{entities::invite, rows};
use crate::{
    domain::{Invite, InviteStatus},
    error::Result,
};

/// The pending invite for the same target and invitee as `invite`, locked.
pub async fn lock_pending_duplicate(
    conn: &impl ConnectionTrait,
    invite: &Invite,
) -> Result<Option<Invite>> {
    let Some(key) = invite.invitee.key() else {
        return Ok(None);
    };
    let row = invite::Entity::find()
        .filter(invite::Column::TargetType.eq(invite.target_type.as_str()))
        .filter(invite::Column::TargetId.eq(invite.target_id.as_str()))
        .filter(invite::Column::InviteeKey.eq(key))
        .filter(invite::Column::Status.eq(InviteStatus::Pending.as_str()))
        .lock_exclusive()
        .one(conn)
        .await?;
    Ok(row.map(rows::to_domain).transpose()?)
}

/// The pending invites to the target of `invites` for any of their
/// invitees, read without a lock: what a dry run looks at where a real
/// create meets the unique index. The invites share one target (a single
/// create, or a batch); a batch names at most 1,000 invitees, within either
/// database's limit of bound parameters.
pub async fn pending_duplicates(
    conn: &impl ConnectionTrait,
    invites: &[&Invite],
) -> Result<Vec<Invite>> {
    let Some(first) = invites.first() else {
        return Ok(Vec::new());
    };
    let keys: Vec<String> = invites.iter().filter_map(|i| i.invitee.key()).collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let found = invite::Entity::find()
        .filter(invite::Column::TargetType.eq(first.target_type.as_str()))
        .filter(invite::Column::TargetId.eq(first.target_id.as_str()))
        .filter(invite::Column::InviteeKey.is_in(keys))
        .filter(invite::Column::Status.eq(InviteStatus::Pending.as_str()))
        .all(conn)
        .await?;
    Ok(rows::all_to_domain(found)?)
}
