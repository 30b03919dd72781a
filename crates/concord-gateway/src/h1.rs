//! The gateway's HTTP/1.1 client connection, driven by the request it
//! carries rather than by a task of its own.
//!
//! hyper's client runs each connection as a separate task: a request goes
//! to it through a channel, the response head comes back through a oneshot
//! and the body through another channel, so every proxied request wakes two
//! tasks back and forth. Under callgrind on the gateway benchmark that task
//! was about 12,000 of the 21,500 instructions a request costs a bare hyper
//! proxy. Here the request's own future writes the request and reads the
//! response head, and the response body reads the rest from the socket when
//! the server side polls it. Parsing is httparse's, which hyper uses too.
//!
//! What it keeps of RFC 9112:
//! - the response body is framed by `Transfer-Encoding` (chunked when that
//!   is the last coding, else until close), then `Content-Length` (several
//!   values must agree), else until close; `HEAD`, 1xx, 204 and 304 have
//!   none;
//! - interim 1xx responses other than `101` are skipped;
//! - a `101` to an upgrade request hands the socket, and any bytes already
//!   read past the head, to a [`Tunnel`];
//! - a response head is at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`]
//!   fields;
//! - a request body of unknown length goes chunked, trailers included;
//!   `Content-Length` and `Transfer-Encoding` are always the client's own.

use std::io;
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use hyper::body::Body as _;
use tokio::net::TcpStream;

use crate::body::{Body, BoxError};
use crate::socket;

mod body;
mod write;

use body::Framed;
pub use body::Framing;
use write::{Written, body_length, encode_head, send_body, write_all};

/// Largest response head (status line and fields) accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted in a response head (hyper's limit too).
pub const MAX_HEADERS: usize = 100;
/// Free space made in the read buffer before a read. Small answers share
/// one buffer: the next read goes after the last answer's bytes, which
/// their `Bytes` slices still hold, until less than [`MIN_READ`] is left.
const READ_CHUNK: usize = 8 * 1024;
const MIN_READ: usize = 1024;
/// Request bodies up to this size go in the same write as the head.
const COALESCE: usize = 16 * 1024;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The endpoint closed the connection before the response was complete.
    #[error("connection closed before the response was complete")]
    Closed,
    /// The endpoint's response broke HTTP/1.1.
    #[error("invalid response: {0}")]
    Invalid(&'static str),
    /// The request body the client sent failed while being forwarded.
    #[error("request body: {0}")]
    RequestBody(BoxError),
}

/// A failed exchange, and whether any byte of the request had left. A
/// request of which nothing left may go again on another connection,
/// whatever its method.
#[derive(Debug)]
pub struct Failed {
    /// What went wrong.
    pub error: Error,
    /// Whether the endpoint may have seen (part of) the request.
    pub sent: bool,
}

/// One keep-alive connection to an endpoint.
#[derive(Debug)]
pub struct Conn {
    io: TcpStream,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
    /// The request head being written; kept for its capacity.
    out: Vec<u8>,
    /// Where the fields of the head being parsed sit; kept for its
    /// capacity.
    fields: Vec<Field>,
}

/// A response head, with how its body is framed.
#[derive(Debug)]
pub struct Head {
    /// Status, version and headers; the body comes separately.
    pub response: Response<()>,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection can carry another request once the body is
    /// read.
    pub keep_alive: bool,
}

/// The endpoint's side of an upgraded connection: its socket and what was
/// read past the `101` head. Carried to [`crate::proxy`] as a response
/// extension, which must be `Clone`, hence the shared slot.
#[derive(Clone, Debug)]
pub struct Tunnel(Arc<Mutex<Option<(TcpStream, Bytes)>>>);

