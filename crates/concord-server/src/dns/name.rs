//! Query names: what a name under the zone asks for, and how instance ids become labels.
//!
//! Forms under `service.<domain>` (Consul's, so existing tooling fits):
//! `<svc>`, `<svc>.<ns>` or `<tag>.<svc>`, `<tag>.<svc>.<ns>`, and RFC 2782
//! `_<svc>._tcp[.<ns>]` / `_<svc>._<tag>[.<ns>]`. Under `instance.<domain>`:
//! `<id-label>.<svc>.<ns>`, the SRV target of one instance.

use hickory_proto::rr::Name;

use super::DEFAULT_NAMESPACE;

/// A service lookup spelled out by a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceQuery {
    pub namespace: String,
    pub service: String,
    pub tag: Option<String>,
}

/// What a query name asks for. Parsing needs no registry access, so the one
/// ambiguous form is kept as is for the answer builder to settle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Outside the zone: REFUSED (we are not a resolver).
    OutOfZone,
    /// The zone apex: holds the SOA.
    Apex,
    /// `service.<domain>` or `instance.<domain>`: names exist below it, none at it.
    EmptyNonTerminal,
    /// A service, possibly filtered by tag.
    Service(ServiceQuery),
    /// `<first>.<second>.service.<domain>`: service `first` in namespace `second`, or
    /// else tag `first` of service `second` in the default namespace.
    ServiceOrTag { first: String, second: String },
    /// `<label>.<service>.<namespace>.instance.<domain>`: one instance (an SRV target).
    Instance {
        label: String,
        service: String,
        namespace: String,
    },
    /// In the zone, but not a name we serve: NXDOMAIN.
    NotFound,
}

/// Reads `name` against the zone `domain`; case-insensitive, total over any input.
pub fn parse_query_name(name: &Name, domain: &Name) -> Parsed {
    if !domain.zone_of(name) {
        return Parsed::OutOfZone;
    }
    // Count with `iter` rather than `num_labels`, which skips a leading `*`.
    let relative = name.iter().count().saturating_sub(domain.iter().count());
    let labels: Option<Vec<String>> = name.iter().take(relative).map(label_text).collect();
    let Some(labels) = labels else {
        return Parsed::NotFound;
    };
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    match labels.as_slice() {
        [] => Parsed::Apex,
        [rest @ .., "service"] => parse_service(rest),
        [rest @ .., "instance"] => parse_instance(rest),
        _ => Parsed::NotFound,
    }
}

/// A label as lowercase text; `None` for non-ASCII bytes, which no name we serve has.
fn label_text(label: &[u8]) -> Option<String> {
    label
        .is_ascii()
        .then(|| String::from_utf8_lossy(label).to_ascii_lowercase())
}

fn parse_service(rest: &[&str]) -> Parsed {
    match *rest {
        [] => Parsed::EmptyNonTerminal,
        [svc, proto] if svc.starts_with('_') && proto.starts_with('_') => {
            rfc2782(svc, proto, DEFAULT_NAMESPACE)
        }
        [svc, proto, ns] if svc.starts_with('_') && proto.starts_with('_') => {
            rfc2782(svc, proto, ns)
        }
        [service] if is_name(service) => service_query(DEFAULT_NAMESPACE, service, None),
        [first, second] if is_name(first) && is_name(second) => Parsed::ServiceOrTag {
            first: first.to_owned(),
            second: second.to_owned(),
        },
        [tag, service] if is_tag(tag) && is_name(service) => {
            service_query(DEFAULT_NAMESPACE, service, Some(tag))
        }
        [tag, service, ns] if is_tag(tag) && is_name(service) && is_name(ns) => {
            service_query(ns, service, Some(tag))
        }
        _ => Parsed::NotFound,
    }
}

/// `_<svc>._<proto-or-tag>[.<ns>]`: `_tcp` means no tag filter (as in Consul).
fn rfc2782(svc: &str, proto: &str, ns: &str) -> Parsed {
    let service = &svc[1..];
    let tag = match &proto[1..] {
        "tcp" => None,
        tag if is_tag(tag) => Some(tag),
        _ => return Parsed::NotFound,
    };
    if is_name(service) && is_name(ns) {
        service_query(ns, service, tag)
    } else {
        Parsed::NotFound
    }
}

fn parse_instance(rest: &[&str]) -> Parsed {
    match *rest {
        [] => Parsed::EmptyNonTerminal,
        [label, service, ns] if !label.is_empty() && is_name(service) && is_name(ns) => {
            Parsed::Instance {
                label: label.to_owned(),
                service: service.to_owned(),
                namespace: ns.to_owned(),
            }
        }
        _ => Parsed::NotFound,
    }
}

fn service_query(namespace: &str, service: &str, tag: Option<&str>) -> Parsed {
    Parsed::Service(ServiceQuery {
        namespace: namespace.to_owned(),
        service: service.to_owned(),
        tag: tag.map(str::to_owned),
    })
}

/// Service and namespace names: 1-63 of `a-z 0-9 -` (the registry's rule).
fn is_name(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Tags: any printable ASCII a label can carry (a raw label may hold a `.` byte).
fn is_tag(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'.')
}

/// Longest id that fits a label in hex form: 3 + 2 * 30 = 63 characters.
const MAX_HEX_ID: usize = 30;

/// The DNS label standing for instance `id` in SRV target names.
///
/// The id itself when it is a lowercase label without `--`; else `x--<hex of the id>`
/// (ids up to 30 bytes, reversible); else `h--<FNV-1a 128 of the id>` (a 128-char id
/// cannot fit a 63-byte label, nor even the 255-byte name, in any reversible form).
/// Plain labels never contain `--`, so the three forms never collide, and ids that
/// differ only by case get different labels because the one with capitals is encoded.
pub fn instance_label(id: &str) -> String {
    let plain = (1..=63).contains(&id.len())
        && !id.contains("--")
        && !id.starts_with('-')
        && !id.ends_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if plain {
        id.to_owned()
    } else if id.len() <= MAX_HEX_ID {
        let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
        format!("x--{hex}")
    } else {
        format!("h--{:032x}", fnv1a_128(id.as_bytes()))
    }
}

/// FNV-1a, 128-bit: stable across builds and nodes (unlike `DefaultHasher`), so every
/// node names an instance the same way.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u128::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests;
