use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "invites")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub target_type: String,
    pub target_id: String,
    pub inviter_id: String,
    pub invitee_email: Option<String>,
    pub invitee_phone: Option<String>,
    pub invitee_user_id: Option<String>,
    pub invitee_key: Option<String>,
    pub allowed_email_domains: Json,
    pub role: String,
    pub status: String,
    pub starts_at: Option<DateTimeUtc>,
    pub expires_at: DateTimeUtc,
    pub max_uses: i32,
    pub use_count: i32,
    pub passcode_hash: Option<String>,
    /// The previous release's per-invite count of wrong passcodes: written
    /// as 0 for new invites, never read (see `passcode_failures` table).
    pub passcode_failures: i32,
    pub metadata: Option<Json>,
    pub token_hash: String,
    pub accepted_by: Option<String>,
    pub accepted_at: Option<DateTimeUtc>,
    pub rejected_at: Option<DateTimeUtc>,
    pub revoked_by: Option<String>,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoke_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i64,
    pub last_sequence: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
