//! The gRPC transport: handlers, request conversion, auth, status mapping.

pub mod auth;
mod requests;
mod service;
pub mod status;

pub use service::InviteApi;
