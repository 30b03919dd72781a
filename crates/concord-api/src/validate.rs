//! Input rules shared by the server (which enforces them) and clients (which may check early).
//!
//! Service names become DNS labels later, so they follow RFC 1123 label rules.

use crate::cluster::AddMemberRequest;
use crate::registry::InstanceSpec;

mod health;
mod route;
mod transactions;

pub use health::{MAX_CHECKS, check_id, check_spec};
pub use route::{route, route_name};
pub use transactions::{MAX_STEPS, branch, resolve, txn_id, txn_request};

/// An HTTP token (header names, methods, cookie names).
pub(crate) fn token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value without control characters (tab allowed).
pub(crate) fn header_value(s: &str) -> bool {
    s.len() <= 4096 && !s.chars().any(|c| c.is_control() && c != '\t')
}

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest lease or instance TTL.
pub const MAX_TTL_SECS: u32 = 86_400;
/// Largest instance weight.
pub const MAX_WEIGHT: u32 = 10_000;
/// Most tags (and most meta pairs) on one instance.
pub const MAX_TAGS: usize = 64;
/// Longest tag, meta key or meta value.
pub const MAX_LABEL_BYTES: usize = 512;
/// Longest instance address.
pub const MAX_ADDRESS_BYTES: usize = 255;

/// A rule an input broke: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub(crate) fn new(field: &str, message: impl Into<String>) -> Self {
        Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// 1-63 characters of `a-z 0-9 -`, starting and ending alphanumeric.
pub fn service_name(name: &str) -> Result<(), Invalid> {
    let ok_len = (1..=63).contains(&name.len());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_ends = name.bytes().next().is_some_and(|b| b != b'-')
        && name.bytes().last().is_some_and(|b| b != b'-');
    if ok_len && ok_chars && ok_ends {
        Ok(())
    } else {
        Err(Invalid::new(
            "service",
            format!(
                "service name {name:?} must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit"
            ),
        ))
    }
}

/// Namespaces follow the service-name rules (they appear in DNS names too).
pub fn namespace(name: &str) -> Result<(), Invalid> {
    service_name(name).map_err(|_| {
        Invalid::new(
            "namespace",
            format!(
                "namespace {name:?} must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit"
            ),
        )
    })
}

/// A config item's address: namespace as for the registry; group and id 1-128
/// characters of `A-Z a-z 0-9 . _ : -`.
pub fn config_key(namespace: &str, group: &str, id: &str) -> Result<(), Invalid> {
    self::namespace(namespace)?;
    for (field, v) in [("group", group), ("id", id)] {
        let ok = (1..=128).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if !ok {
            return Err(Invalid::new(
                field,
                format!(
                    "config {field} {v:?} must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
                ),
            ));
        }
    }
    Ok(())
}

/// 1-128 characters of `A-Z a-z 0-9 . _ : -`.
pub fn instance_id(id: &str) -> Result<(), Invalid> {
    let ok_len = (1..=128).contains(&id.len());
    let ok_chars = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(Invalid::new(
            "id",
            format!(
                "instance id {id:?} must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
            ),
        ))
    }
}

/// 1-1024 bytes.
pub fn key(key: &str) -> Result<(), Invalid> {
    if key.is_empty() {
        return Err(Invalid::new("key", "the key must not be empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Invalid::new(
            "key",
            format!(
                "the key is {} bytes; at most {MAX_KEY_BYTES} are allowed",
                key.len()
            ),
        ));
    }
    Ok(())
}

/// 1-86400 seconds.
pub fn ttl_secs(field: &str, ttl: u32) -> Result<(), Invalid> {
    if (1..=MAX_TTL_SECS).contains(&ttl) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("{field} must be between 1 and {MAX_TTL_SECS} seconds, got {ttl}"),
        ))
    }
}

/// The body of a registration.
pub fn instance_spec(spec: &InstanceSpec) -> Result<(), Invalid> {
    if spec.address.is_empty() || spec.address.len() > MAX_ADDRESS_BYTES {
        return Err(Invalid::new(
            "address",
            format!("address must be 1-{MAX_ADDRESS_BYTES} bytes"),
        ));
    }
    if spec
        .address
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Invalid::new(
            "address",
            "address must not contain whitespace or control characters",
        ));
    }
    if spec.port == 0 {
        return Err(Invalid::new("port", "port must be between 1 and 65535"));
    }
    if spec.weight > MAX_WEIGHT {
        return Err(Invalid::new(
            "weight",
            format!(
                "weight must be between 0 and {MAX_WEIGHT}, got {}",
                spec.weight
            ),
        ));
    }
    if let Some(ttl) = spec.ttl_secs {
        ttl_secs("ttl_secs", ttl)?;
    }
    if spec.tags.len() > MAX_TAGS {
        return Err(Invalid::new(
            "tags",
            format!(
                "at most {MAX_TAGS} tags are allowed, got {}",
                spec.tags.len()
            ),
        ));
    }
    if let Some(t) = spec
        .tags
        .iter()
        .find(|t| t.is_empty() || t.len() > MAX_LABEL_BYTES)
    {
        return Err(Invalid::new(
            "tags",
            format!("tag {t:?} must be 1-{MAX_LABEL_BYTES} bytes"),
        ));
    }
    health::instance_health(spec)?;
    if spec.meta.len() > MAX_TAGS {
        return Err(Invalid::new(
            "meta",
            format!(
                "at most {MAX_TAGS} meta pairs are allowed, got {}",
                spec.meta.len()
            ),
        ));
    }
    if let Some((k, _)) = spec
        .meta
        .iter()
        .find(|(k, v)| k.is_empty() || k.len() > MAX_LABEL_BYTES || v.len() > MAX_LABEL_BYTES)
    {
        return Err(Invalid::new(
            "meta",
            format!(
                "meta key {k:?} must be 1-{MAX_LABEL_BYTES} bytes and its value at most {MAX_LABEL_BYTES}"
            ),
        ));
    }
    Ok(())
}

