//! Queries on invites and their redemptions.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, SqlErr,
    sea_query::{Expr, LockBehavior, LockType, OnConflict},
};
use uuid::Uuid;

use super::{
    entities::{invite, redemption},
    rows,
};
use crate::{
    domain::{Caller, Id, Invite, InviteError, InviteStatus, TokenDigest, paging::ListQuery},
    error::Result,
};

/// How a use case names the invite it wants.
#[derive(Debug, Clone)]
pub enum Lookup {
    Id(Uuid),
    Token(TokenDigest),
}

/// Reads an invite without locking it.
pub async fn find_invite(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<Invite>> {
    let row = invite::Entity::find_by_id(id).one(conn).await?;
    Ok(row.map(rows::to_domain).transpose()?)
}

/// Inserts a new invite unless a unique index refuses it (a pending invite
/// for the same target and invitee): false then. Unlike a failed insert, this
/// leaves a PostgreSQL transaction usable, so a batch goes on.
pub async fn try_insert_invite(
    conn: &impl ConnectionTrait,
    invite: &Invite,
    token: &TokenDigest,
) -> Result<bool> {
    let inserted = invite::Entity::insert(rows::to_new_row(invite, token))
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}

/// Inserts new invites in one statement; the ids of those a unique index
/// did not refuse (a pending invite for the same target and invitee, in the
/// table or earlier in the same statement) come back.
pub async fn try_insert_invites(
    conn: &impl ConnectionTrait,
    invites: &[(&Invite, &TokenDigest)],
) -> Result<Vec<Uuid>> {
    if invites.is_empty() {
        return Ok(Vec::new());
    }
    let rows = invites
        .iter()
        .map(|(invite, token)| rows::to_new_row(invite, token));
    Ok(invite::Entity::insert_many(rows)
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_with_returning_keys(conn)
        .await?)
}

/// Reads an invite and holds its row lock until the transaction ends, so
/// concurrent changes of one invite run one after another (PostgreSQL:
/// `FOR UPDATE`; SQLite has one writer at a time anyway).
pub async fn lock_invite(conn: &impl ConnectionTrait, lookup: &Lookup) -> Result<Option<Invite>> {
    load_invite(conn, lookup, true).await
}

/// Locks the invites named by id or by token that no other transaction
/// holds (`SKIP LOCKED`: one busy invite must not hold up a whole group;
/// its callers wait for it on their own). Each comes with its stored token
/// digest, to tell which caller named which.
pub async fn lock_invites(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
    tokens: &[&TokenDigest],
) -> Result<Vec<(Invite, TokenDigest)>> {
    let named = Condition::any()
        .add(invite::Column::Id.is_in(ids.iter().copied()))
        .add(invite::Column::TokenHash.is_in(tokens.iter().map(|token| token.as_str())));
    let rows = invite::Entity::find()
        .filter(named)
        .order_by_asc(invite::Column::Id)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let digest = TokenDigest::from_stored(row.token_hash.clone());
            Ok((rows::to_domain(row)?, digest))
        })
        .collect::<anyhow::Result<_>>()?)
}

/// When each of `users` accepted each of `invites`, where they did.
pub async fn redemptions_of(
    conn: &impl ConnectionTrait,
    invites: &[Uuid],
    users: &[String],
) -> Result<HashMap<(Uuid, String), DateTime<Utc>>> {
    let rows = redemption::Entity::find()
        .filter(redemption::Column::InviteId.is_in(invites.iter().copied()))
        .filter(redemption::Column::UserId.is_in(users.iter().map(String::as_str)))
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| ((row.invite_id, row.user_id), row.redeemed_at))
        .collect())
}

/// Records several redemptions in one statement.
pub async fn record_redemptions(
    conn: &impl ConnectionTrait,
    redeemed: &[(Uuid, Id)],
    at: DateTime<Utc>,
) -> Result<()> {
    if redeemed.is_empty() {
        return Ok(());
    }
    let rows = redeemed
        .iter()
        .map(|(invite_id, user)| redemption::ActiveModel {
            invite_id: Set(*invite_id),
            user_id: Set(user.to_string()),
            redeemed_at: Set(at),
        });
    redemption::Entity::insert_many(rows)
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Reads an invite by id or token without locking it.
pub async fn read_invite(conn: &impl ConnectionTrait, lookup: &Lookup) -> Result<Option<Invite>> {
    load_invite(conn, lookup, false).await
}

async fn load_invite(
    conn: &impl ConnectionTrait,
    lookup: &Lookup,
    lock: bool,
) -> Result<Option<Invite>> {
    let mut query = invite::Entity::find();
    if lock {
        query = query.lock_exclusive();
    }
    let row = match lookup {
        Lookup::Id(id) => query.filter(invite::Column::Id.eq(*id)).one(conn).await?,
        Lookup::Token(digest) => query
            .filter(invite::Column::TokenHash.eq(digest.as_str()))
            .one(conn)
            .await?
            // The index found it by equality; compare again in constant time so
            // that no code path compares secrets byte by byte.
            .filter(|row| digest.matches(&TokenDigest::from_stored(row.token_hash.clone()))),
    };
    Ok(row.map(rows::to_domain).transpose()?)
}

/// Writes the columns a state change may touch. Reviving an expired invite
/// can meet a newer pending one for the same invitee: the unique index says so.
pub async fn save_invite(conn: &impl ConnectionTrait, invite: &Invite) -> Result<()> {
    match rows::to_changed_row(invite).update(conn).await {
        Ok(_) => Ok(()),
        Err(err) => match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(msg)) if msg.contains("invitee") => {
                Err(InviteError::AlreadyExists.into())
            }
            _ => Err(err.into()),
        },
    }
}

