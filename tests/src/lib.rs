//! End-to-end tests, the field simulator and the benchmarks of ChiefSync. The library part is
//! what they share: a real server started in this process on 127.0.0.1 (`server`), and a
//! simulated phone that logs in and syncs over HTTP with sync-core's engine (`phone`).

pub mod phone;
pub mod server;
