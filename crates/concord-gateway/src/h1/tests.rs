use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use hyper::body::Frame;

use super::body::{Chunk, Framed};
use super::write::{push_decimal, stream_body};
use super::*;
use crate::body::{boxed, empty, full};

/// A connected pair: our connection and the endpoint's socket.
async fn pair() -> (Conn, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (Conn::new(client.unwrap()), server.unwrap().0)
}

/// Reads what the endpoint got until `done` says the request is whole.
async fn received(server: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&got) {
        let n = tokio::time::timeout(Duration::from_secs(10), server.read(&mut buf))
            .await
            .expect("the request in time")
            .unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

fn head_done(got: &[u8]) -> bool {
    got.windows(4).any(|w| w == b"\r\n\r\n")
}

fn request(method: Method, body: Body) -> Request<Body> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = "/a?b=1".parse().unwrap();
    req.headers_mut()
        .insert(header::HOST, HeaderValue::from_static("svc"));
    req
}

/// Sends `req` over a fresh pair whose endpoint answers `answer` once it
/// has read the request (whole when `done` says so); returns what the
/// endpoint got, the result and our connection.
async fn roundtrip(
    req: Request<Body>,
    done: impl Fn(&[u8]) -> bool,
    answer: &'static [u8],
) -> (String, Result<Head, Failed>, Conn) {
    exchange_with(req, done, answer, false).await
}

/// A GET whose endpoint answers `answer` and closes its side at once.
async fn answer_and_close(answer: &'static [u8]) -> (Result<Head, Failed>, Conn) {
    let (_, result, conn) =
        exchange_with(request(Method::GET, empty()), head_done, answer, true).await;
    (result, conn)
}

async fn exchange_with(
    mut req: Request<Body>,
    done: impl Fn(&[u8]) -> bool,
    answer: &'static [u8],
    close: bool,
) -> (String, Result<Head, Failed>, Conn) {
    let (mut conn, mut server) = pair().await;
    let endpoint = async {
        let got = received(&mut server, done).await;
        server.write_all(answer).await.unwrap();
        if close {
            server.shutdown().await.unwrap();
        }
        got
    };
    let (got, result) = tokio::join!(endpoint, conn.exchange(&mut req, "svc"));
    // Kept open (bar a close asked for) while the caller looks at the
    // connection.
    std::mem::forget(server);
    (got, result, conn)
}

fn is_invalid(result: &Result<Head, Failed>) -> bool {
    matches!(
        result,
        Err(Failed {
            error: Error::Invalid(_),
            ..
        })
    )
}

