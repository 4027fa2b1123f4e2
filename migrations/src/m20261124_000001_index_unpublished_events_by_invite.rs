//! The index the relay reads each invite's oldest unpublished event from.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The relay publishes the head of each invite's backlog (its oldest
/// unpublished event), so that one invite with thousands of queued events does
/// not hold back the others. `MIN(position) ... GROUP BY invite_id` over the
/// unpublished rows reads this index alone. Partial, like
/// `invite_events_unpublished`: it stays as small as the backlog however long
/// the history grows.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX invite_events_unpublished_by_invite \
                 ON invite_events (invite_id, position) WHERE published_at IS NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS invite_events_unpublished_by_invite")
            .await?;
        Ok(())
    }
}
