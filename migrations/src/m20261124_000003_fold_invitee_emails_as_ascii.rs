//! Email invitee keys fold ASCII case only: Unicode folding made the Kelvin
//! sign (U+212A) an alias of `k`. Keys written before are recomputed from the
//! address as given, so duplicates, "my invites" and filters agree with what
//! the service computes now. ASCII folding only ever tells more addresses
//! apart than Unicode folding did, so no two pending invites can collide.

use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, Value, prelude::Uuid},
};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Rows read per round, so a large table is never held in memory at once.
const PAGE: u64 = 1000;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = db.get_database_backend();
        let mut after: Option<Value> = None;
        loop {
            let page = Query::select()
                .columns([Invites::Id, Invites::InviteeEmail, Invites::InviteeKey])
                .from(Invites::Table)
                .and_where(Expr::col(Invites::InviteeEmail).is_not_null())
                .and_where_option(after.clone().map(|id| Expr::col(Invites::Id).gt(id)))
                .order_by(Invites::Id, Order::Asc)
                .limit(PAGE)
                .to_owned();
            let rows = db.query_all_raw(backend.build(&page)).await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            after = Some(last.try_get_by_index::<Uuid>(0)?.into());
            for row in &rows {
                let id: Uuid = row.try_get_by_index(0)?;
                let email: String = row.try_get_by_index(1)?;
                let key: Option<String> = row.try_get_by_index(2)?;
                let folded = format!("email:{}", email.to_ascii_lowercase());
                if key.as_deref() != Some(folded.as_str()) {
                    let update = Query::update()
                        .table(Invites::Table)
                        .value(Invites::InviteeKey, folded)
                        .and_where(Expr::col(Invites::Id).eq(id))
                        .to_owned();
                    db.execute_raw(backend.build(&update)).await?;
                }
            }
        }
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Unicode-folded keys are what this undid: nothing to restore.
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Invites {
    Table,
    Id,
    InviteeEmail,
    InviteeKey,
}
