//! ChiefSync's core, shared by the phone apps (through mobile-ffi) and the server: the domain
//! model, one automerge document per patrol and per issue, the issue workflow as a fold over an
//! append-only event list, patrol rules, compact GPS tracks, the phone's sync engine and local
//! store, and the server's side of sync.
//!
//! Three layers, kept apart by `tests/layers.rs` (a forbidden import fails `cargo test`):
//!
//! - **The domain** — [`model`], [`doc`], [`workflow`], [`authz`], [`rules`], [`geo`],
//!   [`track`], [`photo`] (pictures as bytes), [`protocol`], [`limits`], [`stats`],
//!   [`evict`] (what a phone may drop): pure functions and types. No files, network, threads, locks or databases.
//! - **The device side** — [`client`] (the phone's sync engine, and attaching photo files) and
//!   [`store`] (the phone's local database, on sled): build on the domain.
//! - **The hub** — [`hub`] (the server's sync engine, its delivery cache and rate limits, and
//!   the store traits the server implements): builds on the domain, never on the device side.
//!
//! The crate speaks no HTTP and knows nothing of actix or UniFFI: the phone's transport and the
//! server's storage are traits the callers implement.
//!
//! The modules the phone library and the server program against (`client`, `hub`, `protocol`)
//! document every public item: `missing_docs` warns there, and CI's clippy denies warnings.

pub mod api_types;
pub mod authz;
#[warn(missing_docs)]
pub mod client;
pub mod doc;
pub mod evict;
pub mod geo;
#[warn(missing_docs)]
pub mod hub;
pub mod import;
pub mod limits;
pub mod model;
pub mod overview;
pub mod photo;
#[warn(missing_docs)]
pub mod protocol;
pub mod public;
pub mod rules;
pub mod stats;
pub mod store;
pub mod track;
pub mod workflow;
