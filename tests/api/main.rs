//! Integration tests: the real server over real gRPC, on a real SQLite file
//! and a real PostgreSQL database, publishing to a real RabbitMQ.

mod helpers;

mod access;
mod batch;
mod boundary;
mod bounds;
mod call_log;
mod changes;
mod concurrency;
mod consumer;
mod deploy;
mod dry_run;
mod expiry;
mod faults;
mod fuzz;
mod groups;
mod history;
mod idempotency;
mod lifecycle;
mod links;
mod listing;
mod malformed;
mod migrations;
mod operating;
mod passcodes;
mod pool_health;
mod probes;
mod reflection;
mod relay;
mod replicas;
mod resilience;
mod retention;
mod sequencer;
mod serving;
mod tokens;
mod trust;
mod watch;
mod watch_bounds;
mod watch_races;
