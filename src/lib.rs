//! The invite service. The layout follows a request: `grpc` (transport) →
//! `app` (use cases) → `domain` (the rules, pure), `store` (sea-orm) and
//! `outbox` (events in the same transaction) → `outbox::relay` → `broker`.

pub mod app;
pub mod broker;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod outbox;
pub mod pb;
pub mod startup;
pub mod store;
pub mod telemetry;
