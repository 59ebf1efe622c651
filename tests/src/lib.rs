//! End-to-end tests, the field simulator and the benchmarks of ChiefSync. The library part is
//! what they share: a real server started in this process on 127.0.0.1 (`server`), and a
//! phone that is mobile-ffi's `PhoneApp`, the apps' own application layer (`phone`), and the
//! network namespaces and emulated field link of the weak-network test (`netns`, `weaklink`), and
//! the server process the crash tests kill (`crash`).

pub mod crash;
pub mod netns;
pub mod phone;
pub mod server;
pub mod weaklink;
