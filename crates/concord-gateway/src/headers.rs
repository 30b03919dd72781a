//! Header handling on the way through: hop-by-hop removal, forwarding
//! headers, request ids and a route's add/remove rules.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use concord_api::gateway::HeaderRules as HeaderRulesSpec;
use http::header::{self, Entry, HeaderName};
use http::{HeaderMap, HeaderValue};
use rand::Rng;

use crate::error::RouteError;

/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1,
/// plus the de-facto `Proxy-Connection` and the RFC 2616 list every proxy
/// still strips). `TE: trailers` is kept on its own: gRPC needs it end to end.
const HOP_BY_HOP_COUNT: usize = 9;
const HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including every header the `Connection`
/// header names; says whether there were any. `TE` survives when it is
/// exactly `trailers`.
///
/// Runs on every request and response, so it removes only what is there:
/// one pass over the headers finds the hop-by-hop ones (usually none on a
/// request, and `Connection: keep-alive` on a response), and `Connection`
/// is looked at again only when a value is more than `keep-alive` or
/// `close`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) -> bool {
    let mut present = [false; HOP_BY_HOP_COUNT];
    let mut any = false;
    // Whether some `Connection` value may name other headers.
    let mut naming = false;
    for (name, value) in headers.iter() {
        if let Some(i) = hop_by_hop_index(name.as_str()) {
            present[i] = true;
            any = true;
            naming |= name == header::CONNECTION && !is_plain_connection_option(value.as_bytes());
        }
    }
    if !any {
        return false;
    }
    if naming {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter(|v| !is_plain_connection_option(v.as_bytes()))
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|name| {
                !name.eq_ignore_ascii_case("close")
                    && !HOP_BY_HOP
                        .iter()
                        .any(|h| name.eq_ignore_ascii_case(h.as_str()))
            })
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        if name == header::TE {
            let trailers = headers
                .get_all(header::TE)
                .iter()
                .all(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
            headers.remove(name);
            if trailers {
                headers.insert(header::TE, HeaderValue::from_static("trailers"));
            }
        } else {
            headers.remove(name);
        }
    }
    true
}

/// Where `name` is in [`HOP_BY_HOP`]. Most names are ruled out by their
/// length alone, without comparing bytes.
fn hop_by_hop_index(name: &str) -> Option<usize> {
    match name.len() {
        2 | 7 | 10 | 16..=19 => HOP_BY_HOP.iter().position(|h| h.as_str() == name),
        _ => None,
    }
}

/// A `Connection` value that names no header: `keep-alive` or `close`
/// alone, as nearly every HTTP/1.1 message has it.
fn is_plain_connection_option(value: &[u8]) -> bool {
    value.eq_ignore_ascii_case(b"keep-alive") || value.eq_ignore_ascii_case(b"close")
}

/// Whether a request asks to switch protocols (WebSocket and the like):
/// `Connection` names `upgrade` and an `Upgrade` header is present.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// A client connection's address, with the `X-Forwarded-For` entry it adds
/// made once per connection rather than formatted on every request.
#[derive(Clone, Debug)]
pub struct Peer {
    addr: SocketAddr,
    forwarded_for: HeaderValue,
}

impl Peer {
    /// The peer at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        let forwarded_for = HeaderValue::from_str(&addr.ip().to_string())
            .expect("an IP address is a valid header value");
        Peer {
            addr,
            forwarded_for,
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its IP address.
    pub fn ip(&self) -> IpAddr {
        self.addr.ip()
    }
}

/// Appends the client to `X-Forwarded-For` (joining repeated headers into
/// one) and sets `X-Forwarded-Proto` to the scheme the client used with us.
pub fn set_forwarded(headers: &mut HeaderMap, client: &Peer, proto: &'static str) {
    // One lookup: the name is hashed once whether or not the client sent it.
    match headers.entry(&X_FORWARDED_FOR) {
        Entry::Vacant(slot) => {
            slot.insert(client.forwarded_for.clone());
        }
        Entry::Occupied(mut slot) => {
            let prior: Vec<&str> = slot
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            let joined = if prior.is_empty() {
                Ok(client.forwarded_for.clone())
            } else {
                HeaderValue::from_str(&format!("{}, {}", prior.join(", "), client.ip()))
            };
            if let Ok(v) = joined {
                slot.insert(v);
            }
        }
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
}

/// The request's id: its own `X-Request-Id` when it has a usable one
/// (1-200 visible characters), else a new random one (32 hex digits),
/// which then replaces whatever the request carried, so the headers hold
/// exactly the id returned.
///
/// The id is marked sensitive, which over HTTP/2 means "never indexed" in
/// HPACK. A value that differs on every request gains nothing from the
/// connection's header table, and indexing it there is costly: each id
/// evicts entries that do repeat, and `h2` chains entries of one name, so
/// every later id was compared with the ~50 before it (53 `memcmp` calls
/// and about 5,000 instructions per h2c request under callgrind).
pub fn request_id(headers: &mut HeaderMap) -> HeaderValue {
    match headers.entry(&X_REQUEST_ID) {
        Entry::Occupied(mut slot) => {
            let given = slot.get();
            let mut id = if (1..=200).contains(&given.len()) && given.to_str().is_ok() {
                given.clone()
            } else {
                new_request_id()
            };
            id.set_sensitive(true);
            // Also drops any repeated values.
            slot.insert(id.clone());
            id
        }
        Entry::Vacant(slot) => {
            let mut id = new_request_id();
            id.set_sensitive(true);
            slot.insert(id).clone()
        }
    }
}

/// 128 random bits as 32 hex digits.
///
/// The bytes live in one shared allocation: the id goes upstream and back to
/// the client, and a clone of a `Bytes` made from a copied slice would
/// allocate again to become shareable.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let id: u128 = rand::rng().random();
    let mut text = [0u8; 32];
    for (pair, byte) in text.chunks_exact_mut(2).zip(id.to_be_bytes()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    HeaderValue::from_maybe_shared(Bytes::from_owner(text)).expect("hex is a valid header value")
}

/// A route's compiled `request_headers` / `response_headers`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

impl HeaderRules {
    /// Compiles rules; `field` names them in errors.
    pub fn compile(field: &str, spec: Option<&HeaderRulesSpec>) -> Result<Self, RouteError> {
        let Some(spec) = spec else {
            return Ok(HeaderRules::default());
        };
        let name = |n: &str, part: &str| {
            HeaderName::from_bytes(n.as_bytes()).map_err(|_| {
                RouteError::invalid(
                    format!("{field}.{part}"),
                    format!("{n:?} is not a header name"),
                )
            })
        };
        let add = spec
            .add
            .iter()
            .map(|(k, v)| {
                let value = HeaderValue::from_str(v).map_err(|_| {
                    RouteError::invalid(
                        format!("{field}.add"),
                        format!("{v:?} is not a header value"),
                    )
                })?;
                Ok((name(k, "add")?, value))
            })
            .collect::<Result<_, RouteError>>()?;
        let remove = spec
            .remove
            .iter()
            .map(|n| name(n, "remove"))
            .collect::<Result<_, _>>()?;
        Ok(HeaderRules { add, remove })
    }

    /// Removes, then adds (replacing any value already there).
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.add {
            headers.insert(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests;
