use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Idempotency keys of CreateInvite and BatchCreateInvites, and the index the
/// expiry sweep reads.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    // SHA-256 of the RPC, the caller and the request id: the
                    // request id itself is not kept.
                    .col(string_len(IdempotencyKeys::KeyHash, 64).primary_key())
                    // SHA-256 of the request, to refuse the key with another request.
                    .col(string_len(IdempotencyKeys::RequestHash, 64))
                    // The answer to replay: the invites' ids, their tokens sealed
                    // with a key derived from the request id (never plain text),
                    // and the refused addresses of a batch.
                    .col(json(IdempotencyKeys::InviteIds))
                    .col(json(IdempotencyKeys::SealedTokens))
                    .col(json(IdempotencyKeys::Refused))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // The sweep deletes keys once they are past their lifetime.
        manager
            .create_index(
                Index::create()
                    .name("idempotency_keys_by_age")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // The expiry sweep: pending invites by expiry. Partial, so it holds
        // only what may still expire.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX invites_pending_by_expiry ON invites (expires_at) \
                 WHERE status = 'pending'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX invites_pending_by_expiry")
            .await?;
        manager
            .drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    KeyHash,
    RequestHash,
    InviteIds,
    SealedTokens,
    Refused,
    CreatedAt,
}
