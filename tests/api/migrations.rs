//! Data migrations, run on rows written before them.

use crate::helpers::*;
use crate::on_both_databases;
use invite_service::store::entities::invite;
use migration::{Migrator, MigratorTrait as _};
use sea_orm::{ActiveModelTrait as _, Database, EntityTrait as _, Set};

on_both_databases!(email_keys_written_with_unicode_folding_are_refolded_as_ascii);

/// A row as the previous release wrote it: the Kelvin sign folded to `k`.
fn kelvin_invite_of_the_previous_release(id: uuid::Uuid) -> invite::ActiveModel {
    let now = chrono::Utc::now();
    invite::ActiveModel {
        id: Set(id),
        target_type: Set("organization".into()),
        target_id: Set("org-1".into()),
        inviter_id: Set("alice".into()),
        invitee_email: Set(Some("\u{212A}elvin@example.org".into())),
        invitee_phone: Set(None),
        invitee_user_id: Set(None),
        invitee_key: Set(Some("email:kelvin@example.org".into())),
        allowed_email_domains: Set(serde_json::json!([])),
        role: Set("member".into()),
        status: Set("pending".into()),
        starts_at: Set(None),
        expires_at: Set(now + chrono::Duration::days(7)),
        max_uses: Set(1),
        use_count: Set(0),
        passcode_hash: Set(None),
        passcode_failures: Set(0),
        metadata: Set(None),
        token_hash: Set(format!("{:064x}", id.as_u128())),
        accepted_by: Set(None),
        accepted_at: Set(None),
        rejected_at: Set(None),
        revoked_by: Set(None),
        revoked_at: Set(None),
        revoke_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
        last_sequence: Set(0),
    }
}

async fn email_keys_written_with_unicode_folding_are_refolded_as_ascii(db: Db) {
    let url = fresh_database(db).await;
    if let Some(file) = invite_service::store::sqlite_path(&url) {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    }
    let conn = Database::connect(&url).await.unwrap();
    let before_refolding = Migrator::migrations()
        .iter()
        .position(|m| m.name() == "m20261124_000003_fold_invitee_emails_as_ascii")
        .expect("the refolding migration") as u32;
    Migrator::up(&conn, Some(before_refolding)).await.unwrap();
    let id = uuid::Uuid::now_v7();
    kelvin_invite_of_the_previous_release(id)
        .insert(&conn)
        .await
        .unwrap();

    Migrator::up(&conn, None).await.unwrap();

    let row = invite::Entity::find_by_id(id)
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.invitee_key.as_deref(),
        Some("email:\u{212A}elvin@example.org"),
        "the real kelvin@example.org must not see this invite as theirs"
    );
    conn.close().await.ok();
}

/// The schema as PostgreSQL describes it: tables, columns, indexes and the
/// migrations recorded, to compare before and after.
async fn schema_of(conn: &sea_orm::DatabaseConnection) -> Vec<String> {
    use sea_orm::ConnectionTrait as _;
    let mut described = Vec::new();
    for sql in [
        "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable \
         FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1",
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
        "SELECT version FROM seaql_migrations ORDER BY 1",
    ] {
        let rows = conn
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql,
            ))
            .await
            .unwrap();
        described.extend(
            rows.iter()
                .map(|row| row.try_get_by_index::<String>(0).unwrap()),
        );
    }
    described
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_migrations_at_once_both_succeed_and_a_third_changes_nothing() {
    use invite_service::store::{PoolSettings, Store};
    let url = fresh_database(Db::Postgres).await;
    let (first, second) = (
        Store::open(&url, PoolSettings::default()).await.unwrap(),
        Store::open(&url, PoolSettings::default()).await.unwrap(),
    );

    let (a, b) = tokio::join!(first.migrate(), second.migrate());
    a.expect("the first replica migrates");
    b.expect("the second waits for the first, then finds nothing to do");
    let conn = Database::connect(&url).await.unwrap();
    let migrated = schema_of(&conn).await;
    first
        .migrate()
        .await
        .expect("migrating a migrated database");
    let again = schema_of(&conn).await;

    assert!(
        migrated
            .iter()
            .any(|line| line.starts_with("passcode_failures.")),
        "the schema was read: {migrated:?}"
    );
    assert_eq!(migrated, again);
    assert_eq!(
        migrated.iter().filter(|l| l.starts_with("m2026")).count(),
        Migrator::migrations().len()
    );
    conn.close().await.ok();
    first.close().await;
    second.close().await;
}
