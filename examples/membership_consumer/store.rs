//! The consumer's own database: its tables, and one acceptance applied in
//! one transaction. The same SQL runs on SQLite and PostgreSQL.

use anyhow::Context as _;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, Statement,
    TransactionTrait, Value,
};

/// The acceptance a delivery carries: the user is the event's `actor_id`,
/// the target and role are the invite's after the change.
pub struct Acceptance {
    pub message_id: String,
    pub invite_id: String,
    pub sequence: i64,
    pub user_id: String,
    pub target_type: String,
    pub target_id: String,
    pub role: String,
}

/// What applying a message came to.
pub enum Handled {
    /// A first delivery: `added` unless the user already was a member,
    /// `in_order` unless a later event of the invite came first.
    Applied { added: bool, in_order: bool },
    /// Its `message_id` was applied before: a redelivery, or a republished copy.
    Duplicate,
}

/// The consumer's own tables (`CREATE … IF NOT EXISTS`: a real service runs
/// migrations).
const SCHEMA: [&str; 3] = [
    // The member, once per target: the primary key makes "add member"
    // idempotent, whichever invite or delivery brings them.
    "CREATE TABLE IF NOT EXISTS memberships (
        target_type TEXT NOT NULL,
        target_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        role TEXT NOT NULL,
        invite_id TEXT NOT NULL,
        PRIMARY KEY (target_type, target_id, user_id))",
    // Every message applied. Redeliveries come within hours at most: a real
    // service deletes rows older than a week or so.
    "CREATE TABLE IF NOT EXISTS processed_messages (
        message_id TEXT PRIMARY KEY,
        processed_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    // The highest sequence applied per invite. Only acceptances are bound
    // here, and every event type shares the invite's numbering: gaps are
    // normal, and only a lower number is out of order.
    "CREATE TABLE IF NOT EXISTS invite_sequences (
        invite_id TEXT PRIMARY KEY,
        last_sequence BIGINT NOT NULL)",
];

pub async fn open(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url);
    options.sqlx_logging(false);
    let db = Database::connect(options)
        .await
        .context("cannot open the membership database")?;
    for statement in SCHEMA {
        db.execute_unprepared(statement)
            .await
            .context("cannot create the membership tables")?;
    }
    Ok(db)
}

/// The message id, the invite's sequence and the member, in one transaction:
/// either all three are written or none, so an ack sent after the commit (or
/// lost after it) can never leave a member without its message recorded.
pub async fn apply(db: &DatabaseConnection, acceptance: &Acceptance) -> Result<Handled, DbErr> {
    let txn = db.begin().await?;
    let first_time = execute(
        &txn,
        "INSERT INTO processed_messages (message_id) VALUES ($1) ON CONFLICT DO NOTHING",
        [acceptance.message_id.as_str().into()],
    )
    .await?;
    if !first_time {
        txn.rollback().await?;
        return Ok(Handled::Duplicate);
    }
    // Policy for a lower sequence: an acceptance adds one member and removes
    // nobody, so it is applied in any order (a message replayed from the DLQ
    // after its invite moved on still adds its member). A consumer that keeps
    // the invite's state would skip it: the later event carries a newer state.
    let in_order = execute(
        &txn,
        "INSERT INTO invite_sequences (invite_id, last_sequence) VALUES ($1, $2)
         ON CONFLICT (invite_id) DO UPDATE SET last_sequence = excluded.last_sequence
         WHERE invite_sequences.last_sequence < excluded.last_sequence",
        [
            acceptance.invite_id.as_str().into(),
            acceptance.sequence.into(),
        ],
    )
    .await?;
    let added = execute(
        &txn,
        "INSERT INTO memberships (target_type, target_id, user_id, role, invite_id)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        [
            acceptance.target_type.as_str().into(),
            acceptance.target_id.as_str().into(),
            acceptance.user_id.as_str().into(),
            acceptance.role.as_str().into(),
            acceptance.invite_id.as_str().into(),
        ],
    )
    .await?;
    txn.commit().await?;
    Ok(Handled::Applied { added, in_order })
}

/// Whether the statement wrote a row (an `ON CONFLICT` that did nothing did not).
async fn execute<const N: usize>(
    txn: &impl ConnectionTrait,
    sql: &str,
    values: [Value; N],
) -> Result<bool, DbErr> {
    let backend = txn.get_database_backend();
    let statement = Statement::from_sql_and_values(backend, sql, values);
    Ok(txn.execute_raw(statement).await?.rows_affected() == 1)
}
