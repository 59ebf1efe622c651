//! The ChiefSync server library: accounts and JWT auth, device reference data, administration,
//! operations endpoints and the Tianqiao demo, on sled behind the [`storage::Store`] trait.
//!
//! The `chiefsync` binary (`main.rs`) only wires these together:
//! [`AppState::open`] → optionally [`demo::seed`] → [`http_server`], and [`configure`] mounts the
//! routes on any actix `App`. Domain types and rules come from `sync-core`; nothing here
//! re-implements them.

pub mod accounts;
pub mod admin;
pub mod api;
pub mod auth;
pub mod backup;
pub mod blobs;
pub mod board;
pub mod config;
pub mod demo;
pub mod derived;
pub mod desk;
pub mod error;
pub mod integrity;
pub mod jobs;
pub mod metrics;
pub mod migrate;
pub mod photos;
pub mod public;
pub mod reference;
mod serve;
pub mod settings;
pub mod shed;
pub mod state;
pub mod stats;
pub mod storage;
pub mod tiles;
pub mod web;

pub use api::{configure, openapi};
pub use error::ApiError;
pub use serve::{http_server, CLIENT_REQUEST_TIMEOUT};
pub use state::{AppState, Settings};
