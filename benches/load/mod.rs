//! Loopback servers, clients, measurements and the scenarios behind
//! BENCHMARKS.md.
//!
//! Shared by the criterion bench `benches/overhead.rs`, the harnesses
//! `examples/load.rs` and `examples/memory.rs`, and the smoke test
//! `tests/bench_smoke.rs`, each of which includes this folder with
//! `#[path]`. Every server listens on 127.0.0.1 only, and every scenario is
//! bounded in calls and in time, so it stops by itself.
//!
//! Each binary uses a subset of this module, so unused items are allowed.
#![allow(dead_code)]

pub mod alloc;
pub mod amplification;
pub mod args;
pub mod clients;
pub mod deadline;
pub mod floor;
pub mod memory;
pub mod overhead;
pub mod servers;
pub mod soak;
pub mod stats;
pub mod system;
pub mod throughput;
pub mod timers;
