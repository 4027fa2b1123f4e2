use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The transactional outbox and the invites' audit history in one table: a use
/// case writes its event row in the transaction that changes the invite; the
/// relay publishes rows in `position` order and stamps `published_at`; rows are
/// kept afterwards as the history `ListInviteEvents` reads.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(InviteEvents::Table)
                    // Assigned by the database at insert. An invite's events are
                    // written under its row lock, so their positions follow their
                    // sequence: publishing in position order keeps per-invite order.
                    .col(big_pk_auto(InviteEvents::Position))
                    .col(uuid_uniq(InviteEvents::Id))
                    // No foreign key: the history outlives a deleted invite.
                    .col(uuid(InviteEvents::InviteId))
                    .col(big_integer(InviteEvents::Sequence))
                    .col(string_len(InviteEvents::EventType, 16))
                    .col(string_len(InviteEvents::ActorId, 128))
                    .col(timestamp_with_time_zone(InviteEvents::OccurredAt))
                    // The encoded invites.v1.InviteEvent, without the token.
                    .col(blob(InviteEvents::Payload))
                    // Only for events asked to notify, and only until published:
                    // the relay puts it into the message and then erases it.
                    .col(text_null(InviteEvents::Token))
                    .col(timestamp_with_time_zone_null(InviteEvents::PublishedAt))
                    .to_owned(),
            )
            .await?;

        // ListInviteEvents, and the guarantee that an invite's sequence has no
        // duplicates.
        manager
            .create_index(
                Index::create()
                    .name("invite_events_by_invite")
                    .table(InviteEvents::Table)
                    .col(InviteEvents::InviteId)
                    .col(InviteEvents::Sequence)
                    .unique()
                    .to_owned(),
            )
            .await?;

        // The relay's query: the unpublished rows, oldest first. Partial, so it
        // stays as small as the backlog however long the history grows.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX invite_events_unpublished \
                 ON invite_events (position) WHERE published_at IS NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(InviteEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum InviteEvents {
    Table,
    Position,
    Id,
    InviteId,
    Sequence,
    EventType,
    ActorId,
    OccurredAt,
    Payload,
    Token,
    PublishedAt,
}
