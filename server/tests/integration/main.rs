//! Integration tests against a real server: each test starts the service on 127.0.0.1 (port 0)
//! over a temporary sled directory and talks to it through an HTTP client. One binary with
//! modules, so the suite links once.

mod harness;

mod admin;
mod admin_desk;
mod admin_rules;
mod attacks;
mod auth;
mod backup;
mod blobs;
mod cli;
mod dashboard;
mod delivery;
mod demo;
mod device_times;
mod docs;
mod figures_agree;
mod hostile_sync;
mod issues;
mod migrate;
mod nodes;
mod ops;
mod overview;
mod page_size;
mod patrol_evidence;
mod phone;
mod postgres;
mod public;
mod reference;
mod rules;
mod s3_blobs;
mod stats;
mod stats_facts;
mod tiles;
mod tokens;
mod two_nodes;

/// SeaweedFS for the S3 photo store's tests, shared with the library's own.
#[path = "../../src/blobs/weed.rs"]
mod weed;
