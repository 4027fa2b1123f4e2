//! Integration tests: the real server over real gRPC, on a real SQLite file
//! and a real PostgreSQL database, publishing to a real RabbitMQ.

mod helpers;

mod access;
mod concurrency;
mod lifecycle;
mod listing;
mod resilience;
mod serving;
