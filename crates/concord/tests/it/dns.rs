//! The DNS interface of the real binary, asked by real resolvers: hickory (always)
//! and `dig` (opt-in: `cargo test -p concord --test it -- --ignored dig`).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// A resolver that asks only `addr`, over UDP or TCP, and caches nothing.
fn resolver(addr: SocketAddr, tcp: bool) -> TokioResolver {
    let mut connection = if tcp {
        ConnectionConfig::tcp()
    } else {
        ConnectionConfig::udp()
    };
    connection.port = addr.port();
    let server = NameServerConfig::new(addr.ip(), true, vec![connection]);
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    opts.use_hosts_file = ResolveHosts::Never;
    opts.timeout = Duration::from_secs(5);
    opts.attempts = 3;
    TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![server]),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .expect("resolver")
}

async fn register(s: &Server, path: &str, body: Value) {
    let (st, _, b) = call(Method::PUT, &s.url(path), Some(body)).await;
    assert_eq!(st, 200, "register {path}: {b}");
}

/// A server with DNS and a registry to ask about.
async fn populated() -> (Server, SocketAddr) {
    let s = Server::start_with(&["--dns-addr", "127.0.0.1:0", "--dns-ttl", "7"]).await;
    let dns = s.dns.expect("the banner names the DNS address");
    for (id, addr, tags) in [
        ("w1", "127.0.0.11", json!(["v2"])),
        ("w2", "127.0.0.12", json!(["v1"])),
        ("w6", "fd00::12", json!(["v2"])),
    ] {
        register(
            &s,
            &format!("/v1/services/web/instances/{id}"),
            json!({"address":addr,"port":8080,"tags":tags,"weight":50}),
        )
        .await;
    }
    register(
        &s,
        "/v1/services/web/instances/p1?namespace=prod",
        json!({"address":"127.0.1.1","port":9090}),
    )
    .await;
    register(
        &s,
        "/v1/services/ext/instances/e1",
        json!({"address":"db.example.com","port":5432}),
    )
    .await;
    // A service whose only instance is in maintenance: exists, nothing passes.
    register(
        &s,
        "/v1/services/down/instances/d1",
        json!({"address":"127.0.0.99","port":1}),
    )
    .await;
    let (st, _, b) = call(
        Method::PUT,
        &s.url("/v1/services/down/instances/d1/maintenance"),
        Some(json!({"enabled":true,"reason":"test"})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    (s, dns)
}

fn ips(lookup: &Lookup) -> BTreeSet<IpAddr> {
    lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

fn set(addrs: &[&str]) -> BTreeSet<IpAddr> {
    addrs.iter().map(|a| a.parse().expect("ip")).collect()
}

async fn lookup(r: &TokioResolver, name: &str, t: RecordType) -> Lookup {
    r.lookup(name, t)
        .await
        .unwrap_or_else(|e| panic!("{name} {t}: {e}"))
}

async fn rcode(r: &TokioResolver, name: &str, t: RecordType) -> ResponseCode {
    match r.lookup(name, t).await {
        Ok(found) => panic!("{name} {t}: unexpected answer {:?}", found.answers()),
        Err(NetError::Dns(DnsError::NoRecordsFound(none))) => none.response_code,
        Err(NetError::Dns(DnsError::ResponseCode(code))) => code,
        Err(other) => panic!("{name} {t}: {other:?}"),
    }
}

#[tokio::test]
async fn hickory_resolves_every_form_over_udp_and_tcp() {
    let (s, dns) = populated().await;
    for tcp in [false, true] {
        let r = resolver(dns, tcp);
        let a = lookup(&r, "web.service.concord.", RecordType::A).await;
        assert_eq!(ips(&a), set(&["127.0.0.11", "127.0.0.12"]), "tcp={tcp}");
        let aaaa = lookup(&r, "web.service.concord.", RecordType::AAAA).await;
        assert_eq!(ips(&aaaa), set(&["fd00::12"]));
        let ns = lookup(&r, "web.prod.service.concord.", RecordType::A).await;
        assert_eq!(ips(&ns), set(&["127.0.1.1"]), "namespace form");
        let tag = lookup(&r, "v2.web.service.concord.", RecordType::A).await;
        assert_eq!(ips(&tag), set(&["127.0.0.11"]), "tag form");
        let upper = lookup(&r, "WEB.Service.Concord.", RecordType::A).await;
        assert_eq!(ips(&upper).len(), 2, "case-insensitive");

        let srv = lookup(&r, "_web._tcp.service.concord.", RecordType::SRV).await;
        let mut targets = Vec::new();
        for rec in srv.answers() {
            if let RData::SRV(v) = &rec.data {
                assert_eq!(v.port, 8080);
                assert_eq!(v.weight, 50);
                targets.push(v.target.to_string());
            }
        }
        assert_eq!(targets.len(), 3, "{targets:?}");
        // Every target resolves, to one of the instances.
        let mut resolved = BTreeSet::new();
        for t in &targets {
            for q in [RecordType::A, RecordType::AAAA] {
                if let Ok(found) = r.lookup(t.as_str(), q).await {
                    resolved.extend(ips(&found));
                }
            }
        }
        assert_eq!(resolved, set(&["127.0.0.11", "127.0.0.12", "fd00::12"]));

        let cname = lookup(&r, "ext.service.concord.", RecordType::CNAME).await;
        assert!(
            cname.answers().iter().any(|rec| matches!(&rec.data,
                RData::CNAME(c) if c.0.to_string() == "db.example.com.")),
            "{:?}",
            cname.answers()
        );

        assert_eq!(
            rcode(&r, "nope.service.concord.", RecordType::A).await,
            ResponseCode::NXDomain
        );
        assert_eq!(
            rcode(&r, "down.service.concord.", RecordType::A).await,
            ResponseCode::NoError,
            "exists, nothing passing: empty NOERROR"
        );
        assert_eq!(
            rcode(&r, "web.service.elsewhere.", RecordType::A).await,
            ResponseCode::Refused
        );
    }
    // A status change is visible at once: DNS reads local state.
    let (st, _, _) = call(
        Method::PUT,
        &s.url("/v1/services/web/instances/w2/maintenance"),
        Some(json!({"enabled":true})),
    )
    .await;
    assert_eq!(st, 200);
    let r = resolver(dns, false);
    let a = lookup(&r, "web.service.concord.", RecordType::A).await;
    assert_eq!(ips(&a), set(&["127.0.0.11"]));
    let text = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("concord_dns_queries_total{qtype=\"A\",rcode=\"NXDOMAIN\"}"),
        "DNS metrics"
    );
}

/// Runs `dig` against the server and returns its answer section.
fn dig(dns: SocketAddr, tcp: bool, name: &str, qtype: &str) -> (String, String) {
    let mut cmd = std::process::Command::new("dig");
    cmd.arg(format!("@{}", dns.ip()))
        .args(["-p", &dns.port().to_string()])
        .args([name, qtype, "+tries=3", "+time=5"]);
    if tcp {
        cmd.arg("+tcp");
    }
    let out = cmd
        .output()
        .expect("dig is installed (Debian package dnsutils); .ci/run installs it");
    assert!(out.status.success(), "dig failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").to_owned())
        .unwrap_or_default();
    (status, text)
}

#[tokio::test]
#[ignore = "needs dig (dnsutils); .ci/run installs it and runs the ignored tests"]
async fn dig_resolves_every_form() {
    let (_s, dns) = populated().await;
    for tcp in [false, true] {
        let (status, text) = dig(dns, tcp, "web.service.concord", "A");
        assert_eq!(status, "NOERROR", "{text}");
        assert!(
            text.contains("127.0.0.11") && text.contains("127.0.0.12"),
            "{text}"
        );
        assert!(
            text.lines().any(|l| l.starts_with("web.service.concord.")
                && l.split_whitespace().nth(1) == Some("7")),
            "configured TTL: {text}"
        );
        let (_, text) = dig(dns, tcp, "v1.web.service.concord", "A");
        assert!(
            text.contains("127.0.0.12") && !text.contains("127.0.0.11"),
            "{text}"
        );
        let (_, text) = dig(dns, tcp, "web.prod.service.concord", "A");
        assert!(text.contains("127.0.1.1"), "{text}");
        let (status, text) = dig(dns, tcp, "_web._tcp.service.concord", "SRV");
        assert_eq!(status, "NOERROR", "{text}");
        assert!(text.contains("8080"), "{text}");
        assert!(text.contains(";; ADDITIONAL SECTION:"), "{text}");
        let (status, _) = dig(dns, tcp, "nope.service.concord", "A");
        assert_eq!(status, "NXDOMAIN");
        let (status, text) = dig(dns, tcp, "down.service.concord", "A");
        assert_eq!(status, "NOERROR");
        assert!(text.contains("ANSWER: 0"), "{text}");
    }
}
