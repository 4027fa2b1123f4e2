//! The invite's rules, pure: no tonic, no sea-orm, no lapin.

mod caller;
mod error;
mod event;
mod invite;
pub mod paging;
mod values;

pub use caller::Caller;
pub use error::{FieldViolation, InviteError, Violations};
pub use event::EventKind;
pub use invite::{
    Acceptance, DraftInvitee, Invite, InviteDraft, InviteStatus, Invitee, Policy, Reference,
};
pub use values::{Email, EmailDomain, Id, Identifier, InviteToken, Phone, TokenDigest};