async fn body_of(
    conn: &mut Conn,
    mut framing: Framing,
) -> Result<(Bytes, Option<HeaderMap>), Error> {
    let mut data = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = std::future::poll_fn(|cx| conn.poll_body(&mut framing, cx)).await {
        match frame?.into_data() {
            Ok(bytes) => data.extend_from_slice(&bytes),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    assert!(framing.is_done());
    Ok((data.freeze(), trailers))
}

#[tokio::test]
async fn a_get_goes_without_length_and_its_response_parses() {
    let (got, head, mut conn) = roundtrip(
        request(Method::GET, empty()),
        head_done,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Thing: a\r\nx-thing: b\r\n\r\nok",
    )
    .await;
    assert_eq!(got, "GET /a?b=1 HTTP/1.1\r\nhost: svc\r\n\r\n");
    let head = head.unwrap();
    assert_eq!(head.response.status(), StatusCode::OK);
    assert_eq!(head.response.version(), Version::HTTP_11);
    let things: Vec<_> = head.response.headers().get_all("x-thing").iter().collect();
    assert_eq!(things, ["a", "b"]);
    assert_eq!(head.framing, Framing::Length(2));
    assert!(head.keep_alive);
    let (data, _) = body_of(&mut conn, head.framing).await.unwrap();
    assert_eq!(data, "ok");
    assert!(conn.is_drained());
}

#[tokio::test]
async fn bodies_of_known_length_say_it_and_replace_the_clients_framing() {
    let mut req = request(Method::POST, full("hello"));
    req.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
    req.headers_mut().insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    let (got, head, _) = roundtrip(
        req,
        |g| g.ends_with(b"hello"),
        b"HTTP/1.1 204 No Content\r\n\r\n",
    )
    .await;
    assert_eq!(
        got,
        "POST /a?b=1 HTTP/1.1\r\nhost: svc\r\ncontent-length: 5\r\n\r\nhello"
    );
    assert_eq!(head.unwrap().framing, Framing::Length(0));

    let (got, _, _) = roundtrip(
        request(Method::PUT, empty()),
        head_done,
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    assert!(got.ends_with("content-length: 0\r\n\r\n"), "{got}");

    let big = Bytes::from(vec![b'x'; COALESCE + 1]);
    let (got, head, _) = roundtrip(
        request(Method::POST, full(big.clone())),
        |g| g.len() > COALESCE && g.ends_with(b"x"),
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    assert!(got.contains(&format!("content-length: {}\r\n\r\nxxx", COALESCE + 1)));
    assert!(head.is_ok());
}

/// A streamed body of unknown length, with trailers.
fn streamed(chunks: &[&'static str], trailer: Option<(&'static str, &'static str)>) -> Body {
    let mut frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = chunks
        .iter()
        .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
        .collect();
    if let Some((name, value)) = trailer {
        let mut map = HeaderMap::new();
        map.insert(name, HeaderValue::from_static(value));
        frames.push(Ok(Frame::trailers(map)));
    }
    boxed(http_body_util::StreamBody::new(futures::stream::iter(
        frames,
    )))
}

#[tokio::test]
async fn streamed_bodies_of_unknown_length_go_chunked_with_their_trailers() {
    let (got, head, _) = roundtrip(
        request(
            Method::POST,
            streamed(&["abc", "", "0123456789abcdef"], Some(("x-sum", "7"))),
        ),
        |g| g.ends_with(b"\r\n\r\n") && g.windows(3).any(|w| w == b"\r\n0"),
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(
        got,
        "POST /a?b=1 HTTP/1.1\r\nhost: svc\r\ntransfer-encoding: chunked\r\n\r\n\
         3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nx-sum: 7\r\n\r\n"
    );
    assert!(head.is_ok());
}

#[tokio::test]
async fn a_streamed_body_longer_or_shorter_than_it_said_fails() {
    for (chunks, says) in [(&["abcd"][..], 3u64), (&["ab"][..], 3)] {
        let (mut conn, _server) = pair().await;
        let body = http_body_util::StreamBody::new(futures::stream::iter(
            chunks
                .iter()
                .map(|c| {
                    Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(c.as_bytes())))
                })
                .collect::<Vec<_>>(),
        ));
        let mut sent = false;
        let result = stream_body(
            &mut conn.io,
            &mut conn.out,
            boxed(body),
            Some(says),
            &mut sent,
        )
        .await;
        assert!(matches!(result, Err(Error::RequestBody(_))), "{chunks:?}");
    }
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let (_, head, mut conn) = roundtrip(
        request(Method::GET, empty()),
        head_done,
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nz",
    )
    .await;
    let head = head.unwrap();
    assert_eq!(head.response.status(), StatusCode::OK);
    assert!(!head.response.headers().contains_key("link"));
    assert_eq!(body_of(&mut conn, head.framing).await.unwrap().0, "z");
}

#[tokio::test]
async fn a_101_to_an_upgrade_hands_over_the_socket_and_early_bytes() {
    let mut req = request(Method::GET, empty());
    req.headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    let (_, head, conn) = roundtrip(
        req,
        head_done,
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\nearly",
    )
    .await;
    assert_eq!(
        head.unwrap().response.status(),
        StatusCode::SWITCHING_PROTOCOLS
    );
    let (_, early) = conn.into_tunnel().take().unwrap();
    assert_eq!(early, "early");

    let (_, head, _) = roundtrip(
        request(Method::GET, empty()),
        head_done,
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    )
    .await;
    assert!(matches!(
        head,
        Err(Failed {
            error: Error::Invalid(_),
            sent: true
        })
    ));
}

#[tokio::test]
async fn broken_heads_are_errors() {
    for answer in [
        &b"HTTP/1.1 2x0 OK\r\n\r\n"[..],
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
    ] {
        let (_, head, _) = roundtrip(request(Method::GET, empty()), head_done, answer).await;
        assert!(
            matches!(
                head,
                Err(Failed {
                    error: Error::Invalid(_),
                    sent: true
                })
            ),
            "{:?}: {head:?}",
            String::from_utf8_lossy(answer)
        );
    }
    let mut many = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..=MAX_HEADERS {
        many.push_str(&format!("x-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let many: &'static [u8] = Box::leak(many.into_bytes().into_boxed_slice());
    let (_, head, _) = roundtrip(request(Method::GET, empty()), head_done, many).await;
    assert!(is_invalid(&head), "{head:?}");
}

#[tokio::test]
async fn a_head_that_never_ends_is_cut_at_the_limit() {
    let (mut conn, mut server) = pair().await;
    let endpoint = async move {
        received(&mut server, head_done).await;
        let filler = format!("x-fill: {}\r\n", "y".repeat(1000));
        server.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        // Bounded: the client gives up after MAX_HEAD.
        for _ in 0..(MAX_HEAD / filler.len() + 2) {
            if server.write_all(filler.as_bytes()).await.is_err() {
                break;
            }
        }
        server
    };
    let mut req = request(Method::GET, empty());
    let (_server, head) = tokio::join!(endpoint, conn.exchange(&mut req, "svc"));
    assert!(is_invalid(&head), "{head:?}");
}

#[tokio::test]
async fn a_connection_closed_before_or_inside_the_response_is_an_error() {
    let (head, _) = answer_and_close(b"").await;
    assert!(matches!(
        head,
        Err(Failed {
            error: Error::Closed,
            sent: true
        })
    ));

    let (head, mut conn) =
        answer_and_close(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc").await;
    let head = head.unwrap();
    assert!(matches!(
        body_of(&mut conn, head.framing).await,
        Err(Error::Closed)
    ));
}

#[tokio::test]
async fn a_body_without_length_runs_until_close_and_ends_the_connection() {
    let (head, mut conn) = answer_and_close(b"HTTP/1.1 200 OK\r\n\r\nuntil the end").await;
    let head = head.unwrap();
    assert_eq!(head.framing, Framing::Close);
    assert!(!head.keep_alive);
    assert_eq!(
        body_of(&mut conn, head.framing).await.unwrap().0,
        "until the end"
    );
}

#[test]
fn framing_follows_rfc_9112() {
    let framed = |pairs: &[(&str, &str)]| {
        let mut framed = Framed::default();
        for (name, value) in pairs {
            match *name {
                "content-length" => framed.content_length(value.as_bytes()),
                _ => framed.transfer_encoding(value.as_bytes()),
            }
        }
        framed
    };
    let ok = StatusCode::OK;
    type Case = (Method, StatusCode, Framed, Option<(Framing, bool)>);
    let cases: [Case; 13] = [
        (
            Method::HEAD,
            ok,
            framed(&[("content-length", "5")]),
            Some((Framing::Length(0), true)),
        ),
        (
            Method::GET,
            StatusCode::NO_CONTENT,
            framed(&[]),
            Some((Framing::Length(0), true)),
        ),
        (
            Method::GET,
            StatusCode::NOT_MODIFIED,
            framed(&[("content-length", "5")]),
            Some((Framing::Length(0), true)),
        ),
        (
            Method::GET,
            ok,
            framed(&[("transfer-encoding", "gzip, chunked")]),
            Some((Framing::Chunked(Chunk::Size), true)),
        ),
        (
            Method::GET,
            ok,
            framed(&[("transfer-encoding", "chunked"), ("content-length", "5")]),
            Some((Framing::Chunked(Chunk::Size), false)),
        ),
        (
            Method::GET,
            ok,
            framed(&[("transfer-encoding", "chunked, gzip")]),
            Some((Framing::Close, false)),
        ),
        (
            Method::GET,
            ok,
            framed(&[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "gzip"),
            ]),
            Some((Framing::Close, false)),
        ),
        (
            Method::GET,
            ok,
            framed(&[("content-length", "5")]),
            Some((Framing::Length(5), true)),
        ),
        (
            Method::GET,
            ok,
            framed(&[("content-length", "5, 5"), ("content-length", "5")]),
            Some((Framing::Length(5), true)),
        ),
        (
            Method::GET,
            ok,
            framed(&[("content-length", "5"), ("content-length", "6")]),
            None,
        ),
        (Method::GET, ok, framed(&[("content-length", "+5")]), None),
        (
            Method::GET,
            ok,
            framed(&[("content-length", "99999999999999999999")]),
            None,
        ),
        (Method::GET, ok, framed(&[]), Some((Framing::Close, false))),
    ];
    for (method, status, framed, want) in cases {
        let got = body::framing(&method, status, &framed).ok();
        assert_eq!(got, want, "{method} {status} {framed:?}");
    }
}

#[tokio::test]
async fn the_connections_own_fields_are_consumed_and_the_rest_kept() {
    let (_, head, _) = roundtrip(
        request(Method::GET, empty()),
        head_done,
        b"HTTP/1.1 200 OK\r\nServer: x\r\nDATE: d\r\ncontent-TYPE: t\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nX-Other: o\r\n\r\n0\r\n\r\n",
    )
    .await;
    let head = head.unwrap();
    let headers = head.response.headers();
    let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
    assert_eq!(names, ["server", "date", "content-type", "x-other"]);
    assert_eq!(headers["server"], "x");
    assert_eq!(headers["date"], "d");
    assert_eq!(headers["content-type"], "t");
    assert_eq!(head.framing, Framing::Chunked(Chunk::Size));

    // A `Connection` naming other fields stays, for the proxy to act on.
    let (_, head, _) = roundtrip(
        request(Method::GET, empty()),
        head_done,
        b"HTTP/1.1 200 OK\r\nconnection: x-secret, close\r\nx-secret: s\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    let head = head.unwrap();
    assert_eq!(head.response.headers()["connection"], "x-secret, close");
    assert!(!head.keep_alive);
}

#[tokio::test]
async fn a_request_without_host_gets_the_given_one_on_the_wire() {
    let mut req = request(Method::GET, empty());
    req.headers_mut().remove(header::HOST);
    let (got, _, _) = roundtrip(req, head_done, b"HTTP/1.1 204 No Content\r\n\r\n").await;
    assert_eq!(got, "GET /a?b=1 HTTP/1.1\r\nhost: svc\r\n\r\n");
}

#[tokio::test]
async fn connection_close_and_http_1_0_decide_reuse() {
    for (answer, reuse) in [
        (
            &b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"[..],
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\nconnection: x-custom, Close\r\ncontent-length: 0\r\n\r\n",
            false,
        ),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", false),
        (
            b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
            true,
        ),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", true),
    ] {
        let answer: &'static [u8] = Box::leak(answer.to_vec().into_boxed_slice());
        let (_, head, _) = roundtrip(request(Method::GET, empty()), head_done, answer).await;
        assert_eq!(
            head.unwrap().keep_alive,
            reuse,
            "{}",
            String::from_utf8_lossy(answer)
        );
    }
}

/// Decodes `wire` as a chunked body delivered in two pieces split at
/// `at`, straight from the buffer.
async fn chunked_split(wire: &[u8], at: usize) -> Result<(Vec<u8>, Option<HeaderMap>), Error> {
    let (mut conn, _server) = pair().await;
    let mut chunk = Chunk::Size;
    let mut data = Vec::new();
    let mut trailers = None;
    conn.buf.extend_from_slice(&wire[..at]);
    let mut rest = Some(&wire[at..]);
    loop {
        match conn.step_chunked(&mut chunk)? {
            body::Step::Frame(frame) => match frame.into_data() {
                Ok(bytes) => data.extend_from_slice(&bytes),
                Err(frame) => trailers = frame.into_trailers().ok(),
            },
            body::Step::Again => {}
            body::Step::End => return Ok((data, trailers)),
            body::Step::More => match rest.take() {
                Some(bytes) => conn.buf.extend_from_slice(bytes),
                None => return Err(Error::Closed),
            },
        }
    }
}

#[tokio::test]
async fn chunked_bodies_decode_however_they_are_split() {
    let wire = b"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nx-sum: 7\r\n\r\n";
    for at in 0..=wire.len() {
        let (data, trailers) = chunked_split(wire, at).await.unwrap();
        assert_eq!(data, b"abc0123456789abcdef", "split at {at}");
        assert_eq!(trailers.unwrap()["x-sum"], "7", "split at {at}");
    }
    let plain = b"2\r\nok\r\n0\r\n\r\n";
    for at in 0..=plain.len() {
        let (data, trailers) = chunked_split(plain, at).await.unwrap();
        assert_eq!(data, b"ok");
        assert!(trailers.is_none());
    }
}

#[tokio::test]
async fn broken_chunked_bodies_are_errors() {
    for wire in [
        &b"zz\r\nab\r\n0\r\n\r\n"[..],
        b"2\r\nabXX0\r\n\r\n",
        b"2\r\nab\r\n0\r\nbad trailer\r\n\r\n",
        b"11111111111111111\r\n",
    ] {
        let got = chunked_split(wire, wire.len()).await;
        assert!(
            matches!(got, Err(Error::Invalid(_))),
            "{:?}: {got:?}",
            String::from_utf8_lossy(wire)
        );
    }
    // A size line whose extension never ends.
    let mut endless = b"1;".to_vec();
    endless.resize(body::MAX_CHUNK_LINE + 1, b'e');
    assert!(matches!(
        chunked_split(&endless, endless.len()).await,
        Err(Error::Invalid(_))
    ));
}

#[tokio::test]
async fn a_chunked_response_reads_off_the_socket() {
    let (_, head, mut conn) = roundtrip(
        request(Method::GET, empty()),
        head_done,
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let head = head.unwrap();
    assert!(head.keep_alive);
    let (data, trailers) = body_of(&mut conn, head.framing).await.unwrap();
    assert_eq!(data, "hello");
    assert!(trailers.is_none());
    assert!(conn.is_drained());
}

#[tokio::test]
async fn an_idle_connection_is_unusable_once_closed_or_spoken_on() {
    let (mut conn, server) = pair().await;
    assert!(conn.is_idle_usable());
    assert!(conn.is_idle_usable());
    drop(server);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while conn.is_idle_usable() {
        assert!(tokio::time::Instant::now() < deadline, "the close unseen");
        tokio::task::yield_now().await;
    }

    let (mut conn, mut server) = pair().await;
    server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while conn.is_idle_usable() {
        assert!(tokio::time::Instant::now() < deadline, "the bytes unseen");
        tokio::task::yield_now().await;
    }
}

#[test]
fn decimals_are_written_whole() {
    for n in [0u64, 7, 10, 12345, u64::MAX] {
        let mut out = Vec::new();
        push_decimal(&mut out, n);
        assert_eq!(out, n.to_string().as_bytes());
    }
}

#[tokio::test]
async fn a_read_that_empties_the_socket_drops_its_flag_but_not_a_close() {
    let (_, head, mut conn) = roundtrip(
        request(Method::GET, empty()),
        head_done,
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    )
    .await;
    body_of(&mut conn, head.unwrap().framing).await.unwrap();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(conn.io.poll_read_ready(&mut cx).is_pending());
    assert!(conn.is_idle_usable());

    // The endpoint answers and closes at once: the close may come with the
    // answer, and must outlive the dropped flag.
    let (head, mut conn) =
        answer_and_close(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    body_of(&mut conn, head.unwrap().framing).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while conn.is_idle_usable() {
        assert!(tokio::time::Instant::now() < deadline, "the close was lost");
        tokio::task::yield_now().await;
    }
}

#[test]
fn the_case_blind_name_compare_agrees_with_the_standard_one_on_tokens() {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    for b in (0..=255u8).filter(|b| token(*b)) {
        for l in (b'a'..=b'z').chain([b'-']) {
            assert_eq!(
                is(&[b], &[l]),
                b.eq_ignore_ascii_case(&l),
                "{b:#x} against {l:#x}"
            );
        }
    }
    assert!(is(b"Content-Length", b"content-length"));
    assert!(!is(b"content-lengtx", b"content-length"));
    assert!(!is(b"content-len", b"content-length"));
}

/// A streamed upload far larger than the socket buffers: 64 MiB in 64 KiB
/// chunks, unless the exchange stops sending first.
fn large_upload() -> Body {
    let chunk = Bytes::from(vec![b'u'; 64 * 1024]);
    boxed(http_body_util::StreamBody::new(futures::stream::iter(
        (0..1024).map(move |_| Ok::<_, std::convert::Infallible>(Frame::data(chunk.clone()))),
    )))
}

/// An endpoint that reads a request head, writes `answer` (if any) and
/// drops the connection with the body unread, which resets it.
async fn refuse_upload(mut server: TcpStream, answer: &'static [u8]) {
    received(&mut server, head_done).await;
    server.write_all(answer).await.unwrap();
}

#[tokio::test]
async fn an_answer_before_the_upload_ends_is_the_response() {
    let (mut conn, server) = pair().await;
    let mut req = request(Method::POST, large_upload());
    let (result, ()) = tokio::join!(
        conn.exchange(&mut req, "svc"),
        refuse_upload(
            server,
            b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 4\r\n\r\nbig!"
        )
    );
    let head = result.expect("the endpoint's answer, not the failed write");
    assert_eq!(head.response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!head.keep_alive, "the request was cut short");
    assert_eq!(body_of(&mut conn, head.framing).await.unwrap().0, "big!");
}

#[tokio::test]
async fn a_reset_upload_without_an_answer_fails_as_sent() {
    let (mut conn, server) = pair().await;
    let mut req = request(Method::POST, large_upload());
    let (result, ()) = tokio::join!(conn.exchange(&mut req, "svc"), refuse_upload(server, b""));
    let failed = result.expect_err("nothing to answer with");
    assert!(failed.sent);
    assert!(matches!(failed.error, Error::Io(_)), "{:?}", failed.error);
}

#[tokio::test]
async fn a_refusal_from_an_endpoint_that_neither_reads_nor_closes_comes_at_once() {
    let (mut conn, mut server) = pair().await;
    let mut req = request(Method::POST, large_upload());
    let refuse = async {
        received(&mut server, head_done).await;
        server
            .write_all(b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 4\r\n\r\nbig!")
            .await
            .unwrap();
    };
    let (result, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(30), conn.exchange(&mut req, "svc")),
        refuse
    );
    let head = result
        .expect("the answer while the socket stays open")
        .expect("the endpoint's answer");
    assert_eq!(head.response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!head.keep_alive, "the request was cut short");
    assert_eq!(body_of(&mut conn, head.framing).await.unwrap().0, "big!");
    drop(server);
}

#[tokio::test]
async fn a_success_before_the_upload_ends_still_gets_the_whole_body() {
    let (mut conn, mut server) = pair().await;
    let mut req = request(Method::POST, large_upload());
    // Answers at once, then reads the chunked body to its last chunk.
    let answer_then_read = async {
        let head = received(&mut server, head_done).await;
        server
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        let mut tail = head.into_bytes();
        let mut total = tail.len();
        let mut buf = vec![0u8; 64 * 1024];
        while !tail.ends_with(b"\r\n0\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(30), server.read(&mut buf))
                .await
                .expect("the body in time")
                .unwrap();
            assert!(n > 0, "closed after {total} bytes");
            total += n;
            tail.extend_from_slice(&buf[..n]);
            let keep = tail.len().saturating_sub(16);
            tail.drain(..keep);
        }
        total
    };
    let (result, total) = tokio::join!(conn.exchange(&mut req, "svc"), answer_then_read);
    let head = result.expect("the endpoint's answer");
    assert_eq!(head.response.status(), StatusCode::OK);
    assert!(head.keep_alive, "the body went whole");
    assert!(total > 64 << 20, "the whole body arrived: {total} bytes");
    assert_eq!(body_of(&mut conn, head.framing).await.unwrap().0, "ok");
}
