//! The integration tests: one crate, so one binary to build and link after a
//! change to the library, with the helpers in `common` shared as ordinary
//! modules (the layout of ripgrep's `tests/tests.rs`).
//!
//! Each module below was once a test binary of its own; now they share one
//! process and run in parallel threads. Nothing here may change the process
//! for the others: no `std::env::set_var`, no `set_current_dir`, no global
//! subscriber, no fixed port. A child process gets its environment through
//! its `Command` (see `common::process`), and everything listens on
//! 127.0.0.1 port 0.
//!
//! Run one module with `cargo test --test integration proxy::`.

mod common;

mod balance;
mod blame;
mod demo;
mod discovery;
mod doctor;
mod exercises;
mod faults;
mod forward;
mod golang;
mod health;
mod help;
mod hostile;
mod labs;
mod layering;
mod middleware;
mod naive;
mod parsers_proptest;
mod proxy;
mod realserver;
mod relay;
mod safe_defaults;
mod sheets;
mod stats;
mod tls;
mod tour;
mod trace;
mod transparent;
mod zookeeper;
