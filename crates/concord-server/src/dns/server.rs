//! The hickory glue: one request handler over UDP and TCP, and `serve`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};
use tracing::debug;

use super::answer::{Answer, Zone, build_answer};
use super::{DnsConfig, DnsError, DnsMetrics, DnsSource};

/// A TCP connection that sends no query for this long is closed (slow-client guard).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection before the handler waits for the socket.
const TCP_RESPONSE_BUFFER: usize = 32;
/// Largest UDP payload we offer in EDNS; 1232 avoids IP fragmentation (DNS flag day 2020).
const EDNS_MAX_PAYLOAD: u16 = 1232;

/// Serves DNS on an already-bound UDP socket and TCP listener until `shutdown` resolves.
///
/// Taking bound sockets lets the caller report bind errors with its own context and
/// lets tests use port 0. Returns an error when the domain is invalid, or when a
/// socket fails for good (after the other one has stopped too).
pub async fn serve(
    udp: UdpSocket,
    tcp: TcpListener,
    source: Arc<dyn DnsSource>,
    config: DnsConfig,
    metrics: Arc<DnsMetrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DnsError> {
    let zone = Zone::new(&config)?;
    let mut server = Server::new(Handler {
        source,
        zone,
        metrics,
    });
    server.register_socket(udp);
    server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    let token = server.shutdown_token().clone();
    // Cancelling makes both socket tasks return, which ends `block_until_done`.
    let cancel_on_shutdown = async move {
        shutdown.await;
        token.cancel();
        std::future::pending::<Infallible>().await
    };
    tokio::select! {
        result = server.block_until_done() => result.map_err(DnsError::from),
        never = cancel_on_shutdown => match never {},
    }
}

/// Answers every request from the registry; shared by the UDP and TCP tasks.
struct Handler {
    source: Arc<dyn DnsSource>,
    zone: Zone,
    metrics: Arc<DnsMetrics>,
}

impl Handler {
    /// Decides the answer. Synchronous on purpose: the thread-local RNG is not `Send`
    /// and must not live across the send's `.await`.
    fn decide(&self, request: &Request) -> (Option<RecordType>, Answer) {
        if request.metadata.op_code != OpCode::Query {
            return (None, bare(ResponseCode::NotImp));
        }
        let Ok(info) = request.request_info() else {
            return (None, bare(ResponseCode::FormErr));
        };
        let qtype = info.query.query_type();
        if info.query.query_class() != DNSClass::IN {
            return (Some(qtype), bare(ResponseCode::Refused));
        }
        let qname = info.query.original().name();
        let answer = build_answer(&*self.source, &self.zone, qname, qtype, &mut rand::rng());
        (Some(qtype), answer)
    }

    async fn respond<R: ResponseHandler>(&self, request: &Request, mut handle: R) -> ResponseInfo {
        let (qtype, answer) = self.decide(request);
        self.metrics.observe(qtype, answer.rcode);
        debug!(?qtype, rcode = %answer.rcode, answers = answer.answers.len(), "dns query");
        // EDNS only when asked (RFC 6891); UDP answers are cut to what both sides accept.
        let edns = request.edns.as_ref().map(|_| {
            let mut edns = Edns::new();
            edns.set_max_payload(request.max_payload().min(EDNS_MAX_PAYLOAD));
            edns
        });
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = answer.authoritative;
        metadata.response_code = answer.rcode;
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            answer.answers.iter(),
            answer.authorities.iter(),
            std::iter::empty(),
            answer.additionals.iter(),
        );
        match handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                // The client went away or the socket failed; nothing to retry.
                debug!(%error, "could not send dns response");
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// An answer with only a response code (requests we do not serve).
fn bare(rcode: ResponseCode) -> Answer {
    Answer {
        rcode,
        authoritative: false,
        answers: Vec::new(),
        authorities: Vec::new(),
        additionals: Vec::new(),
    }
}

// `RequestHandler` is an `async_trait`; this is the signature that macro generates,
// written out so the crate does not depend on `async-trait` for one impl.
impl RequestHandler for Handler {
    fn handle_request<'life0, 'life1, 'async_trait, R, T>(
        &'life0 self,
        request: &'life1 Request,
        response_handle: R,
    ) -> Pin<Box<dyn Future<Output = ResponseInfo> + Send + 'async_trait>>
    where
        R: ResponseHandler + 'async_trait,
        T: Time + 'async_trait,
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.respond(request, response_handle))
    }
}
