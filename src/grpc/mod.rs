//! The gRPC transport: handlers, request conversion, auth, status mapping.

pub mod auth;
mod calls;
// Named by the generated code (build.rs sets it as the codec path).
pub(crate) mod codec;
mod dry_run;
mod requests;
mod service;
pub mod status;
mod watch;

pub use calls::{CallBounds, Calls, method_names};
pub use service::InviteApi;
