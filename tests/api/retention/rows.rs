//! What the retention tests read and write in the database directly: rows
//! moved back in time (no test waits for days), and the rows an invite has.

use std::time::Duration;

use invite_service::store::entities::{invite, invite_event, passcode_failure, redemption};
use sea_orm::{
    ColumnTrait, Database, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    sea_query::Expr,
};
use uuid::Uuid;

/// What is left of one invite, table by table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rows {
    pub invites: u64,
    pub events: u64,
    pub redemptions: u64,
    pub passcode_failures: u64,
}

impl Rows {
    pub const NONE: Rows = Rows {
        invites: 0,
        events: 0,
        redemptions: 0,
        passcode_failures: 0,
    };
}

/// A connection of the test's own to the service's database.
pub struct Tables(DatabaseConnection);

impl Tables {
    pub async fn open(database_url: &str) -> Self {
        Self(Database::connect(database_url).await.unwrap())
    }

    /// Moves these invites' last change and all their events `by` into the
    /// past, as if that much time had gone by since.
    pub async fn backdate(&self, ids: &[&str], by: chrono::Duration) {
        let ids: Vec<Uuid> = ids.iter().map(|id| Uuid::parse_str(id).unwrap()).collect();
        let then = chrono::Utc::now() - by;
        invite::Entity::update_many()
            .col_expr(invite::Column::UpdatedAt, Expr::value(then))
            .filter(invite::Column::Id.is_in(ids.clone()))
            .exec(&self.0)
            .await
            .unwrap();
        invite_event::Entity::update_many()
            .col_expr(invite_event::Column::OccurredAt, Expr::value(then))
            .filter(invite_event::Column::InviteId.is_in(ids))
            .exec(&self.0)
            .await
            .unwrap();
    }

    pub async fn rows_of(&self, id: &str) -> Rows {
        let id = Uuid::parse_str(id).unwrap();
        let db = &self.0;
        Rows {
            invites: invite::Entity::find_by_id(id).count(db).await.unwrap(),
            events: invite_event::Entity::find()
                .filter(invite_event::Column::InviteId.eq(id))
                .count(db)
                .await
                .unwrap(),
            redemptions: redemption::Entity::find()
                .filter(redemption::Column::InviteId.eq(id))
                .count(db)
                .await
                .unwrap(),
            passcode_failures: passcode_failure::Entity::find()
                .filter(passcode_failure::Column::InviteId.eq(id))
                .count(db)
                .await
                .unwrap(),
        }
    }

    /// How many of this invite's events wait to be published.
    pub async fn unpublished_of(&self, id: &str) -> u64 {
        invite_event::Entity::find()
            .filter(invite_event::Column::InviteId.eq(Uuid::parse_str(id).unwrap()))
            .filter(invite_event::Column::PublishedAt.is_null())
            .count(&self.0)
            .await
            .unwrap()
    }

    /// Waits up to 10 s until nothing is left of any of these invites.
    pub async fn wait_until_gone(&self, ids: &[&str]) {
        for _ in 0..200 {
            let mut left = Vec::new();
            for id in ids {
                if self.rows_of(id).await != Rows::NONE {
                    left.push(*id);
                }
            }
            if left.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("retention left rows of some of {ids:?} for 10 s");
    }

    pub async fn close(self) {
        self.0.close().await.ok();
    }
}

/// The value of an unlabelled series in a scrape.
pub fn counted(scraped: &str, series: &str) -> u64 {
    crate::helpers::series_value(scraped, series) as u64
}
