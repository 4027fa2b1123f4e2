//! The order `WatchInvites` streams events in, and the target it filters them
//! by.
//!
//! `position` is taken at INSERT, but transactions commit out of order: a
//! reader that keeps "the highest position seen" skips a row whose
//! transaction commits after a higher position was read. `log_position` is
//! assigned after commit instead, by one sequencer at a time, in batches that
//! each commit before the next begins: its order is an order in which rows
//! became visible, so "log_position greater than the cursor" never skips.
//! Null until the sequencer reaches the row.
//!
//! Rows already here are numbered now, by position: they are all committed,
//! so they are one batch, and no watcher starts before the newest of them.
//! That rewrites each row once; on a large history, run `invite-service
//! migrate` before rolling out.
//!
//! `target_type` / `target_id` copy the invite's (which never change), so a
//! watcher of one target reads that target's rows by index, the invite's
//! deletion notwithstanding. Rows written before, or by a replica of an
//! earlier version during a rolling upgrade, have none: a watcher reads
//! those from the payload.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time. Nullable
        // with no default: adding them rewrites nothing.
        for column in [
            ColumnDef::new(InviteEvents::LogPosition)
                .big_integer()
                .null()
                .to_owned(),
            string_len_null(InviteEvents::TargetType, 64),
            string_len_null(InviteEvents::TargetId, 128),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(InviteEvents::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        let db = manager.get_connection();
        db.execute_unprepared("UPDATE invite_events SET log_position = position")
            .await?;
        // Two sequencers could never number one row alike (one leads at a
        // time), but should that fail, a watcher must not see two events at
        // one cursor: the constraint is the truth. It is also the index the
        // watchers read in order and the sequencer takes its maximum from.
        db.execute_unprepared(
            "CREATE UNIQUE INDEX invite_events_log_position ON invite_events (log_position)",
        )
        .await?;
        // The sequencer's query: the rows not numbered yet, by position.
        // Partial, so it stays as small as the rows committed since the last
        // batch however long the history grows.
        db.execute_unprepared(
            "CREATE INDEX invite_events_unsequenced \
             ON invite_events (position) WHERE log_position IS NULL",
        )
        .await?;
        // A watcher of one target: its rows after the cursor, in log order.
        db.execute_unprepared(
            "CREATE INDEX invite_events_by_target \
             ON invite_events (target_type, target_id, log_position)",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for index in [
            "invite_events_by_target",
            "invite_events_unsequenced",
            "invite_events_log_position",
        ] {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {index}"))
                .await?;
        }
        for column in [
            InviteEvents::TargetId,
            InviteEvents::TargetType,
            InviteEvents::LogPosition,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(InviteEvents::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum InviteEvents {
    Table,
    LogPosition,
    TargetType,
    TargetId,
}