impl Tunnel {
    /// The socket and the bytes already read from it, once.
    pub fn take(&self) -> Option<(TcpStream, Bytes)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl Conn {
    /// A connection over an open socket.
    pub fn new(io: TcpStream) -> Self {
        Conn {
            io,
            buf: BytesMut::new(),
            out: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// Whether an idle connection can take a request: the endpoint has not
    /// closed it, nor sent anything unasked.
    ///
    /// The reactor flags the socket readable when anything arrives; a flag
    /// left by a read that filled the buffer costs one read that would
    /// block.
    pub fn is_idle_usable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Writes `req` and reads the response head. The request's body is
    /// taken only once its head has gone; when nothing could be written the
    /// request is left as it was.
    ///
    /// A request without `Host` goes with `host` (the endpoint's address).
    pub async fn exchange(&mut self, req: &mut Request<Body>, host: &str) -> Result<Head, Failed> {
        let mut sent = false;
        let written = match self.write_head(req, host, &mut sent).await {
            Ok(Written::Whole { upgrading }) => Ok(upgrading),
            // An upgrade's body (rare) goes whole before its 101 is read.
            Ok(Written::Head { upgrading: true }) => {
                self.write_body(req, &mut sent).await.map(|()| true)
            }
            Ok(Written::Head { upgrading: false }) => {
                match self.write_body_watching(req, &mut sent).await {
                    Ok(Some(head)) => return Ok(head),
                    Ok(None) => Ok(false),
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        };
        let upgrading = match written {
            Ok(upgrading) => upgrading,
            Err(Error::Io(error)) if sent => return self.early_answer(req.method(), error).await,
            Err(error) => return Err(Failed { error, sent }),
        };
        self.read_head(req.method(), upgrading)
            .await
            .map_err(|error| Failed { error, sent: true })
    }

    /// The endpoint's answer to a request it stopped reading, say a `413`
    /// to an upload too large: it answered, closed, and the rest of the
    /// body could not be written. The answer is still in the socket (a
    /// reset does not discard what had arrived before it), and a closed
    /// socket cannot keep the read waiting. Without a whole answer there,
    /// the exchange failed on `write`.
    async fn early_answer(&mut self, method: &Method, write: io::Error) -> Result<Head, Failed> {
        match self.read_head(method, false).await {
            Ok(mut head) => {
                // The request was cut short: the connection cannot go on.
                head.keep_alive = false;
                Ok(head)
            }
            Err(_) => Err(Failed {
                error: Error::Io(write),
                sent: true,
            }),
        }
    }

    /// Writes the request head, with the body when that is whole and
    /// small; says what is left to write.
    async fn write_head(
        &mut self,
        req: &mut Request<Body>,
        host: &str,
        sent: &mut bool,
    ) -> Result<Written, Error> {
        let upgrading = encode_head(&mut self.out, req, body_length(req.body()), host);
        let whole = match req.body() {
            Body::Full(None) => true,
            Body::Full(Some(bytes)) if bytes.len() <= COALESCE => {
                self.out.extend_from_slice(bytes);
                true
            }
            body => body.is_end_stream(),
        };
        write_all(&mut self.io, &self.out, sent).await?;
        Ok(if whole {
            Written::Whole { upgrading }
        } else {
            Written::Head { upgrading }
        })
    }

    /// Writes the body [`Conn::write_head`] left.
    async fn write_body(&mut self, req: &mut Request<Body>, sent: &mut bool) -> Result<(), Error> {
        let (_, mut writer) = self.io.split();
        send_body(&mut writer, &mut self.out, req, sent).await
    }

    /// Writes the body [`Conn::write_head`] left while watching for an
    /// answer that comes before it ends.
    ///
    /// An endpoint may answer an upload it will not take (a `413`, a
    /// redirect) and then neither read nor close: waiting for the body to
    /// go would hold the request until its timeout. Such an answer, any
    /// final status but 2xx, is the response at once, and the connection
    /// ends with it. A 2xx this early comes from an endpoint that answers
    /// as it reads, so the body still goes whole. Anything else the read
    /// finds stops nothing: the read after the write meets it again.
    async fn write_body_watching(
        &mut self,
        req: &mut Request<Body>,
        sent: &mut bool,
    ) -> Result<Option<Head>, Error> {
        let method = req.method().clone();
        let Conn {
            io,
            buf,
            out,
            fields,
        } = self;
        let (reader, mut writer) = io.split();
        let write = send_body(&mut writer, out, req, sent);
        let watch = read_head(reader.as_ref(), buf, fields, &method, false);
        tokio::pin!(write, watch);
        tokio::select! {
            biased;
            written = &mut write => written.map(|()| None),
            answer = &mut watch => match answer {
                Ok(mut head) if !head.response.status().is_success() => {
                    head.keep_alive = false;
                    Ok(Some(head))
                }
                Ok(mut head) => {
                    if write.await.is_err() {
                        head.keep_alive = false;
                    }
                    Ok(Some(head))
                }
                Err(_) => write.await.map(|()| None),
            },
        }
    }

    /// Reads until a final response head, skipping interim ones.
    async fn read_head(&mut self, method: &Method, upgrading: bool) -> Result<Head, Error> {
        read_head(&self.io, &mut self.buf, &mut self.fields, method, upgrading).await
    }

    /// Reads what the socket has into the buffer; `0` at its end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        poll_fill(&self.io, &mut self.buf, cx)
    }

    /// The socket and the bytes read past the `101` head, for the tunnel.
    pub fn into_tunnel(self) -> Tunnel {
        Tunnel(Arc::new(Mutex::new(Some((self.io, self.buf.freeze())))))
    }

    /// Whether every byte read has been consumed, so the next request's
    /// response starts clean.
    pub fn is_drained(&self) -> bool {
        self.buf.is_empty()
    }

    /// How many bytes are read and not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes up to `max` of the bytes read and not yet consumed.
    pub fn take_buffered(&mut self, max: u64) -> Bytes {
        let n = usize::try_from(max).map_or(self.buf.len(), |max| max.min(self.buf.len()));
        self.buf.split_to(n).freeze()
    }
}

/// Where a header field's name and value sit in a parsed head: httparse
/// borrows the buffer, which is split off only after parsing.
#[derive(Clone, Copy, Debug)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
}

impl Field {
    fn name(self) -> std::ops::Range<usize> {
        self.name.0 as usize..self.name.1 as usize
    }

    fn value(self) -> std::ops::Range<usize> {
        self.value.0 as usize..self.value.1 as usize
    }
}

/// Reads until a final response head, skipping interim ones.
async fn read_head(
    io: &TcpStream,
    buf: &mut BytesMut,
    fields: &mut Vec<Field>,
    method: &Method,
    upgrading: bool,
) -> Result<Head, Error> {
    loop {
        if let Some(head) = parse_head(buf, fields, method, upgrading)? {
            return Ok(head);
        }
        if buf.len() >= MAX_HEAD {
            return Err(Error::Invalid("response head too large"));
        }
        if std::future::poll_fn(|cx| poll_fill(io, buf, cx)).await? == 0 {
            return Err(Error::Closed);
        }
    }
}

/// A final response head from the buffer, or `None` when more bytes are
/// needed (an interim head is consumed on the way).
fn parse_head(
    buf: &mut BytesMut,
    fields: &mut Vec<Field>,
    method: &Method,
    upgrading: bool,
) -> Result<Option<Head>, Error> {
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        let Some((len, status, version)) = parse(buf, fields)? else {
            return Ok(None);
        };
        let head = buf.split_to(len).freeze();
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        let mut headers = HeaderMap::with_capacity(fields.len());
        let mut framed = Framed::default();
        let mut connection = Connection::default();
        for f in fields.iter() {
            let raw = &head[f.name()];
            let value = || {
                HeaderValue::from_maybe_shared(head.slice(f.value()))
                    .map_err(|_| Error::Invalid("bad header value"))
            };
            let name = match classify(raw) {
                Kind::ContentLength => {
                    framed.content_length(&head[f.value()]);
                    header::CONTENT_LENGTH
                }
                Kind::TransferEncoding => {
                    framed.transfer_encoding(&head[f.value()]);
                    continue;
                }
                Kind::Connection => {
                    if connection.read(&head[f.value()]) {
                        continue;
                    }
                    header::CONNECTION
                }
                Kind::KeepAlive => continue,
                Kind::Other => name_of(raw)?,
            };
            headers.append(name, value()?);
        }
        if status == StatusCode::SWITCHING_PROTOCOLS && !upgrading {
            return Err(Error::Invalid("101 to a request that asked no upgrade"));
        }
        let (framing, framed_for_reuse) = body::framing(method, status, &framed)?;
        let keep_alive = framed_for_reuse && connection.persists(version);
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        return Ok(Some(Head {
            response,
            framing,
            keep_alive,
        }));
    }
}

/// Reads what the socket has into the buffer; `0` at its end. A read
/// that leaves room drops the socket's readable flag
/// ([`crate::socket`]), so an idle connection is checked without a read.
fn poll_fill(io: &TcpStream, buf: &mut BytesMut, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < MIN_READ {
        buf.reserve(READ_CHUNK);
    }
    let room = buf.capacity() - buf.len();
    socket::poll_read_with(io, cx, room, || io.try_read_buf(buf))
}

/// A parsed head: its length, status and version.
type Parsed = (usize, StatusCode, Version);

/// Parses a response head at the start of `buf`, its fields' positions
/// into `fields`.
fn parse(buf: &[u8], fields: &mut Vec<Field>) -> Result<Option<Parsed>, Error> {
    if buf.len() > u32::MAX as usize {
        return Err(Error::Invalid("response head too large"));
    }
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Error::Invalid("more than 100 header fields"));
        }
        Err(_) => return Err(Error::Invalid("malformed response head")),
    };
    let status = res
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(Error::Invalid("bad status code"))?;
    let version = match res.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let base = buf.as_ptr() as usize;
    // Within `buf`, whose length fits in a u32 (checked above).
    let at = |s: &[u8]| {
        let start = (s.as_ptr() as usize - base) as u32;
        (start, start + s.len() as u32)
    };
    fields.clear();
    fields.extend(res.headers.iter().map(|h| Field {
        name: at(h.name.as_bytes()),
        value: at(h.value),
    }));
    Ok(Some((len, status, version)))
}

