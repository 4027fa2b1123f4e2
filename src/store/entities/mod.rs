//! sea-orm entities: plain mirrors of the tables the migrations create.

pub mod idempotency_key;
pub mod invite;
pub mod invite_event;
pub mod passcode_failure;
pub mod redemption;
