use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "invite_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub position: i64,
    pub id: Uuid,
    pub invite_id: Uuid,
    pub sequence: i64,
    pub event_type: String,
    pub actor_id: String,
    pub occurred_at: DateTimeUtc,
    pub payload: Vec<u8>,
    pub token: Option<String>,
    pub published_at: Option<DateTimeUtc>,
    pub request_id: Option<String>,
    /// The order watchers read in: assigned after commit by the sequencer.
    pub log_position: Option<i64>,
    /// The invite's target; none on rows written before watchers existed.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
