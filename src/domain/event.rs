/// What happened to an invite: one outbox row and one published message each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Updated,
    Accepted,
    Rejected,
    Revoked,
    Resent,
    Expired,
    Deleted,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        Self::Created,
        Self::Updated,
        Self::Accepted,
        Self::Rejected,
        Self::Revoked,
        Self::Resent,
        Self::Expired,
        Self::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Revoked => "revoked",
            Self::Resent => "resent",
            Self::Expired => "expired",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == stored)
    }

    /// The AMQP routing key on the topic exchange: `invite.<kind>`.
    pub fn routing_key(self) -> String {
        format!("invite.{}", self.as_str())
    }
}
