//! The one place where errors become gRPC statuses: a code, a message the
//! caller can read, and rich details (`ErrorInfo` with a stable reason,
//! `BadRequest` with every bad field).

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{auth::AuthError, codec::Undecodable};
use crate::{app::WatchEnd, domain::InviteError, error::Error};

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "invites.v1";

fn with_reason(code: Code, message: impl Into<String>, reason: &str) -> Status {
    let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(code, message, details)
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match err {
            Error::Rule(rule) => rule.into(),
            Error::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                with_reason(
                    Code::Unavailable,
                    "the invite store is unavailable; retry later",
                    "DATABASE_UNAVAILABLE",
                )
            }
            Error::Conflict(cause) => {
                tracing::info!(%cause, "transaction lost to a concurrent one");
                with_reason(
                    Code::Aborted,
                    "a concurrent change got in the way; retry the call",
                    "CONCURRENT_CHANGE",
                )
            }
            Error::Overloaded { message, reason } => {
                tracing::warn!(reason, "refused past a bound");
                with_reason(Code::ResourceExhausted, message, reason)
            }
            Error::RateLimited { retry_after } => {
                let mut details =
                    ErrorDetails::with_error_info("RATE_LIMITED", ERROR_DOMAIN, HashMap::new());
                details.set_retry_info(Some(retry_after));
                Status::with_error_details(
                    Code::ResourceExhausted,
                    format!(
                        "too many calls: retry in {} ms",
                        retry_after.as_millis().max(1)
                    ),
                    details,
                )
            }
            Error::Internal(cause) => {
                // The cause chain goes to the log, never to the caller.
                tracing::error!(error = format!("{cause:#}"), "internal error");
                with_reason(Code::Internal, "internal error", "INTERNAL")
            }
        }
    }
}

/// A watch stream's end carries the cursor to resume from, as the
/// `ErrorInfo` metadata `cursor`: the cursor of the last event sent before
/// this status.
impl From<WatchEnd> for Status {
    fn from(end: WatchEnd) -> Self {
        let (status, cursor) = match end {
            WatchEnd::TooSlow { cursor } => (
                with_reason(
                    Code::ResourceExhausted,
                    "the stream was not read for --watch-send-timeout: resume with the cursor \
                     in the ErrorInfo metadata",
                    "WATCHER_TOO_SLOW",
                ),
                cursor,
            ),
            WatchEnd::ShuttingDown { cursor } => (
                with_reason(
                    Code::Unavailable,
                    "the server is shutting down: resume with the cursor in the ErrorInfo \
                     metadata",
                    "SERVER_SHUTTING_DOWN",
                ),
                cursor,
            ),
            WatchEnd::Failed { error, cursor } => (Status::from(error), cursor),
        };
        let mut details = status.get_error_details();
        let reason = details
            .error_info()
            .map(|info| info.reason.clone())
            .unwrap_or_default();
        let metadata = HashMap::from([("cursor".to_owned(), cursor.encode())]);
        details.set_error_info(reason, ERROR_DOMAIN, metadata);
        Status::with_error_details(status.code(), status.message(), details)
    }
}

