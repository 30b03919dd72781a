//! Prometheus counters of the DNS interface.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of one answered query. Both come from closed sets (hickory's known record
/// types plus `Unknown`, and the rcodes we send), so cardinality stays bounded
/// whatever clients ask.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    qtype: &'static str,
    rcode: &'static str,
}

/// Queries answered, by record type and response code (`concord_dns_queries_total`).
#[derive(Debug, Default)]
pub struct DnsMetrics {
    queries: Family<QueryLabels, Counter>,
}

impl DnsMetrics {
    /// Creates the counters and registers them as `dns_queries` in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "dns_queries",
            "DNS queries answered, by query type and response code",
            metrics.queries.clone(),
        );
        metrics
    }

    /// Counts one response; `qtype` is `None` when the request held no single question.
    pub(super) fn observe(&self, qtype: Option<RecordType>, rcode: ResponseCode) {
        let labels = QueryLabels {
            qtype: qtype.map_or("none", <&'static str>::from),
            rcode: rcode_label(rcode),
        };
        self.queries.get_or_create(&labels).inc();
    }
}

fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        _ => "OTHER",
    }
}
