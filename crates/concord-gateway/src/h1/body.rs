//! Response bodies: how one is delimited, and reading it off the connection.

use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use hyper::body::Frame;

use super::{Conn, Error, MAX_HEAD};

/// Longest chunk-size line (size and extensions) accepted.
pub(super) const MAX_CHUNK_LINE: usize = 4096;
/// Most trailer fields accepted.
const MAX_TRAILERS: usize = 64;

/// How a response body is delimited, and how much of it is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// This many bytes more (`0`: none, or all read).
    Length(u64),
    /// Chunked, at this step.
    Chunked(Chunk),
    /// Until the endpoint closes the connection.
    Close,
}

/// Where a chunked body's reading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields, then an empty line.
    Trailers,
    /// Read to its end.
    Done,
}

impl Framing {
    /// Whether nothing is left to read.
    pub fn is_done(self) -> bool {
        matches!(self, Framing::Length(0) | Framing::Chunked(Chunk::Done))
    }
}

/// What a response head's framing fields said, gathered as they are read.
#[derive(Debug, Default)]
pub(super) struct Framed {
    /// Whether the last `Transfer-Encoding` value ends in `chunked`; `None`
    /// without one.
    chunked: Option<bool>,
    /// The `Content-Length`, when every value agreed.
    length: Option<u64>,
    /// A `Content-Length` value was malformed or disagreed with another.
    bad_length: bool,
}

impl Framed {
    /// Takes in one `Transfer-Encoding` value.
    pub(super) fn transfer_encoding(&mut self, value: &[u8]) {
        self.chunked = Some(
            value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked")),
        );
    }

    /// Takes in one `Content-Length` value (which may list several).
    pub(super) fn content_length(&mut self, value: &[u8]) {
        for part in value.split(|b| *b == b',') {
            match decimal(part.trim_ascii()) {
                Some(n) if self.length.is_none_or(|l| l == n) => self.length = Some(n),
                _ => self.bad_length = true,
            }
        }
    }
}

/// How the body of a response to `method` with this status and framing
/// fields is delimited, and whether that framing lets the connection be
/// reused.
pub(super) fn framing(
    method: &Method,
    status: StatusCode,
    framed: &Framed,
) -> Result<(Framing, bool), Error> {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Length(0), true));
    }
    match framed.chunked {
        Some(false) => return Ok((Framing::Close, false)),
        // Both framings at once is how requests get smuggled: read it as
        // chunked (RFC 9112 §6.3), but trust the connection no further.
        Some(true) => {
            let reusable = framed.length.is_none() && !framed.bad_length;
            return Ok((Framing::Chunked(Chunk::Size), reusable));
        }
        None => {}
    }
    if framed.bad_length {
        return Err(Error::Invalid("bad or conflicting Content-Length"));
    }
    Ok(match framed.length {
        Some(n) => (Framing::Length(n), true),
        None => (Framing::Close, false),
    })
}

/// A non-negative decimal of at most 19 digits (so it fits in a u64).
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

impl Conn {
    /// The next frame of a body delimited by `framing`, which it advances.
    pub fn poll_body(
        &mut self,
        framing: &mut Framing,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        loop {
            let more = match framing {
                Framing::Length(0) => return Poll::Ready(None),
                Framing::Length(left) => {
                    if !self.buf.is_empty() {
                        let data = self.take_buffered(*left);
                        *left -= data.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    true
                }
                Framing::Close => {
                    if !self.buf.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(self.buf.split().freeze()))));
                    }
                    if ready!(self.poll_fill(cx))? == 0 {
                        *framing = Framing::Length(0);
                        return Poll::Ready(None);
                    }
                    continue;
                }
                Framing::Chunked(chunk) => match self.step_chunked(chunk)? {
                    Step::Frame(frame) => return Poll::Ready(Some(Ok(frame))),
                    Step::End => return Poll::Ready(None),
                    Step::Again => continue,
                    Step::More => true,
                },
            };
            if more && ready!(self.poll_fill(cx))? == 0 {
                return Poll::Ready(Some(Err(Error::Closed)));
            }
        }
    }

    /// One step of a chunked body, on what is buffered.
    pub(super) fn step_chunked(&mut self, chunk: &mut Chunk) -> Result<Step, Error> {
        match chunk {
            Chunk::Size => match httparse::parse_chunk_size(&self.buf) {
                Ok(httparse::Status::Complete((used, size))) => {
                    self.buf.advance(used);
                    *chunk = if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    };
                    Ok(Step::Again)
                }
                Ok(httparse::Status::Partial) if self.buf.len() < MAX_CHUNK_LINE => Ok(Step::More),
                _ => Err(Error::Invalid("bad chunk size line")),
            },
            Chunk::Data(left) => {
                if self.buf.is_empty() {
                    return Ok(Step::More);
                }
                let data = self.take_buffered(*left);
                *left -= data.len() as u64;
                if *left == 0 {
                    *chunk = Chunk::DataEnd;
                }
                Ok(Step::Frame(Frame::data(data)))
            }
            Chunk::DataEnd => match self.buf.get(..2) {
                None if self.buf.first().is_none_or(|b| *b == b'\r') => Ok(Step::More),
                Some(b"\r\n") => {
                    self.buf.advance(2);
                    *chunk = Chunk::Size;
                    Ok(Step::Again)
                }
                _ => Err(Error::Invalid("chunk data not followed by CRLF")),
            },
            Chunk::Trailers => {
                let mut slots = [httparse::EMPTY_HEADER; MAX_TRAILERS];
                let (used, fields) = match httparse::parse_headers(&self.buf, &mut slots) {
                    Ok(httparse::Status::Complete(parsed)) => parsed,
                    Ok(httparse::Status::Partial) if self.buf.len() < MAX_HEAD => {
                        return Ok(Step::More);
                    }
                    _ => return Err(Error::Invalid("bad trailer fields")),
                };
                let mut trailers = HeaderMap::with_capacity(fields.len());
                for f in fields {
                    let name = HeaderName::from_bytes(f.name.as_bytes())
                        .map_err(|_| Error::Invalid("bad trailer name"))?;
                    let value = HeaderValue::from_bytes(f.value)
                        .map_err(|_| Error::Invalid("bad trailer value"))?;
                    trailers.append(name, value);
                }
                self.buf.advance(used);
                *chunk = Chunk::Done;
                Ok(if trailers.is_empty() {
                    Step::End
                } else {
                    Step::Frame(Frame::trailers(trailers))
                })
            }
            Chunk::Done => Ok(Step::End),
        }
    }
}

/// What one step of a chunked body came to.
pub(super) enum Step {
    Frame(Frame<Bytes>),
    End,
    /// Moved on; step again.
    Again,
    /// Needs more bytes from the socket.
    More,
}
