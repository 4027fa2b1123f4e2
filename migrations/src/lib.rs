//! Schema migrations, run at start-up and by `invite-service migrate`.
//!
//! Append-only: a migration that has shipped is never edited; a change is a new
//! file. Migrations never import the service's entities, so they keep describing
//! the schema as it was when they were written.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_invites;
mod m20261123_000002_create_invite_events;
mod m20261123_000003_create_idempotency_keys;
mod m20261124_000001_index_unpublished_events_by_invite;
mod m20261124_000002_count_passcode_failures_per_caller;
mod m20261124_000003_fold_invitee_emails_as_ascii;
mod m20261125_000001_record_request_ids_with_events;
mod m20261126_000001_index_what_retention_removes;
mod m20261126_000002_sequence_events_for_watchers;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_invites::Migration),
            Box::new(m20261123_000002_create_invite_events::Migration),
            Box::new(m20261123_000003_create_idempotency_keys::Migration),
            Box::new(m20261124_000001_index_unpublished_events_by_invite::Migration),
            Box::new(m20261124_000002_count_passcode_failures_per_caller::Migration),
            Box::new(m20261124_000003_fold_invitee_emails_as_ascii::Migration),
            Box::new(m20261125_000001_record_request_ids_with_events::Migration),
            Box::new(m20261126_000001_index_what_retention_removes::Migration),
            Box::new(m20261126_000002_sequence_events_for_watchers::Migration),
        ]
    }
}
