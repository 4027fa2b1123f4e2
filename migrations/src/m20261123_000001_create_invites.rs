use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Invites::Table)
                    .col(pk_uuid(Invites::Id))
                    .col(string_len(Invites::TargetType, 64))
                    .col(string_len(Invites::TargetId, 128))
                    .col(string_len(Invites::InviterId, 128))
                    .col(string_len_null(Invites::InviteeEmail, 254))
                    .col(string_len_null(Invites::InviteePhone, 16))
                    .col(string_len_null(Invites::InviteeUserId, 128))
                    // "email:<lower-cased address>", "phone:<E.164>" or "user:<id>":
                    // one column that every invitee lookup and the duplicate rule use,
                    // so emails compare case-insensitively without lower() in queries.
                    .col(string_len_null(Invites::InviteeKey, 300))
                    .col(json(Invites::AllowedEmailDomains))
                    .col(string_len(Invites::Role, 64))
                    .col(string_len(Invites::Status, 16))
                    .col(timestamp_with_time_zone_null(Invites::StartsAt))
                    .col(timestamp_with_time_zone(Invites::ExpiresAt))
                    .col(integer(Invites::MaxUses))
                    .col(integer(Invites::UseCount))
                    .col(text_null(Invites::PasscodeHash))
                    .col(integer(Invites::PasscodeFailures))
                    .col(json_null(Invites::Metadata))
                    // SHA-256 of the token, hex: the token itself is never stored.
                    .col(string_len_uniq(Invites::TokenHash, 64))
                    .col(string_len_null(Invites::AcceptedBy, 128))
                    .col(timestamp_with_time_zone_null(Invites::AcceptedAt))
                    .col(timestamp_with_time_zone_null(Invites::RejectedAt))
                    .col(string_len_null(Invites::RevokedBy, 128))
                    .col(timestamp_with_time_zone_null(Invites::RevokedAt))
                    .col(string_len_null(Invites::RevokeReason, 512))
                    .col(timestamp_with_time_zone(Invites::CreatedAt))
                    .col(timestamp_with_time_zone(Invites::UpdatedAt))
                    // Bumped by every change; the etag is derived from it.
                    .col(big_integer(Invites::Version))
                    // How many events this invite has published: the next event's
                    // sequence is this plus one, assigned under the row's lock.
                    .col(big_integer(Invites::LastSequence))
                    .to_owned(),
            )
            .await?;

        // Ids are UUIDv7, so ordering by id is ordering by creation: these serve
        // ListInvites' filters with "newest first" straight from the index.
        for (name, column) in [
            ("invites_by_inviter", Invites::InviterId),
            ("invites_by_invitee", Invites::InviteeKey),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Invites::Table)
                        .col(column)
                        .col(Invites::Id)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("invites_by_target")
                    .table(Invites::Table)
                    .col(Invites::TargetType)
                    .col(Invites::TargetId)
                    .col(Invites::Id)
                    .to_owned(),
            )
            .await?;

        // The duplicate rule ("one pending invite per target and invitee") lives
        // in the database, so two concurrent creates cannot both pass a read.
        // Partial indexes are written by hand: sea-query has no builder for them,
        // and this statement is the same on PostgreSQL and SQLite.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX invites_one_pending_per_invitee \
                 ON invites (target_type, target_id, invitee_key) \
                 WHERE status = 'pending'",
            )
            .await?;

        // One row per user who accepted: the same user accepting again gets the
        // first acceptance back, and a multi-use link counts its users.
        manager
            .create_table(
                Table::create()
                    .table(InviteRedemptions::Table)
                    .col(uuid(InviteRedemptions::InviteId))
                    .col(string_len(InviteRedemptions::UserId, 128))
                    .col(timestamp_with_time_zone(InviteRedemptions::RedeemedAt))
                    .primary_key(
                        Index::create()
                            .col(InviteRedemptions::InviteId)
                            .col(InviteRedemptions::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(InviteRedemptions::Table, InviteRedemptions::InviteId)
                            .to(Invites::Table, Invites::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(InviteRedemptions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Invites::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Invites {
    Table,
    Id,
    TargetType,
    TargetId,
    InviterId,
    InviteeEmail,
    InviteePhone,
    InviteeUserId,
    InviteeKey,
    AllowedEmailDomains,
    Role,
    Status,
    StartsAt,
    ExpiresAt,
    MaxUses,
    UseCount,
    PasscodeHash,
    PasscodeFailures,
    Metadata,
    TokenHash,
    AcceptedBy,
    AcceptedAt,
    RejectedAt,
    RevokedBy,
    RevokedAt,
    RevokeReason,
    CreatedAt,
    UpdatedAt,
    Version,
    LastSequence,
}

#[derive(DeriveIden)]
enum InviteRedemptions {
    Table,
    InviteId,
    UserId,
    RedeemedAt,
}