impl From<InviteError> for Status {
    fn from(err: InviteError) -> Self {
        let code = match &err {
            InviteError::Invalid(violations) => {
                let mut details = ErrorDetails::new();
                details.set_error_info(err.reason(), ERROR_DOMAIN, HashMap::new());
                for violation in violations {
                    details.add_bad_request_violation(&violation.field, &violation.description);
                }
                let summary = violations
                    .iter()
                    .map(|v| format!("{} {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                return Status::with_error_details(Code::InvalidArgument, summary, details);
            }
            InviteError::NotFound => Code::NotFound,
            InviteError::InviteeMismatch
            | InviteError::NotInviter
            | InviteError::NotAdmin
            | InviteError::NotGranted
            | InviteError::WatchNotGranted
            | InviteError::SelfInvite
            | InviteError::PasscodeRequired
            | InviteError::WrongPasscode => Code::PermissionDenied,
            InviteError::PasscodeLocked => Code::ResourceExhausted,
            InviteError::EtagMismatch => Code::Aborted,
            InviteError::NotPending
            | InviteError::Expired
            | InviteError::NotYetValid
            | InviteError::Exhausted
            | InviteError::OpenLinkNotRejectable => Code::FailedPrecondition,
            InviteError::AlreadyExists => Code::AlreadyExists,
        };
        with_reason(code, err.to_string(), err.reason())
    }
}

impl From<AuthError> for Status {
    fn from(err: AuthError) -> Self {
        let code = match err {
            AuthError::KeysUnavailable => Code::Unavailable,
            _ => Code::Unauthenticated,
        };
        with_reason(code, err.to_string(), err.reason())
    }
}

impl From<Undecodable> for Status {
    fn from(err: Undecodable) -> Self {
        // The decoder's words name our message types and fields: logged, not sent.
        tracing::info!(error = %err, "undecodable request");
        with_reason(
            Code::InvalidArgument,
            "the request is not a valid protobuf encoding of this method's request message \
             (check that strings are UTF-8 and that nothing nests 100 levels deep)",
            "MALFORMED_REQUEST",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FieldViolation;

    #[test]
    fn invalid_input_lists_every_field_and_a_reason() {
        let err = InviteError::Invalid(vec![
            FieldViolation::new("invite.target_id", "must not be empty"),
            FieldViolation::new("invite.role", "must be a lower-case identifier"),
        ]);
        let status = Status::from(err);
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["invite.target_id", "invite.role"]);
        assert_eq!(details.error_info().unwrap().reason, "INVALID_ARGUMENT");
    }

    #[test]
    fn rule_refusals_carry_their_reason() {
        for (err, code, reason) in [
            (
                InviteError::Expired,
                Code::FailedPrecondition,
                "INVITE_EXPIRED",
            ),
            (
                InviteError::InviteeMismatch,
                Code::PermissionDenied,
                "INVITEE_MISMATCH",
            ),
            (InviteError::NotFound, Code::NotFound, "INVITE_NOT_FOUND"),
            (
                InviteError::AlreadyExists,
                Code::AlreadyExists,
                "INVITE_ALREADY_EXISTS",
            ),
        ] {
            let status = Status::from(err);
            assert_eq!(status.code(), code);
            assert_eq!(
                status.get_error_details().error_info().unwrap().reason,
                reason
            );
        }
    }

    #[test]
    fn undecodable_requests_are_invalid_argument_without_the_decoders_words() {
        use prost::Message as _;
        let err = crate::pb::Invite::decode(&[0x0a, 0x01, 0xff][..]).unwrap_err();
        let status = Status::from(Undecodable(err));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.get_error_details().error_info().unwrap().reason,
            "MALFORMED_REQUEST"
        );
        assert!(!status.message().contains("Invite."));
    }

    #[test]
    fn a_watch_ends_with_its_reason_and_the_cursor_to_resume_from() {
        use crate::domain::Cursor;
        for (end, code, reason) in [
            (
                WatchEnd::TooSlow {
                    cursor: Cursor::after(7),
                },
                Code::ResourceExhausted,
                "WATCHER_TOO_SLOW",
            ),
            (
                WatchEnd::Failed {
                    error: Error::Unavailable("down".into()),
                    cursor: Cursor::after(7),
                },
                Code::Unavailable,
                "DATABASE_UNAVAILABLE",
            ),
        ] {
            let status = Status::from(end);
            let info = status.get_error_details().error_info().cloned().unwrap();
            assert_eq!(status.code(), code);
            assert_eq!(info.reason, reason);
            assert_eq!(info.metadata["cursor"], Cursor::after(7).encode());
        }
    }

    #[test]
    fn internal_errors_never_show_their_cause() {
        let status = Status::from(Error::Internal(anyhow::anyhow!("secret table xyz broke")));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("xyz"));
    }
}
