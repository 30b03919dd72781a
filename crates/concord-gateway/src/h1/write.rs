//! The request side of an exchange: the head as it goes on the wire, and
//! the body after it, as it is or chunked.

use http::header::{self, HeaderName, HeaderValue};
use std::io;

use http::{Method, Request};
use hyper::body::Body as _;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{COALESCE, Error};
use crate::body::Body;

/// What [`Conn::write_head`] wrote: the whole request, or its head with a
/// body still to go; and whether the request asks for an upgrade.
pub(super) enum Written {
    Whole { upgrading: bool },
    Head { upgrading: bool },
}

/// The length a request body declares: `0` when it is already over, its
/// exact size when known, else none (it goes chunked).
pub(super) fn body_length(body: &Body) -> Option<u64> {
    if body.is_end_stream() {
        Some(0)
    } else {
        body.size_hint().exact()
    }
}

/// Writes what is left of the request's body after its head: a whole body
/// as it is (kept in the request), a stream taken from it.
pub(super) async fn send_body<W: AsyncWrite + Unpin>(
    io: &mut W,
    out: &mut Vec<u8>,
    req: &mut Request<Body>,
    sent: &mut bool,
) -> Result<(), Error> {
    let length = body_length(req.body());
    match req.body_mut() {
        Body::Full(None) => Ok(()),
        Body::Full(Some(bytes)) => Ok(write_all(io, bytes, sent).await?),
        body @ Body::Stream(_) => {
            let body = std::mem::replace(body, crate::body::empty());
            stream_body(io, out, body, length, sent).await
        }
    }
}

/// Forwards a streamed body: chunked when its length is unknown, else
/// exactly as long as it said it would be.
pub(super) async fn stream_body<W: AsyncWrite + Unpin>(
    io: &mut W,
    out: &mut Vec<u8>,
    mut body: Body,
    length: Option<u64>,
    sent: &mut bool,
) -> Result<(), Error> {
    let mut left = length;
    let mut trailers = None;
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(Error::RequestBody)?;
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                trailers = frame.into_trailers().ok();
                continue;
            }
        };
        if data.is_empty() {
            continue;
        }
        match &mut left {
            Some(left) => {
                *left = left.checked_sub(data.len() as u64).ok_or_else(|| {
                    Error::RequestBody("the body is longer than its Content-Length".into())
                })?;
                write_all(io, &data, sent).await?;
            }
            None => {
                out.clear();
                out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                let small = data.len() <= COALESCE;
                if small {
                    out.extend_from_slice(&data);
                    out.extend_from_slice(b"\r\n");
                }
                write_all(io, out, sent).await?;
                if !small {
                    write_all(io, &data, sent).await?;
                    write_all(io, b"\r\n", sent).await?;
                }
            }
        }
    }
    match left {
        Some(0) => Ok(()),
        Some(_) => Err(Error::RequestBody(
            "the body ended before its Content-Length".into(),
        )),
        None => {
            out.clear();
            out.extend_from_slice(b"0\r\n");
            for (name, value) in trailers.iter().flatten() {
                push_field(out, name, value);
            }
            out.extend_from_slice(b"\r\n");
            Ok(write_all(io, out, sent).await?)
        }
    }
}

/// The request line and fields into `out`; says whether the request asks
/// for an upgrade. `Content-Length` and `Transfer-Encoding` follow the body
/// (`length`, `None` for unknown); an empty body gets `Content-Length: 0`
/// only where a body is expected. Without a `Host` field, `host` is sent
/// (when it is a plausible one).
pub(super) fn encode_head(
    out: &mut Vec<u8>,
    req: &Request<Body>,
    length: Option<u64>,
    host: &str,
) -> bool {
    out.clear();
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let (mut had_length, mut had_host, mut upgrading) = (false, false, false);
    for (name, value) in req.headers() {
        if name == header::CONTENT_LENGTH {
            had_length = true;
            continue;
        }
        if name == header::TRANSFER_ENCODING {
            continue;
        }
        had_host |= name == header::HOST;
        upgrading |= name == header::UPGRADE;
        push_field(out, name, value);
    }
    if !had_host && !host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic()) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match length {
        None => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Some(0)
            if !had_length
                && !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) => {}
        Some(n) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    upgrading
}

pub(super) fn push_field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub(super) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Writes all of `buf`; `sent` turns true once any byte has left.
pub(super) async fn write_all<W: AsyncWrite + Unpin>(
    io: &mut W,
    mut buf: &[u8],
    sent: &mut bool,
) -> io::Result<()> {
    while !buf.is_empty() {
        let n = io.write(buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        *sent = true;
        buf = &buf[n..];
    }
    Ok(())
}
