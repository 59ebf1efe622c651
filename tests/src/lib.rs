//! End-to-end tests, the field simulator and the benchmarks of ChiefSync. The library part is
//! what they share: a real server started in this process on 127.0.0.1 (`server`), and a
//! phone that is mobile-ffi's `PhoneApp`, the apps' own application layer (`phone`), and the
//! network namespaces and emulated field link of the weak-network test (`netns`, `weaklink`), and
//! the server process the crash tests kill (`crash`), and the PostgreSQL cluster and SeaweedFS
//! of a test's own that the two-node crash test runs them on (`postgres`, `weed`).

pub mod crash;
pub mod netns;
pub mod phone;
pub mod postgres;
pub mod server;
pub mod weaklink;
// The test SeaweedFS launcher of the S3 photo store, shared with the server's own tests.
#[path = "../../server/src/blobs/weed.rs"]
pub mod weed;
