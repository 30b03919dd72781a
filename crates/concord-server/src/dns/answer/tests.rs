use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::dns::fake::FakeSource;

fn zone() -> Zone {
    Zone::new(&DnsConfig {
        domain: "concord".to_owned(),
        ttl_secs: 7,
    })
    .unwrap()
}

fn source() -> FakeSource {
    let s = FakeSource::default();
    s.add("default", "web", "web-1", "10.0.0.1", &["primary"]);
    s.add("default", "web", "web-2", "10.0.0.2", &[]);
    s.add("default", "web", "Web-2", "fd00::2", &[]);
    s.add_failing("default", "web", "web-3", "10.0.0.3");
    s.add("prod", "api", "api-1", "10.1.0.1", &[]);
    s.add("default", "legacy", "old-1", "db.example.com", &[]);
    s.add("default", "legacy", "old-2", "db2.example.com.", &[]);
    s.add_failing("default", "down", "down-1", "10.9.9.9");
    s
}

fn ask(source: &FakeSource, name: &str, qtype: RecordType) -> Answer {
    ask_seeded(source, name, qtype, 1)
}

fn ask_seeded(source: &FakeSource, name: &str, qtype: RecordType, seed: u64) -> Answer {
    let qname = Name::from_ascii(name).unwrap();
    build_answer(
        source,
        &zone(),
        &qname,
        qtype,
        &mut StdRng::seed_from_u64(seed),
    )
}

fn ipv4s(records: &[Record]) -> BTreeSet<Ipv4Addr> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

fn ipv6s(records: &[Record]) -> BTreeSet<Ipv6Addr> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn srvs(answer: &Answer) -> Vec<&SRV> {
    answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some(srv),
            _ => None,
        })
        .collect()
}

