//! The client's address as sign-in throttling and the public channel's rate limits count it:
//! the connection's own peer address, or, when that peer is a reverse proxy the server was told
//! to trust (`--trusted-proxy`), the address that proxy names last in `X-Forwarded-For`. A
//! header from anyone else could be sent by anyone, so it is never read; without a trusted proxy
//! every client behind a reverse proxy shares the proxy's address.
//!
//! Every limit counts an address by [`ClientIp::counted_as`]: IPv4 as is, IPv6 by its /64
//! network, since one host commonly has a whole /64 to pick addresses from.

use std::fmt;
use std::future::{ready, Ready};
use std::net::{IpAddr, Ipv6Addr};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use crate::error::ApiError;
use crate::state::AppState;

/// The client's address: the request's peer, or the client a trusted proxy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The address the limits count this client under: IPv4 as is (also when mapped into
    /// IPv6), IPv6 by its /64 network.
    pub fn counted_as(self) -> IpAddr {
        counted_as(self.0)
    }
}

/// The address limits count `address` under ([`ClientIp::counted_as`]).
pub fn counted_as(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
    }
}

/// The client a request comes from, given the reverse proxies the server trusts: the peer,
/// unless it is a trusted proxy that names the client in `X-Forwarded-For`; then the last
/// address there that is not itself a trusted proxy (each proxy appends the address it was
/// reached from, so anything before that is the client's own word).
pub fn client_of(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    // A proxy reaching a dual-stack listener over IPv4 shows as an IPv4-mapped IPv6 address.
    let is_trusted = |address: IpAddr| trusted.contains(&address.to_canonical());
    if !is_trusted(peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    for entry in header.rsplit(',') {
        match entry.trim().parse::<IpAddr>() {
            Ok(address) if is_trusted(address) => continue,
            Ok(address) => return address,
            // Not an address: nothing before it can be trusted either.
            Err(_) => return peer,
        }
    }
    peer
}

/// Every `X-Forwarded-For` line of a request, in order, as one list. A proxy may append a line
/// of its own instead of extending the client's, and the client's lines come first: only the
/// whole list, read from the right, names the client. Bytes that are not text spoil only the
/// entry they are in, not the entries a proxy appended after them.
pub fn forwarded_for(headers: &actix_web::http::header::HeaderMap) -> Option<String> {
    let lines: Vec<String> = headers
        .get_all("x-forwarded-for")
        .map(|line| String::from_utf8_lossy(line.as_bytes()).into_owned())
        .collect();
    (!lines.is_empty()).then(|| lines.join(","))
}

impl FromRequest for ClientIp {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Every request over TCP has one; only a request built in memory lacks it.
        let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
            return ready(Err(ApiError::Internal(
                "a request without a peer address".into(),
            )));
        };
        let trusted = req
            .app_data::<web::Data<AppState>>()
            .map(|state| state.trusted_proxies.as_slice())
            .unwrap_or_default();
        let forwarded_for = forwarded_for(req.headers());
        ready(Ok(ClientIp(client_of(
            peer,
            forwarded_for.as_deref(),
            trusted,
        ))))
    }
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_forwarded_for_line_is_read_and_the_proxys_entry_decides() {
        use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
        let proxy = ip("10.0.0.1");
        let name = HeaderName::from_static("x-forwarded-for");
        // The client's forged line first, then the line the proxy appended (HAProxy's way).
        let mut headers = HeaderMap::new();
        headers.append(name.clone(), HeaderValue::from_static("203.0.113.9"));
        headers.append(name.clone(), HeaderValue::from_static("198.51.100.7"));
        assert_eq!(
            client_of(proxy, forwarded_for(&headers).as_deref(), &[proxy]),
            ip("198.51.100.7")
        );
        // Bytes that are not text in the client's part do not hide the proxy's entry.
        let mut headers = HeaderMap::new();
        headers.append(
            name,
            HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.8").unwrap(),
        );
        assert_eq!(
            client_of(proxy, forwarded_for(&headers).as_deref(), &[proxy]),
            ip("198.51.100.8")
        );
        assert_eq!(forwarded_for(&HeaderMap::new()), None);
    }

    #[test]
    fn ipv6_hosts_are_counted_by_their_network() {
        assert_eq!(
            counted_as(ip("2001:db8:1:2:aaaa::1")),
            counted_as(ip("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_ne!(
            counted_as(ip("2001:db8:1:2::1")),
            counted_as(ip("2001:db8:1:3::1"))
        );
        assert_eq!(counted_as(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(counted_as(ip("10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client() {
        let proxy = ip("10.0.0.2");
        let trusted = [proxy, ip("10.0.0.3")];
        let client = ip("2001:db8::7");
        assert_eq!(client_of(client, Some("1.2.3.4"), &trusted), client);
        assert_eq!(client_of(proxy, None, &trusted), proxy);
        assert_eq!(client_of(proxy, Some("2001:db8::7"), &trusted), client);
        // What the client wrote itself comes before the address the proxy appended.
        assert_eq!(
            client_of(proxy, Some("9.9.9.9, 2001:db8::7, 10.0.0.3"), &trusted),
            client
        );
        assert_eq!(client_of(proxy, Some("9.9.9.9, junk"), &trusted), proxy);
        assert_eq!(client_of(proxy, Some(""), &trusted), proxy);
        assert_eq!(client_of(proxy, Some("1.2.3.4"), &[]), proxy);
        assert_eq!(
            client_of(ip("::ffff:10.0.0.2"), Some("2001:db8::7"), &trusted),
            client,
            "the proxy seen on a dual-stack listener"
        );
    }
}
