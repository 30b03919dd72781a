//! Answers: the records for one question, built from a [`DnsSource`] without I/O.
//!
//! A name is a CNAME or an address owner, never both (RFC 1034 §3.6.2), and has at
//! most one CNAME (RFC 2181 §10.1): a service with any IP instance answers A/AAAA with
//! addresses only (its hostname instances stay reachable through SRV); a service with
//! hostname instances only answers with one CNAME, picked at random per response.

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{CNAME, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::name::{Parsed, instance_label, parse_query_name};
use super::{DEFAULT_NAMESPACE, DnsConfig, DnsError, DnsSource, DnsTarget};

/// The zone we answer for, validated once at startup.
#[derive(Debug, Clone)]
pub struct Zone {
    domain: Name,
    ttl: u32,
    soa: Record,
}

// SOA timers matter only to secondaries, which this zone never has; the minimum (the
// negative-caching TTL, RFC 2308) is the record TTL so a new service shows up as fast.
const SOA_SERIAL: u32 = 1;
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 86400;

impl Zone {
    /// Checks the domain and builds the SOA that negative answers carry.
    pub fn new(config: &DnsConfig) -> Result<Self, DnsError> {
        let invalid = |reason: String| DnsError::Domain {
            domain: config.domain.clone(),
            reason,
        };
        let mut domain = Name::from_ascii(&config.domain)
            .map_err(|e| invalid(e.to_string()))?
            .to_lowercase();
        domain.set_fqdn(true);
        if domain.is_root() {
            return Err(invalid("the root zone cannot be served".to_owned()));
        }
        let mname = domain
            .prepend_label("ns")
            .map_err(|e| invalid(e.to_string()))?;
        let rname = domain
            .prepend_label("hostmaster")
            .map_err(|e| invalid(e.to_string()))?;
        let ttl = config.ttl_secs;
        let soa = SOA::new(
            mname,
            rname,
            SOA_SERIAL,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            ttl,
        );
        let soa = Record::from_rdata(domain.clone(), ttl, RData::SOA(soa));
        Ok(Self { domain, ttl, soa })
    }

    fn refused(&self) -> Answer {
        Answer {
            rcode: ResponseCode::Refused,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }

    fn nxdomain(&self) -> Answer {
        Answer {
            rcode: ResponseCode::NXDomain,
            authorities: vec![self.soa.clone()],
            ..self.noerror(Vec::new(), Vec::new())
        }
    }

    /// A NOERROR answer; an empty one (NODATA) carries the SOA for negative caching.
    fn noerror(&self, answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
        let authorities = if answers.is_empty() {
            vec![self.soa.clone()]
        } else {
            Vec::new()
        };
        Answer {
            rcode: ResponseCode::NoError,
            authoritative: true,
            answers,
            authorities,
            additionals,
        }
    }

    /// `<id-label>.<service>.<namespace>.instance.<domain>`; `None` if it would exceed
    /// 255 bytes (only possible with a very long configured domain).
    fn instance_name(&self, id: &str, service: &str, namespace: &str) -> Option<Name> {
        let label = instance_label(id);
        Name::from_labels([label.as_str(), service, namespace, "instance"])
            .and_then(|n| n.append_domain(&self.domain))
            .ok()
    }
}

/// The response to one question, before encoding.
#[derive(Debug, Clone)]
pub struct Answer {
    pub rcode: ResponseCode,
    /// Set on everything inside the zone; REFUSED is not an authoritative answer.
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

/// Answers `qname`/`qtype` from `source`; `rng` shuffles instance order per response
/// so clients that take the first record spread their load.
pub fn build_answer(
    source: &dyn DnsSource,
    zone: &Zone,
    qname: &Name,
    qtype: RecordType,
    rng: &mut impl Rng,
) -> Answer {
    let service = |namespace: &str, service: &str, targets: Vec<DnsTarget>, rng: &mut _| {
        service_answer(zone, qname, qtype, namespace, service, targets, rng)
    };
    match parse_query_name(qname, &zone.domain) {
        Parsed::OutOfZone => zone.refused(),
        Parsed::NotFound => zone.nxdomain(),
        Parsed::Apex if qtype == RecordType::SOA => {
            let mut soa = zone.soa.clone();
            soa.name = qname.clone();
            zone.noerror(vec![soa], Vec::new())
        }
        Parsed::Apex | Parsed::EmptyNonTerminal => zone.noerror(Vec::new(), Vec::new()),
        Parsed::Service(q) => match source.lookup(&q.namespace, &q.service, q.tag.as_deref()) {
            Some(targets) => service(&q.namespace, &q.service, targets, rng),
            None => zone.nxdomain(),
        },
        Parsed::ServiceOrTag { first, second } => match service_or_tag(source, &first, &second) {
            Some((namespace, name, targets)) => service(namespace, name, targets, rng),
            None => zone.nxdomain(),
        },
        Parsed::Instance {
            label,
            service,
            namespace,
        } => {
            let target = source
                .lookup(&namespace, &service, None)
                .and_then(|ts| ts.into_iter().find(|t| instance_label(&t.id) == label));
            match target {
                Some(target) => instance_answer(zone, qname, qtype, &target),
                None => zone.nxdomain(),
            }
        }
    }
}

/// `<first>.<second>`: service `first` in namespace `second` when that namespace holds
/// it, else tag `first` of service `second` in the default namespace. Returns the
/// namespace, the service and its instances; `None` when neither reading exists.
fn service_or_tag<'a>(
    source: &dyn DnsSource,
    first: &'a str,
    second: &'a str,
) -> Option<(&'a str, &'a str, Vec<DnsTarget>)> {
    if source.has_namespace(second)
        && let Some(targets) = source.lookup(second, first, None)
    {
        return Some((second, first, targets));
    }
    source
        .lookup(DEFAULT_NAMESPACE, second, Some(first))
        .map(|targets| (DEFAULT_NAMESPACE, second, targets))
}

/// Where an instance's address points.
enum Address {
    Ip(IpAddr),
    Host(Name),
}

/// `None` for an address that is neither an IP nor a valid name: skipped, not fatal.
fn classify(address: &str) -> Option<Address> {
    let bare = address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(address);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(Address::Ip(ip));
    }
    let mut name = Name::from_ascii(address).ok()?;
    name.set_fqdn(true);
    (!name.is_root()).then_some(Address::Host(name))
}

fn family_matches(qtype: RecordType, ip: &IpAddr) -> bool {
    matches!(
        (qtype, ip),
        (RecordType::A, IpAddr::V4(_)) | (RecordType::AAAA, IpAddr::V6(_))
    )
}

fn service_answer(
    zone: &Zone,
    qname: &Name,
    qtype: RecordType,
    namespace: &str,
    service: &str,
    mut targets: Vec<DnsTarget>,
    rng: &mut impl Rng,
) -> Answer {
    targets.shuffle(rng);
    let resolved: Vec<(&DnsTarget, Address)> = targets
        .iter()
        .filter_map(|t| classify(&t.address).map(|a| (t, a)))
        .collect();
    match qtype {
        RecordType::SRV => {
            let (answers, additionals) = srv_records(zone, qname, namespace, service, &resolved);
            zone.noerror(answers, additionals)
        }
        RecordType::A | RecordType::AAAA | RecordType::CNAME => {
            let has_ip = resolved.iter().any(|(_, a)| matches!(a, Address::Ip(_)));
            let answers =
                if has_ip {
                    resolved
                        .iter()
                        .filter_map(|(_, a)| match a {
                            Address::Ip(ip) if family_matches(qtype, ip) => Some(
                                Record::from_rdata(qname.clone(), zone.ttl, RData::from(*ip)),
                            ),
                            _ => None,
                        })
                        .collect()
                } else {
                    let hosts: Vec<&Name> = resolved
                        .iter()
                        .filter_map(|(_, a)| match a {
                            Address::Host(host) => Some(host),
                            Address::Ip(_) => None,
                        })
                        .collect();
                    hosts
                        .choose(rng)
                        .map(|host| cname(zone, qname, host))
                        .into_iter()
                        .collect()
                };
            zone.noerror(answers, Vec::new())
        }
        _ => zone.noerror(Vec::new(), Vec::new()),
    }
}

/// SRV records, with the address of each IP instance's target in `additionals`.
fn srv_records(
    zone: &Zone,
    qname: &Name,
    namespace: &str,
    service: &str,
    resolved: &[(&DnsTarget, Address)],
) -> (Vec<Record>, Vec<Record>) {
    let mut answers = Vec::with_capacity(resolved.len());
    let mut additionals = Vec::new();
    for (target, address) in resolved {
        let name = match address {
            Address::Host(host) => host.clone(),
            Address::Ip(ip) => {
                let Some(name) = zone.instance_name(&target.id, service, namespace) else {
                    continue;
                };
                additionals.push(Record::from_rdata(name.clone(), zone.ttl, RData::from(*ip)));
                name
            }
        };
        let weight = u16::try_from(target.weight).unwrap_or(u16::MAX).max(1);
        let srv = SRV::new(1, weight, target.port, name);
        answers.push(Record::from_rdata(qname.clone(), zone.ttl, RData::SRV(srv)));
    }
    (answers, additionals)
}

/// A/AAAA/CNAME for one instance name (the SRV target of an IP instance).
fn instance_answer(zone: &Zone, qname: &Name, qtype: RecordType, target: &DnsTarget) -> Answer {
    let answers = match (classify(&target.address), qtype) {
        (Some(Address::Ip(ip)), _) if family_matches(qtype, &ip) => {
            vec![Record::from_rdata(qname.clone(), zone.ttl, RData::from(ip))]
        }
        (Some(Address::Host(host)), RecordType::A | RecordType::AAAA | RecordType::CNAME) => {
            vec![cname(zone, qname, &host)]
        }
        _ => Vec::new(),
    };
    zone.noerror(answers, Vec::new())
}

fn cname(zone: &Zone, qname: &Name, host: &Name) -> Record {
    Record::from_rdata(qname.clone(), zone.ttl, RData::CNAME(CNAME(host.clone())))
}

#[cfg(test)]
mod tests;