/// Writes several changed invites in one statement (a group of accepts),
/// the columns `save_invite` writes. An upsert on the id: every row exists
/// and the group holds its lock, so each conflicts and is updated, in one
/// round trip where an UPDATE per invite took one each.
pub async fn save_invites(
    conn: &impl ConnectionTrait,
    invites: &[(&Invite, &TokenDigest)],
) -> Result<()> {
    let Some((first, _)) = invites.first() else {
        return Ok(());
    };
    let rows = invites
        .iter()
        .map(|(invite, token)| rows::to_new_row(invite, token));
    invite::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(invite::Column::Id)
                .update_columns(rows::changed_columns(first))
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Replaces the token: the old one stops working with this commit.
pub async fn replace_token(
    conn: &impl ConnectionTrait,
    id: Uuid,
    token: &TokenDigest,
) -> Result<()> {
    invite::Entity::update_many()
        .col_expr(invite::Column::TokenHash, Expr::value(token.as_str()))
        .filter(invite::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Claims up to `limit` pending invites past their expiry, locked for this
/// transaction. `SKIP LOCKED`: replicas sweeping at once take different rows
/// instead of queueing behind each other (SQLite has one writer anyway).
pub async fn claim_expired(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Invite>> {
    let found = invite::Entity::find()
        .filter(invite::Column::Status.eq(InviteStatus::Pending.as_str()))
        .filter(invite::Column::ExpiresAt.lte(now))
        .order_by_asc(invite::Column::ExpiresAt)
        .limit(limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(conn)
        .await?;
    Ok(rows::all_to_domain(found)?)
}

pub async fn delete_invite(conn: &impl ConnectionTrait, id: Uuid) -> Result<()> {
    invite::Entity::delete_by_id(id).exec(conn).await?;
    Ok(())
}

pub async fn record_redemption(
    conn: &impl ConnectionTrait,
    invite_id: Uuid,
    user: &Id,
    at: DateTime<Utc>,
) -> Result<()> {
    let row = redemption::ActiveModel {
        invite_id: Set(invite_id),
        user_id: Set(user.to_string()),
        redeemed_at: Set(at),
    };
    // The invite's row lock already serialises redemptions; the primary key is
    // the last word should that ever change.
    redemption::Entity::insert(row)
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Up to one more than a page of the invites matching the query, newest
/// first (the extra one tells whether a next page exists), and how many match
/// in all. A non-admin sees only invites they sent or that are addressed
/// to them, whatever the filters say.
pub async fn list_invites(
    conn: &impl ConnectionTrait,
    query: &ListQuery,
    caller: &Caller,
) -> Result<(Vec<Invite>, u64)> {
    let filter = &query.filter;
    let mut condition = Condition::all();
    if let Some(target_type) = &filter.target_type {
        condition = condition.add(invite::Column::TargetType.eq(target_type.as_str()));
    }
    if let Some(target_id) = &filter.target_id {
        condition = condition.add(invite::Column::TargetId.eq(target_id.as_str()));
    }
    if let Some(status) = filter.status {
        condition = condition.add(invite::Column::Status.eq(status.as_str()));
    }
    if let Some(role) = &filter.role {
        condition = condition.add(invite::Column::Role.eq(role.as_str()));
    }
    if let Some(email) = &filter.invitee_email {
        let key = crate::domain::Invitee::Email(email.clone()).key();
        condition = condition.add(invite::Column::InviteeKey.eq(key));
    }
    if let Some(inviter) = &filter.inviter_id {
        condition = condition.add(invite::Column::InviterId.eq(inviter.as_str()));
    }
    if !caller.is_admin {
        condition = condition.add(
            Condition::any()
                .add(invite::Column::InviterId.eq(caller.user_id.as_str()))
                .add(invite::Column::InviteeKey.is_in(caller.invitee_keys())),
        );
    }
    let total = invite::Entity::find()
        .filter(condition.clone())
        .count(conn)
        .await?;
    let mut page = invite::Entity::find().filter(condition);
    if let Some(after) = query.after {
        page = page.filter(invite::Column::Id.lt(after));
    }
    let found = page
        .order_by_desc(invite::Column::Id)
        .limit(query.page_size + 1)
        .all(conn)
        .await?;
    let invites = rows::all_to_domain(found)?;
    Ok((invites, total))
}