/// What a response's `Connection` fields say.
#[derive(Debug, Default)]
struct Connection {
    close: bool,
    keep_alive: bool,
}

impl Connection {
    /// Takes in one `Connection` value; says whether it held only `close`
    /// and `keep-alive`. One that names other fields stays in the
    /// response, for the proxy to remove those fields with it.
    fn read(&mut self, value: &[u8]) -> bool {
        let mut plain = true;
        for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if !token.is_empty() {
                plain = false;
            }
        }
        plain
    }

    /// Whether the endpoint keeps the connection open after this response:
    /// HTTP/1.1 unless `close`, HTTP/1.0 only with `keep-alive`.
    fn persists(&self, version: Version) -> bool {
        if version == Version::HTTP_10 {
            self.keep_alive && !self.close
        } else {
            !self.close
        }
    }
}

/// Fields the connection itself reads.
enum Kind {
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    Other,
}

fn classify(name: &[u8]) -> Kind {
    match name.len() {
        10 if is(name, b"connection") => Kind::Connection,
        10 if is(name, b"keep-alive") => Kind::KeepAlive,
        14 if is(name, b"content-length") => Kind::ContentLength,
        17 if is(name, b"transfer-encoding") => Kind::TransferEncoding,
        _ => Kind::Other,
    }
}

/// Whether a field name (a token, as httparse checked) is `lower` in any
/// case. `lower` holds only lowercase letters and `-`; among token bytes,
/// setting bit 0x20 maps exactly the uppercase letters onto those, so one
/// OR per byte does, without branches, what `eq_ignore_ascii_case` does
/// with a table.
fn is(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len()
        && name
            .iter()
            .zip(lower)
            .fold(0, |diff, (n, l)| diff | ((n | 0x20) ^ l))
            == 0
}

/// The field name, the commonest ones without going through the general
/// lookup (which lowercases through a table first).
fn name_of(raw: &[u8]) -> Result<HeaderName, Error> {
    let common = match raw.len() {
        4 if is(raw, b"date") => Some(header::DATE),
        6 if is(raw, b"server") => Some(header::SERVER),
        12 if is(raw, b"content-type") => Some(header::CONTENT_TYPE),
        _ => None,
    };
    match common {
        Some(name) => Ok(name),
        None => HeaderName::from_bytes(raw).map_err(|_| Error::Invalid("bad header name")),
    }
}

#[cfg(test)]
mod tests;
