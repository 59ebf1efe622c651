//! Administration beside the plain record endpoints: the audit of every administrative change,
//! chiefs' posts, one-time setup codes for first sign-in, and reading and writing the roster
//! files an office already keeps. The rules of an import (what a row means, what is refused)
//! are `sync_core::import`'s; this module stores and parses.

pub mod audit;
pub mod files;
pub mod setup;
pub mod shapefile;
pub mod web;

use crate::error::ApiError;
use crate::storage::Store;

/// Where a person's post (职务, e.g. 区委书记) is kept, beside the account.
pub fn post_key(user_id: &str) -> String {
    format!("person.post/{user_id}")
}

/// Every person's post, by user id.
pub fn posts(store: &dyn Store) -> Result<std::collections::HashMap<String, String>, ApiError> {
    Ok(store
        .list_meta("person.post/")?
        .into_iter()
        .map(|(k, v)| {
            (
                k.trim_start_matches("person.post/").to_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect())
}

/// The lock every administrative change holds ([`admin_writes`]).
pub const ADMIN_WRITES: &str = "administrative writes";

/// One administrative change at a time, on every server of the store: an import's plan is
/// checked and applied against the same records, with no other change in between, and a
/// one-time setup code is spent once. Waits while another change holds it.
pub fn admin_writes(store: &dyn Store) -> Result<crate::storage::Hold<'_>, ApiError> {
    Ok(store.hold(ADMIN_WRITES)?)
}