#[test]
fn a_answers_passing_instances_of_the_family_with_ttl_and_aa() {
    let s = source();
    let a = ask(&s, "web.service.concord.", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert!(a.authoritative);
    assert_eq!(ipv4s(&a.answers), [v4("10.0.0.1"), v4("10.0.0.2")].into());
    assert_eq!(a.answers.len(), 2);
    assert!(a.answers.iter().all(|r| r.ttl == 7));
    assert!(a.authorities.is_empty());
    let aaaa = ask(&s, "web.service.concord.", RecordType::AAAA);
    assert_eq!(ipv6s(&aaaa.answers), ["fd00::2".parse().unwrap()].into());
    assert_eq!(aaaa.answers.len(), 1);
}

#[test]
fn answer_order_is_shuffled_per_response() {
    let s = FakeSource::default();
    for i in 0..8 {
        s.add(
            "default",
            "big",
            &format!("b{i}"),
            &format!("10.0.0.{i}"),
            &[],
        );
    }
    let orders: BTreeSet<Vec<Ipv4Addr>> = (0..20)
        .map(|seed| {
            let a = ask_seeded(&s, "big.service.concord.", RecordType::A, seed);
            a.answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect()
        })
        .collect();
    assert!(orders.len() > 1, "always the same order: {orders:?}");
}

#[test]
fn answers_keep_the_query_name_as_asked() {
    let a = ask(&source(), "WEB.Service.Concord.", RecordType::A);
    assert_eq!(a.answers.len(), 2);
    assert!(a.answers.iter().all(|r| {
        r.name
            .eq_case(&Name::from_ascii("WEB.Service.Concord.").unwrap())
    }));
}

#[test]
fn two_labels_mean_namespace_when_it_holds_the_service_else_tag() {
    let s = source();
    let ns = ask(&s, "api.prod.service.concord.", RecordType::A);
    assert_eq!(ipv4s(&ns.answers), [v4("10.1.0.1")].into());
    let tag = ask(&s, "primary.web.service.concord.", RecordType::A);
    assert_eq!(ipv4s(&tag.answers), [v4("10.0.0.1")].into());
    // Namespace `prod` exists but has no `web`: read as tag `web` of service `prod`.
    let neither = ask(&s, "web.prod.service.concord.", RecordType::A);
    assert_eq!(neither.rcode, ResponseCode::NXDomain);
    // A namespace that shadows a tag wins only when it holds the service.
    s.add("web", "primary", "p-1", "10.2.0.1", &[]);
    let shadowed = ask(&s, "primary.web.service.concord.", RecordType::A);
    assert_eq!(ipv4s(&shadowed.answers), [v4("10.2.0.1")].into());
    let full = ask(&s, "primary.web.default.service.concord.", RecordType::A);
    assert_eq!(ipv4s(&full.answers), [v4("10.0.0.1")].into());
}

#[test]
fn srv_points_at_instance_names_with_addresses_in_additional() {
    let s = source();
    s.set_port_weight("default", "web", "web-1", 9000, 0);
    s.set_port_weight("default", "web", "web-2", 9001, 100_000);
    let a = ask(&s, "_web._tcp.service.concord.", RecordType::SRV);
    assert_eq!(a.rcode, ResponseCode::NoError);
    let srv = srvs(&a);
    assert_eq!(srv.len(), 3);
    assert!(srv.iter().all(|s| s.priority == 1));
    let by_port: BTreeMap<u16, &&SRV> = srv.iter().map(|s| (s.port, s)).collect();
    assert_eq!(by_port[&9000].weight, 1);
    assert_eq!(by_port[&9001].weight, u16::MAX);
    assert_eq!(
        by_port[&9000].target,
        Name::from_ascii("web-1.web.default.instance.concord.").unwrap()
    );
    assert_eq!(a.additionals.len(), 3);
    // Every target resolves, through the same builder, to the address in additional.
    for srv in &srv {
        let extra: Vec<&Record> = a
            .additionals
            .iter()
            .filter(|r| r.name == srv.target)
            .collect();
        assert_eq!(extra.len(), 1, "{}", srv.target);
        let qtype = extra[0].record_type();
        let direct = ask(&s, &srv.target.to_ascii(), qtype);
        assert_eq!(direct.answers.len(), 1);
        assert_eq!(direct.answers[0].data, extra[0].data);
    }
}

#[test]
fn ids_differing_by_case_resolve_to_their_own_instance() {
    let s = source();
    let web2 = ask(&s, "web-2.web.default.instance.concord.", RecordType::A);
    assert_eq!(ipv4s(&web2.answers), [v4("10.0.0.2")].into());
    let label = instance_label("Web-2");
    let upper = ask(
        &s,
        &format!("{label}.web.default.instance.concord."),
        RecordType::AAAA,
    );
    assert_eq!(ipv6s(&upper.answers), ["fd00::2".parse().unwrap()].into());
    let other_family = ask(
        &s,
        &format!("{label}.web.default.instance.concord."),
        RecordType::A,
    );
    assert_eq!(other_family.rcode, ResponseCode::NoError);
    assert!(other_family.answers.is_empty());
    let failing = ask(&s, "web-3.web.default.instance.concord.", RecordType::A);
    assert_eq!(failing.rcode, ResponseCode::NXDomain);
}

#[test]
fn hostname_instances_answer_one_cname_and_srv_to_the_host() {
    let s = source();
    let hosts: BTreeSet<Name> = ["db.example.com.", "db2.example.com."]
        .iter()
        .map(|h| Name::from_ascii(h).unwrap())
        .collect();
    for qtype in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
        let a = ask(&s, "legacy.service.concord.", qtype);
        assert_eq!(a.answers.len(), 1, "{qtype}");
        match &a.answers[0].data {
            RData::CNAME(c) => assert!(hosts.contains(&c.0), "{}", c.0),
            other => panic!("{other:?}"),
        }
    }
    let srv = ask(&s, "_legacy._tcp.service.concord.", RecordType::SRV);
    let targets: BTreeSet<Name> = srvs(&srv).iter().map(|s| s.target.clone()).collect();
    assert_eq!(targets, hosts);
    assert!(srv.additionals.is_empty());
}

#[test]
fn a_service_with_ip_instances_answers_addresses_only() {
    let s = source();
    s.add("default", "web", "web-h", "web.example.com", &[]);
    let a = ask(&s, "web.service.concord.", RecordType::A);
    assert!(a.answers.iter().all(|r| r.record_type() == RecordType::A));
    assert_eq!(a.answers.len(), 2);
    let srv = ask(&s, "web.service.concord.", RecordType::SRV);
    assert_eq!(srvs(&srv).len(), 4);
}

