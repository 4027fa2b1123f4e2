//! The indexes the retention pass (`--retention`) finds its work with, so
//! that a pass with nothing to remove reads a few index entries instead of
//! every invite and every event.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // Finished invites by their last change, which is when they finished:
        // the pass reads the oldest ones first. Partial, so pending invites
        // (the busy ones) are never in it. Its price: `updated_at` changes
        // with every update, so on PostgreSQL an update that touches no other
        // indexed column (an open link's use that does not use it up, a new
        // role or metadata) can no longer be a HOT update.
        db.execute_unprepared(
            "CREATE INDEX invites_finished_by_update \
             ON invites (updated_at) WHERE status <> 'pending'",
        )
        .await?;
        // Deleted invites by when they were deleted: their history stays
        // until the retention is over. Partial: one entry per deleted
        // invite, however long the histories grow.
        db.execute_unprepared(
            "CREATE INDEX invite_events_deletions_by_time \
             ON invite_events (occurred_at) WHERE event_type = 'deleted'",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS invite_events_deletions_by_time")
            .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS invites_finished_by_update")
            .await?;
        Ok(())
    }
}
