//! ChiefSync's core, shared by the phone apps (through mobile-ffi) and the server: the domain
//! model, one automerge document per patrol and per issue, the issue workflow as a fold over an
//! append-only event list, patrol rules, compact GPS tracks and the device's local store.
//!
//! This crate does no network I/O and knows nothing of HTTP, actix or UniFFI.

pub mod api_types;
pub mod authz;
pub mod client;
pub mod doc;
pub mod geo;
pub mod hub;
pub mod model;
pub mod photo;
pub mod protocol;
pub mod rules;
pub mod stats;
pub mod store;
pub mod track;
pub mod workflow;
