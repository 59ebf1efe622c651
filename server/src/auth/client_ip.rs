//! The client's address as sign-in throttling and the public channel's rate limits count it:
//! the connection's own peer address. A header naming another (`X-Forwarded-For`) could be sent
//! by anyone, so none is read; behind a reverse proxy every client shares the proxy's address.

use std::fmt;
use std::future::{ready, Ready};
use std::net::IpAddr;

use actix_web::{dev::Payload, FromRequest, HttpRequest};

use crate::error::ApiError;

/// The peer address of the request's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequest for ClientIp {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Every request over TCP has one; only a request built in memory lacks it.
        ready(
            req.peer_addr()
                .map(|a| ClientIp(a.ip()))
                .ok_or_else(|| ApiError::Internal("a request without a peer address".into())),
        )
    }
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
