//! The request id of the call that caused each event, so that one action can
//! be followed from its log line to every consumer (the relay sends it as the
//! AMQP header `x-request-id`). Null for events written before this
//! migration and for the service's own changes (expiry).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Nullable with no default: adding it rewrites no row on either
        // database, so a large history migrates at once.
        manager
            .alter_table(
                Table::alter()
                    .table(InviteEvents::Table)
                    .add_column(string_len_null(InviteEvents::RequestId, 128))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(InviteEvents::Table)
                    .drop_column(InviteEvents::RequestId)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum InviteEvents {
    Table,
    RequestId,
}
