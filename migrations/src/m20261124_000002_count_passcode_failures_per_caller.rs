//! Wrong passcodes count per caller, not per invite: on an open link, one
//! holder of the token could otherwise lock it for everyone.
//!
//! `invites.passcode_failures`, the per-invite count this replaces, stays:
//! replicas of the previous release read and write it until they are all
//! replaced, so it can only be dropped by a later migration.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per caller who got the passcode wrong since the invite was
        // created, resent or revoked; deleted with the invite.
        manager
            .create_table(
                Table::create()
                    .table(PasscodeFailures::Table)
                    .col(uuid(PasscodeFailures::InviteId))
                    .col(string_len(PasscodeFailures::UserId, 128))
                    .col(integer(PasscodeFailures::Failures))
                    .primary_key(
                        Index::create()
                            .col(PasscodeFailures::InviteId)
                            .col(PasscodeFailures::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PasscodeFailures::Table, PasscodeFailures::InviteId)
                            .to(Invites::Table, Invites::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PasscodeFailures::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Invites {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum PasscodeFailures {
    Table,
    InviteId,
    UserId,
    Failures,
}
