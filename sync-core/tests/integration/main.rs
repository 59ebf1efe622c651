//! sync-core's cross-module tests, compiled into one binary: documents built the way a phone
//! builds them, merged the way the server merges them.

mod convergence;
mod documents;
mod dropped;
mod fixtures;
mod leaving;
mod ledger;
mod pages;
mod read_ahead;
mod world;
