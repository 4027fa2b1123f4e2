//! The gRPC transport: handlers, request conversion, auth, status mapping.

pub mod auth;
// Named by the generated code (build.rs sets it as the codec path).
pub(crate) mod codec;
mod requests;
mod service;
pub mod status;

pub use service::InviteApi;