#[test]
fn negative_answers() {
    let s = source();
    let nx = ask(&s, "nope.service.concord.", RecordType::A);
    assert_eq!(nx.rcode, ResponseCode::NXDomain);
    assert!(nx.authoritative);
    assert_eq!(nx.authorities.len(), 1);
    assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(nx.authorities[0].ttl, 7);

    let empty = ask(&s, "down.service.concord.", RecordType::A);
    assert_eq!(empty.rcode, ResponseCode::NoError);
    assert!(empty.answers.is_empty());
    assert_eq!(empty.authorities[0].record_type(), RecordType::SOA);

    let other_type = ask(&s, "web.service.concord.", RecordType::TXT);
    assert_eq!(other_type.rcode, ResponseCode::NoError);
    assert!(other_type.answers.is_empty());

    let refused = ask(&s, "web.service.example.com.", RecordType::A);
    assert_eq!(refused.rcode, ResponseCode::Refused);
    assert!(!refused.authoritative);
    assert!(refused.authorities.is_empty());

    let unknown_tag = ask(&s, "nosuch.web.service.concord.", RecordType::A);
    assert_eq!(unknown_tag.rcode, ResponseCode::NoError);
    assert!(unknown_tag.answers.is_empty());
}

#[test]
fn apex_holds_the_soa() {
    let a = ask(&source(), "concord.", RecordType::SOA);
    assert_eq!(a.answers.len(), 1);
    match &a.answers[0].data {
        RData::SOA(soa) => {
            assert_eq!(soa.minimum, 7);
            assert_eq!(
                soa.mname,
                Name::from_ascii("ns.concord.").unwrap(),
                "{soa:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let ns = ask(&source(), "concord.", RecordType::NS);
    assert_eq!(ns.rcode, ResponseCode::NoError);
    assert!(ns.answers.is_empty());
}

#[test]
fn unusable_addresses_are_skipped() {
    let s = FakeSource::default();
    s.add("default", "odd", "o-1", "", &[]);
    s.add("default", "odd", "o-2", "not a host!", &[]);
    s.add("default", "odd", "o-3", "[::1]", &[]);
    let a = ask(&s, "odd.service.concord.", RecordType::AAAA);
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(ipv6s(&a.answers), [Ipv6Addr::LOCALHOST].into());
    let srv = ask(&s, "odd.service.concord.", RecordType::SRV);
    assert!(srvs(&srv).len() <= 2);
}

#[test]
fn zone_validation() {
    let bad = |domain: &str| {
        Zone::new(&DnsConfig {
            domain: domain.to_owned(),
            ttl_secs: 5,
        })
        .is_err()
    };
    assert!(bad(""));
    assert!(bad("."));
    assert!(bad("a..b"));
    assert!(!bad("Consul.Example.COM"));
    let z = Zone::new(&DnsConfig::default()).unwrap();
    assert_eq!(&z.domain, &Name::from_ascii("concord.").unwrap());
}

/// Any name and type, however odd, gets an answer (no panic).
#[test]
fn arbitrary_names_never_panic() {
    let s = source();
    let z = zone();
    let pieces: [&[u8]; 12] = [
        b"service",
        b"instance",
        b"concord",
        b"web",
        b"_web",
        b"_tcp",
        b"default",
        b"x--zz",
        b"\xff\x00",
        b"a.b",
        b"*",
        b"-",
    ];
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..5_000 {
        let len = rng.random_range(0..7);
        let labels: Vec<&[u8]> = (0..len)
            .map(|_| pieces[rng.random_range(0..pieces.len())])
            .collect();
        let Ok(mut name) = Name::from_labels(labels) else {
            continue;
        };
        if rng.random_bool(0.7) {
            name = name.clone().append_domain(&z.domain).unwrap_or(name);
        }
        let qtype = RecordType::from(rng.random_range(0..=300u16));
        let _ = build_answer(&s, &z, &name, qtype, &mut rng);
    }
}
