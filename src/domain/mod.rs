//! The invite's rules, pure: no tonic, no sea-orm, no lapin.

mod batch;
mod caller;
mod error;
mod event;
#[cfg(test)]
pub(crate) mod fixtures;
mod grant;
mod invite;
pub mod paging;
mod passcode;
mod retention;
mod values;
mod watch;

pub use batch::{BatchDraft, BatchPlan, MAX_EMAILS, Refusal, Refused, plan_batch};
pub use caller::Caller;
pub use error::{FieldViolation, InviteError, Violations, quoted};
pub use event::EventKind;
pub use grant::Grant;
pub use invite::{
    Acceptance, CallerRecord, CreatePolicy, DraftInvitee, Invite, InviteDraft, InviteStatus,
    Invitee, PasscodeProof, Patch, Policy, Reference,
};
pub use passcode::{Passcode, PasscodeHash};
pub use retention::Retention;
pub use values::{Email, EmailDomain, Id, Identifier, InviteToken, Phone, TokenDigest};
pub use watch::{Cursor, RawWatchRequest, WatchQuery};
