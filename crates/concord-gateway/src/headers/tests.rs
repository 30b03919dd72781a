use concord_api::gateway::HeaderRules as Spec;
use http::HeaderMap;

use super::*;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn hop_by_hop_headers_and_those_named_in_connection_go() {
    let mut h = map(&[
        ("connection", "keep-alive, X-Secret"),
        ("connection", "x-other"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("te", "gzip"),
        ("trailer", "x-checksum"),
        ("proxy-authorization", "Basic eA=="),
        ("x-secret", "s"),
        ("x-other", "o"),
        ("x-kept", "k"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
    ]);
    strip_hop_by_hop(&mut h);
    let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    left.sort();
    assert_eq!(left, ["traceparent", "x-kept"]);
}

#[test]
fn a_plain_keep_alive_or_close_goes_and_names_nothing() {
    for value in ["keep-alive", "Keep-Alive", "close"] {
        let mut h = map(&[
            ("content-length", "2"),
            ("connection", value),
            ("keep-alive", "timeout=5"),
            ("close", "not a hop-by-hop header"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["close", "content-length"], "Connection: {value}");
    }
    // Beside another name, the value is parsed and the name goes.
    let mut h = map(&[("connection", "close, x-a"), ("x-a", "1"), ("x-b", "2")]);
    strip_hop_by_hop(&mut h);
    assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-b"]);
}

#[test]
fn a_message_without_hop_by_hop_headers_is_left_alone() {
    let mut h = map(&[("host", "shop"), ("x-a", "1"), ("x-a", "2")]);
    let before = h.clone();
    strip_hop_by_hop(&mut h);
    assert_eq!(h, before);
}

#[test]
fn te_trailers_survives_for_grpc() {
    let mut h = map(&[("te", "trailers")]);
    strip_hop_by_hop(&mut h);
    assert_eq!(h.get("te").unwrap(), "trailers");
}

#[test]
fn upgrades_are_recognised() {
    assert!(is_upgrade(&map(&[
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket")
    ])));
    assert!(!is_upgrade(&map(&[("upgrade", "websocket")])));
    assert!(!is_upgrade(&map(&[("connection", "upgrade")])));
}

#[test]
fn forwarded_for_appends_and_proto_is_set() {
    let client = Peer::new("10.0.0.9:5000".parse().unwrap());
    let mut h = HeaderMap::new();
    set_forwarded(&mut h, &client, "http");
    assert_eq!(h.get(&X_FORWARDED_FOR).unwrap(), "10.0.0.9");
    assert_eq!(h.get(&X_FORWARDED_PROTO).unwrap(), "http");

    let mut h = map(&[
        ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
        ("x-forwarded-for", "3.3.3.3"),
        ("x-forwarded-proto", "https"),
    ]);
    set_forwarded(&mut h, &Peer::new("[::1]:5000".parse().unwrap()), "http");
    assert_eq!(
        h.get_all(&X_FORWARDED_FOR).iter().collect::<Vec<_>>(),
        ["1.1.1.1, 2.2.2.2, 3.3.3.3, ::1"]
    );
    assert_eq!(h.get(&X_FORWARDED_PROTO).unwrap(), "http");

    // A blank one is replaced by the client alone.
    let mut h = map(&[("x-forwarded-for", " ")]);
    set_forwarded(&mut h, &client, "http");
    assert_eq!(
        h.get_all(&X_FORWARDED_FOR).iter().collect::<Vec<_>>(),
        ["10.0.0.9"]
    );
}

#[test]
fn request_ids_pass_through_or_are_made() {
    let mut given = map(&[("x-request-id", "abc-123"), ("x-request-id", "again")]);
    assert_eq!(request_id(&mut given), "abc-123");
    assert_eq!(
        given.get_all(&X_REQUEST_ID).iter().collect::<Vec<_>>(),
        ["abc-123"],
        "the headers hold exactly the id"
    );
    let mut none = HeaderMap::new();
    let made = request_id(&mut none);
    assert_eq!(none.get(&X_REQUEST_ID), Some(&made));
    let made = made.to_str().unwrap();
    assert_eq!(made.len(), 32);
    assert!(made.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(
        request_id(&mut HeaderMap::new()),
        request_id(&mut HeaderMap::new())
    );
    let mut empty = map(&[("x-request-id", "")]);
    let made = request_id(&mut empty);
    assert_eq!(made.len(), 32);
    assert_eq!(empty.get(&X_REQUEST_ID), Some(&made));
    let long = "x".repeat(201);
    let mut long = map(&[("x-request-id", long.as_str())]);
    assert_eq!(request_id(&mut long).len(), 32);
}

#[test]
fn request_ids_are_never_indexed_by_hpack() {
    for mut headers in [map(&[("x-request-id", "abc-123")]), HeaderMap::new()] {
        let id = request_id(&mut headers);
        assert!(id.is_sensitive(), "the id returned, for the response");
        let sent = headers.get(&X_REQUEST_ID).unwrap();
        assert!(sent.is_sensitive(), "the id that goes upstream");
    }
}

#[test]
fn rules_remove_then_add_replacing() {
    let spec = Spec {
        add: [("x-from".to_owned(), "gw".to_owned())].into(),
        remove: vec!["x-debug".to_owned(), "x-from".to_owned()],
    };
    let rules = HeaderRules::compile("request_headers", Some(&spec)).unwrap();
    let mut h = map(&[
        ("x-debug", "1"),
        ("x-from", "client"),
        ("x-from", "again"),
        ("x-kept", "k"),
    ]);
    rules.apply(&mut h);
    assert!(h.get("x-debug").is_none());
    assert_eq!(h.get_all("x-from").iter().collect::<Vec<_>>(), ["gw"]);
    assert_eq!(h.get("x-kept").unwrap(), "k");
    assert_eq!(
        HeaderRules::compile("x", None).unwrap(),
        HeaderRules::default()
    );
}

#[test]
fn bad_rules_name_the_field() {
    let spec = Spec {
        add: [("bad name".to_owned(), "v".to_owned())].into(),
        remove: vec![],
    };
    let err = HeaderRules::compile("response_headers", Some(&spec)).unwrap_err();
    assert!(
        err.to_string().starts_with("response_headers.add:"),
        "{err}"
    );
    let spec = Spec {
        add: [("x-ok".to_owned(), "line\nbreak".to_owned())].into(),
        remove: vec![],
    };
    assert!(HeaderRules::compile("request_headers", Some(&spec)).is_err());
}

#[test]
fn every_hop_by_hop_name_passes_the_length_filter() {
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        assert_eq!(hop_by_hop_index(name.as_str()), Some(i), "{name}");
    }
    for name in [
        "host",
        "user-agent",
        "content-length",
        "x-forwarded-for",
        "tee",
    ] {
        assert_eq!(hop_by_hop_index(name), None, "{name}");
    }
}
