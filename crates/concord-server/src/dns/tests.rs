//! End to end: `serve` on loopback, queried by the real hickory resolver and by a raw
//! client (for header flags and exact counts), over UDP and TCP.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as ResolverDnsError, NetError};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::fake::FakeSource;
use super::*;

/// Every wait in these tests ends by this deadline, loaded machine or not.
const DEADLINE: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {DEADLINE:?}"))
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    Udp,
    Tcp,
}

const TRANSPORTS: [Transport; 2] = [Transport::Udp, Transport::Tcp];

struct TestServer {
    udp: SocketAddr,
    tcp: SocketAddr,
    registry: Registry,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), DnsError>>,
}

impl TestServer {
    async fn start(source: Arc<FakeSource>) -> Self {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
        let mut registry = Registry::with_prefix("concord");
        let metrics = Arc::new(DnsMetrics::new(&mut registry));
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve(
            udp,
            tcp,
            source,
            DnsConfig::default(),
            metrics,
            shutdown,
        ));
        Self {
            udp: udp_addr,
            tcp: tcp_addr,
            registry,
            stop,
            task,
        }
    }

    /// A resolver that asks only this server, over one transport, and caches nothing.
    fn resolver(&self, transport: Transport) -> TokioResolver {
        let (addr, mut connection) = match transport {
            Transport::Udp => (self.udp, ConnectionConfig::udp()),
            Transport::Tcp => (self.tcp, ConnectionConfig::tcp()),
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
        .unwrap()
    }

    fn metrics_text(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }

    async fn shutdown(self) {
        self.stop.send(()).unwrap();
        within("serve to return after shutdown", self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

fn fixture() -> Arc<FakeSource> {
    let s = FakeSource::default();
    s.add("default", "web", "web-1", "127.0.0.11", &["primary"]);
    s.add("default", "web", "web-2", "127.0.0.12", &[]);
    s.add("default", "web", "Web-2", "fd00::12", &["primary"]);
    s.add_failing("default", "web", "web-3", "127.0.0.13");
    s.add("prod", "api", "api-1", "127.0.1.1", &[]);
    s.add("prod", "api", "api:2", "fd00::1:2", &[]);
    s.add("default", "alias", "alias-1", "web.service.concord", &[]);
    s.add("default", "ext", "ext-1", "db.example.com", &[]);
    s.add_failing("default", "down", "down-1", "127.0.9.9");
    Arc::new(s)
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

fn ipset(addrs: &[&str]) -> BTreeSet<IpAddr> {
    addrs.iter().map(|a| a.parse().unwrap()).collect()
}

async fn lookup(resolver: &TokioResolver, name: &str, qtype: RecordType) -> Lookup {
    within(name, resolver.lookup(name, qtype))
        .await
        .unwrap_or_else(|e| panic!("{name} {qtype}: {e}"))
}

/// The response code behind a failed lookup.
async fn failed_rcode(resolver: &TokioResolver, name: &str, qtype: RecordType) -> ResponseCode {
    match within(name, resolver.lookup(name, qtype)).await {
        Ok(found) => panic!("{name} {qtype}: unexpected answer {:?}", found.answers()),
        Err(NetError::Dns(ResolverDnsError::NoRecordsFound(none))) => none.response_code,
        Err(NetError::Dns(ResolverDnsError::ResponseCode(code))) => code,
        Err(other) => panic!("{name} {qtype}: {other:?}"),
    }
}

#[tokio::test]
async fn resolver_gets_addresses_for_every_name_form() {
    let server = TestServer::start(fixture()).await;
    for transport in TRANSPORTS {
        let r = server.resolver(transport);
        let web = lookup(&r, "web.service.concord.", RecordType::A).await;
        assert_eq!(
            ips(&web),
            ipset(&["127.0.0.11", "127.0.0.12"]),
            "{transport:?}"
        );
        let ns = lookup(&r, "api.prod.service.concord.", RecordType::A).await;
        assert_eq!(ips(&ns), ipset(&["127.0.1.1"]), "{transport:?}");
        let tag = lookup(&r, "primary.web.service.concord.", RecordType::A).await;
        assert_eq!(ips(&tag), ipset(&["127.0.0.11"]), "{transport:?}");
        let full = lookup(&r, "primary.web.default.service.concord.", RecordType::AAAA).await;
        assert_eq!(ips(&full), ipset(&["fd00::12"]), "{transport:?}");
        let v6 = lookup(&r, "api.prod.service.concord.", RecordType::AAAA).await;
        assert_eq!(ips(&v6), ipset(&["fd00::1:2"]), "{transport:?}");
        let shouting = lookup(&r, "WEB.Service.CONCORD.", RecordType::A).await;
        assert_eq!(
            ips(&shouting),
            ipset(&["127.0.0.11", "127.0.0.12"]),
            "{transport:?}"
        );
        assert!(web.answers().iter().all(|a| a.ttl <= 5), "{transport:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn resolver_follows_srv_targets() {
    let server = TestServer::start(fixture()).await;
    for transport in TRANSPORTS {
        let r = server.resolver(transport);
        for name in [
            "_api._tcp.prod.service.concord.",
            "api.prod.service.concord.",
        ] {
            let srv = lookup(&r, name, RecordType::SRV).await;
            let targets: Vec<(Name, u16)> = srv
                .answers()
                .iter()
                .filter_map(|rec| match &rec.data {
                    RData::SRV(s) => Some((s.target.clone(), s.port)),
                    _ => None,
                })
                .collect();
            assert_eq!(targets.len(), 2, "{transport:?} {name}");
            let mut resolved = BTreeSet::new();
            for (target, port) in targets {
                assert_eq!(port, 8080);
                let glue: Vec<_> = srv
                    .additionals()
                    .iter()
                    .filter(|a| a.name == target)
                    .collect();
                assert_eq!(glue.len(), 1, "{transport:?} no glue for {target}");
                let direct = within("lookup_ip", r.lookup_ip(target.clone()))
                    .await
                    .unwrap();
                resolved.extend(direct.iter());
            }
            assert_eq!(
                resolved,
                ipset(&["127.0.1.1", "fd00::1:2"]),
                "{transport:?} {name}"
            );
        }
        let tagged = lookup(&r, "_web._primary.service.concord.", RecordType::SRV).await;
        assert_eq!(tagged.answers().len(), 2, "{transport:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn hostname_instances_are_cnames() {
    let server = TestServer::start(fixture()).await;
    for transport in TRANSPORTS {
        let r = server.resolver(transport);
        // An in-zone target, so the resolver can chase it to addresses.
        let alias = lookup(&r, "alias.service.concord.", RecordType::A).await;
        let cnames: Vec<String> = alias
            .answers()
            .iter()
            .filter_map(|rec| match &rec.data {
                RData::CNAME(c) => Some(c.0.to_ascii()),
                _ => None,
            })
            .collect();
        assert_eq!(cnames, ["web.service.concord."], "{transport:?}");
        assert_eq!(
            ips(&alias),
            ipset(&["127.0.0.11", "127.0.0.12"]),
            "{transport:?}"
        );
        let ext = lookup(&r, "ext.service.concord.", RecordType::CNAME).await;
        match &ext.answers()[0].data {
            RData::CNAME(c) => assert_eq!(c.0.to_ascii(), "db.example.com."),
            other => panic!("{transport:?}: {other:?}"),
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn resolver_sees_negative_answers() {
    let server = TestServer::start(fixture()).await;
    for transport in TRANSPORTS {
        let r = server.resolver(transport);
        let cases = [
            (
                "nope.service.concord.",
                RecordType::A,
                ResponseCode::NXDomain,
            ),
            (
                "down.service.concord.",
                RecordType::A,
                ResponseCode::NoError,
            ),
            (
                "web.service.concord.",
                RecordType::TXT,
                ResponseCode::NoError,
            ),
            ("web.example.com.", RecordType::A, ResponseCode::Refused),
        ];
        for (name, qtype, rcode) in cases {
            assert_eq!(
                failed_rcode(&r, name, qtype).await,
                rcode,
                "{transport:?} {name} {qtype}"
            );
        }
    }
    let text = server.metrics_text();
    for rcode in ["NXDOMAIN", "NOERROR", "REFUSED"] {
        assert!(text.contains(&format!("rcode=\"{rcode}\"")), "{text}");
    }
    server.shutdown().await;
}

/// One query by hand: the header flags and sections exactly as sent.
async fn raw_query(server: &TestServer, transport: Transport, query: &Message) -> Message {
    let bytes = query.to_vec().unwrap();
    let reply = match transport {
        Transport::Udp => raw_udp(server.udp, &bytes).await,
        Transport::Tcp => raw_tcp(server.tcp, &bytes).await,
    };
    Message::from_vec(&reply).unwrap()
}

async fn raw_udp(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(bytes, addr).await.unwrap();
    let mut buf = vec![0; 65535];
    let (n, _) = within("udp reply", socket.recv_from(&mut buf))
        .await
        .unwrap();
    buf.truncate(n);
    buf
}

async fn raw_tcp(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = within("tcp connect", TcpStream::connect(addr))
        .await
        .unwrap();
    let mut framed = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.unwrap();
    let len = within("tcp reply", stream.read_u16()).await.unwrap();
    let mut buf = vec![0; usize::from(len)];
    within("tcp reply", stream.read_exact(&mut buf))
        .await
        .unwrap();
    buf
}

fn question(id: u16, name: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.metadata.recursion_desired = true;
    m
}

#[tokio::test]
async fn wire_flags_sections_and_exact_counts() {
    let server = TestServer::start(fixture()).await;
    for transport in TRANSPORTS {
        let ok = raw_query(
            &server,
            transport,
            &question(7, "web.service.concord.", RecordType::A),
        )
        .await;
        assert_eq!(ok.metadata.id, 7);
        assert_eq!(ok.metadata.message_type, MessageType::Response);
        assert_eq!(ok.metadata.response_code, ResponseCode::NoError);
        assert!(ok.metadata.authoritative, "{transport:?}");
        assert!(ok.metadata.recursion_desired && !ok.metadata.recursion_available);
        assert_eq!(ok.answers.len(), 2);
        assert!(ok.answers.iter().all(|a| a.ttl == 5));

        let nx = raw_query(
            &server,
            transport,
            &question(8, "nope.service.concord.", RecordType::A),
        )
        .await;
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
        assert!(nx.metadata.authoritative);
        assert_eq!(nx.authorities.len(), 1);
        assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);

        let srv = raw_query(
            &server,
            transport,
            &question(9, "_web._tcp.service.concord.", RecordType::SRV),
        )
        .await;
        assert_eq!(srv.answers.len(), 3);
        assert_eq!(srv.additionals.len(), 3);

        let out = raw_query(
            &server,
            transport,
            &question(10, "example.com.", RecordType::A),
        )
        .await;
        assert_eq!(out.metadata.response_code, ResponseCode::Refused);
        assert!(!out.metadata.authoritative);

        let mut two = question(11, "web.service.concord.", RecordType::A);
        two.add_query(Query::query(
            Name::from_ascii("api.prod.service.concord.").unwrap(),
            RecordType::A,
        ));
        let formerr = raw_query(&server, transport, &two).await;
        assert_eq!(formerr.metadata.response_code, ResponseCode::FormErr);

        let mut edns = question(12, "web.service.concord.", RecordType::A);
        edns.set_edns(Edns::new());
        let with_edns = raw_query(&server, transport, &edns).await;
        assert!(with_edns.edns.is_some(), "{transport:?}: no OPT in reply");
    }
    let text = server.metrics_text();
    for line in [
        "concord_dns_queries_total{qtype=\"A\",rcode=\"NOERROR\"} 4",
        "concord_dns_queries_total{qtype=\"A\",rcode=\"NXDOMAIN\"} 2",
        "concord_dns_queries_total{qtype=\"SRV\",rcode=\"NOERROR\"} 2",
        "concord_dns_queries_total{qtype=\"A\",rcode=\"REFUSED\"} 2",
        "concord_dns_queries_total{qtype=\"none\",rcode=\"FORMERR\"} 2",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_does_not_stop_the_server() {
    let server = TestServer::start(fixture()).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for junk in [&b""[..], b"\x00", &[0xff; 12], &[0xab; 600]] {
        socket.send_to(junk, server.udp).await.unwrap();
    }
    let mut tcp = TcpStream::connect(server.tcp).await.unwrap();
    tcp.write_all(b"\x00\x05hello\xff\xff").await.unwrap();
    drop(tcp);
    for transport in TRANSPORTS {
        let ok = raw_query(
            &server,
            transport,
            &question(1, "web.service.concord.", RecordType::A),
        )
        .await;
        assert_eq!(ok.answers.len(), 2, "{transport:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_the_listeners() {
    let server = TestServer::start(fixture()).await;
    let tcp = server.tcp;
    server.shutdown().await;
    assert!(TcpStream::connect(tcp).await.is_err());
}

#[tokio::test]
async fn an_invalid_domain_is_an_error() {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = DnsConfig {
        domain: "a..b".to_owned(),
        ..DnsConfig::default()
    };
    let metrics = Arc::new(DnsMetrics::default());
    let result = within(
        "serve",
        serve(udp, tcp, fixture(), config, metrics, std::future::pending()),
    )
    .await;
    assert!(matches!(result, Err(DnsError::Domain { .. })), "{result:?}");
}
