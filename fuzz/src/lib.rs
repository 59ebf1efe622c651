//! Fuzz targets for every decoder of untrusted bytes in sync-core; see `harness`.

pub mod harness;
