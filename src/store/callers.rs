//! What each caller has done with an invite: their acceptance and their
//! wrong passcodes, read and written under the invite's row lock.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::OnConflict};
use uuid::Uuid;

use super::entities::{passcode_failure, redemption};
use crate::{
    domain::{CallerRecord, Id, Invite},
    error::Result,
};

/// The caller's acceptance of `invite`, and their wrong passcodes, read
/// only for an invite that has a passcode: without one they count for
/// nothing, and an accept saves a round trip.
pub async fn caller_record(
    conn: &impl ConnectionTrait,
    invite: &Invite,
    user: &Id,
) -> Result<CallerRecord> {
    let key = (invite.id, user.to_string());
    let accepted = redemption::Entity::find_by_id(key.clone())
        .one(conn)
        .await?;
    let failures = match invite.passcode_hash {
        Some(_) => passcode_failure::Entity::find_by_id(key).one(conn).await?,
        None => None,
    };
    Ok(CallerRecord {
        accepted_at: accepted.map(|row| row.redeemed_at),
        passcode_failures: failures.map_or(0, |row| row.failures.max(0) as u32),
    })
}

pub async fn save_passcode_failures(
    conn: &impl ConnectionTrait,
    invite_id: Uuid,
    user: &Id,
    failures: u32,
) -> Result<()> {
    let row = passcode_failure::ActiveModel {
        invite_id: Set(invite_id),
        user_id: Set(user.to_string()),
        failures: Set(failures as i32),
    };
    passcode_failure::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                passcode_failure::Column::InviteId,
                passcode_failure::Column::UserId,
            ])
            .update_column(passcode_failure::Column::Failures)
            .to_owned(),
        )
        .exec(conn)
        .await?;
    Ok(())
}

/// A resend is a fresh start: every caller's wrong passcodes are forgotten.
pub async fn forget_passcode_failures(conn: &impl ConnectionTrait, invite_id: Uuid) -> Result<()> {
    passcode_failure::Entity::delete_many()
        .filter(passcode_failure::Column::InviteId.eq(invite_id))
        .exec(conn)
        .await?;
    Ok(())
}
