//! Authentication: who is calling, from which device, and whether that device may still call.
//!
//! - `jwt`: short-lived HS256 access tokens and their full validation.
//! - `signing_key`: the HMAC key, given on the command line or generated once into the data dir.
//! - `password`: argon2 hashing with configurable cost.
//! - `refresh`: opaque refresh tokens (only their hash is stored) and actor ids.
//! - `session`: login and refresh, the token pair they grant.
//! - `rate_limit`: failed-login throttling per username.
//! - `caller`: the extractor that turns a request into an authenticated [`Caller`].
//! - `client_ip`: the extractor of the connection's own address ([`ClientIp`]), which rate
//!   limits count.
//!
//! Authorization beyond "is this a valid, active user on a live device" (roles, jurisdictions)
//! is not decided here.

mod caller;
mod client_ip;
pub mod jwt;
pub mod password;
pub mod rate_limit;
pub mod refresh;
pub mod session;
pub mod signing_key;

pub use caller::Caller;
pub use client_ip::ClientIp;
