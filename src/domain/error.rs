//! Why the invite rules refuse something. The transport maps each variant to a
//! gRPC code and a stable `ErrorInfo` reason in one place (`grpc::status`).

/// One bad field of a request, named by its path in the request message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// Every bad field of the request, not only the first.
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldViolation>),
    /// Also what a caller who may not see the invite is told.
    #[error("invite not found")]
    NotFound,
    #[error("the caller is not the invitee of this invite")]
    InviteeMismatch,
    #[error("only the inviter (or an admin) may do this")]
    NotInviter,
    #[error("only an admin may create invites on behalf of another user")]
    NotAdmin,
    #[error("the caller's token does not grant inviting to this target with this role")]
    NotGranted,
    #[error(
        "the caller's grants do not cover this target: name a target_type and target_id \
         one of them covers (only admins watch without a target)"
    )]
    WatchNotGranted,
    #[error("only an admin may invite themselves or accept their own invite")]
    SelfInvite,
    #[error("the invite is not pending")]
    NotPending,
    #[error("the invite has expired")]
    Expired,
    #[error("the invite is not valid yet")]
    NotYetValid,
    #[error("the invite has no uses left")]
    Exhausted,
    #[error("an open link cannot be rejected: it is not addressed to anyone")]
    OpenLinkNotRejectable,
    #[error("a pending invite for this invitee and target already exists")]
    AlreadyExists,
    #[error("this invite needs a passcode")]
    PasscodeRequired,
    #[error("wrong passcode")]
    WrongPasscode,
    #[error("too many wrong passcodes: the invite is locked until it is resent or revoked")]
    PasscodeLocked,
    #[error("the invite has changed since the etag was read: get it again and retry")]
    EtagMismatch,
}

impl InviteError {
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldViolation::new(field, description)])
    }

    /// The stable machine-readable reason clients switch on.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "INVALID_ARGUMENT",
            Self::NotFound => "INVITE_NOT_FOUND",
            Self::InviteeMismatch => "INVITEE_MISMATCH",
            Self::NotInviter => "NOT_INVITER",
            Self::NotAdmin => "ADMIN_SCOPE_REQUIRED",
            Self::NotGranted => "INVITE_NOT_GRANTED",
            Self::WatchNotGranted => "WATCH_NOT_GRANTED",
            Self::SelfInvite => "SELF_INVITE",
            Self::NotPending => "INVITE_NOT_PENDING",
            Self::Expired => "INVITE_EXPIRED",
            Self::NotYetValid => "INVITE_NOT_YET_VALID",
            Self::Exhausted => "INVITE_EXHAUSTED",
            Self::OpenLinkNotRejectable => "OPEN_LINK_NOT_REJECTABLE",
            Self::AlreadyExists => "INVITE_ALREADY_EXISTS",
            Self::PasscodeRequired => "PASSCODE_REQUIRED",
            Self::WrongPasscode => "PASSCODE_INVALID",
            Self::PasscodeLocked => "PASSCODE_LOCKED",
            Self::EtagMismatch => "ETAG_MISMATCH",
        }
    }
}

/// Collects field violations so that a request is refused with all of them.
#[derive(Debug, Clone, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// More than this many say nothing the first ones don't, and would make
    /// the error itself too big (a mask of a million bad paths).
    pub const MAX: usize = 50;

    pub fn add(&mut self, field: &str, description: impl Into<String>) {
        if self.0.len() < Self::MAX {
            self.0.push(FieldViolation::new(field, description));
        }
    }

    /// Keeps the parsed value, or records why it was refused.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        parsed.map_err(|why| self.add(field, why)).ok()
    }

    pub fn into_result(self) -> Result<(), InviteError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(InviteError::Invalid(self.0))
        }
    }
}

/// A caller's input, quoted for an error message and cut to a length that
/// keeps the message small whatever was sent.
pub fn quoted(raw: &str) -> String {
    const SHOWN: usize = 64;
    if raw.chars().count() <= SHOWN {
        format!("{raw:?}")
    } else {
        let head: String = raw.chars().take(SHOWN).collect();
        format!("{head:?}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_stay_small_whatever_the_input() {
        let mut bad = Violations::default();
        for _ in 0..10_000 {
            bad.add("update_mask", quoted(&"x".repeat(1_000_000)));
        }
        let Err(InviteError::Invalid(violations)) = bad.into_result() else {
            panic!("violations expected");
        };
        assert_eq!(violations.len(), Violations::MAX);
        assert!(violations[0].description.len() < 100);
        assert_eq!(quoted("short"), "\"short\"");
    }
}