/// Raft node ids start at 1.
pub fn node_id(field: &str, id: u64) -> Result<(), Invalid> {
    if id == 0 {
        return Err(Invalid::new(
            field,
            format!("{field} must be greater than 0"),
        ));
    }
    Ok(())
}

/// `HOST:PORT` with a non-empty host (name, IPv4, or bracketed IPv6) and a port
/// of 1-65535; no scheme, path or whitespace.
pub fn host_port(field: &str, addr: &str) -> Result<(), Invalid> {
    let bad = |why: &str| {
        Invalid::new(
            field,
            format!("{field} must be HOST:PORT (e.g. 10.0.0.5:7601), got {addr:?}: {why}"),
        )
    };
    if addr.is_empty() || addr.len() > MAX_ADDRESS_BYTES {
        return Err(bad(&format!("must be 1-{MAX_ADDRESS_BYTES} bytes")));
    }
    if addr.contains("://") || addr.contains('/') {
        return Err(bad("no scheme or path"));
    }
    if addr.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("no whitespace"));
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(bad("the port is missing"));
    };
    if host.is_empty() || host == "[]" {
        return Err(bad("the host is missing"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(bad("write IPv6 hosts in brackets, e.g. [::1]:7601"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(bad("the port must be 1-65535")),
    }
}

/// The body of `POST /v1/cluster/members`.
pub fn add_member(req: &AddMemberRequest) -> Result<(), Invalid> {
    node_id("id", req.id)?;
    host_port("peer_addr", &req.peer_addr)?;
    host_port("client_addr", &req.client_addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> InstanceSpec {
        InstanceSpec {
            address: "10.0.0.5".into(),
            port: 8080,
            ..InstanceSpec::default()
        }
    }

    #[test]
    fn service_names() {
        for ok in ["a", "orders", "a-b", "x1", &"a".repeat(63)] {
            assert!(service_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64), "ü"] {
            assert!(service_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instance_ids() {
        for ok in ["o1", "A.b_c:d-e", &"x".repeat(128)] {
            assert!(instance_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "a b", &"x".repeat(129)] {
            assert!(instance_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys() {
        assert!(key("a").is_ok());
        assert!(key(&"k".repeat(1024)).is_ok());
        assert_eq!(key("").unwrap_err().field, "key");
        assert!(key(&"k".repeat(1025)).is_err());
    }

    #[test]
    fn specs() {
        assert!(instance_spec(&spec()).is_ok());
        let field = |f: fn(&mut InstanceSpec)| {
            let mut s = spec();
            f(&mut s);
            instance_spec(&s).unwrap_err().field
        };
        assert_eq!(field(|s| s.address.clear()), "address");
        assert_eq!(field(|s| s.port = 0), "port");
        assert_eq!(field(|s| s.weight = 10_001), "weight");
        assert_eq!(field(|s| s.ttl_secs = Some(0)), "ttl_secs");
        assert_eq!(field(|s| s.ttl_secs = Some(86_401)), "ttl_secs");
        assert_eq!(field(|s| s.tags = vec!["t".into(); 65]), "tags");
        assert_eq!(
            field(|s| s.meta = (0..65).map(|i| (i.to_string(), "v".into())).collect()),
            "meta"
        );
        let mut s = spec();
        s.weight = 0;
        s.ttl_secs = Some(86_400);
        assert!(instance_spec(&s).is_ok());
    }

    #[test]
    fn member_addresses() {
        for ok in [
            "127.0.0.1:7601",
            "node-2.internal:1",
            "[::1]:7601",
            "h:65535",
        ] {
            assert_eq!(host_port("peer_addr", ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "127.0.0.1",
            ":7601",
            "h:0",
            "h:65536",
            "h:port",
            "http://h:1",
            "h:1/x",
            "h :1",
            "::1:7601",
            "[]:1",
        ] {
            let e = host_port("peer_addr", bad).unwrap_err();
            assert_eq!(e.field, "peer_addr", "{bad}");
        }
        let req = AddMemberRequest {
            id: 0,
            peer_addr: "h:1".into(),
            client_addr: "h:2".into(),
            voter: false,
        };
        assert_eq!(add_member(&req).unwrap_err().field, "id");
        let req = AddMemberRequest {
            id: 4,
            client_addr: String::new(),
            ..req
        };
        assert_eq!(add_member(&req).unwrap_err().field, "client_addr");
    }
}
