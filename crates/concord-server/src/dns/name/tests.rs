use hickory_proto::rr::Name;

use super::*;

fn parse(name: &str) -> Parsed {
    let domain = Name::from_ascii("concord.").unwrap();
    parse_query_name(&Name::from_ascii(name).unwrap(), &domain)
}

fn service(namespace: &str, service: &str, tag: Option<&str>) -> Parsed {
    Parsed::Service(ServiceQuery {
        namespace: namespace.to_owned(),
        service: service.to_owned(),
        tag: tag.map(str::to_owned),
    })
}

#[test]
fn plain_namespace_and_tag_forms() {
    assert_eq!(
        parse("web.service.concord."),
        service("default", "web", None)
    );
    assert_eq!(
        parse("web.prod.service.concord."),
        Parsed::ServiceOrTag {
            first: "web".into(),
            second: "prod".into()
        }
    );
    assert_eq!(
        parse("primary.web.prod.service.concord."),
        service("prod", "web", Some("primary"))
    );
}

#[test]
fn two_labels_that_cannot_be_a_service_are_a_tag() {
    assert_eq!(
        parse("v1_2.web.service.concord."),
        service("default", "web", Some("v1_2"))
    );
    assert_eq!(parse("v1_2.we_b.service.concord."), Parsed::NotFound);
}

#[test]
fn rfc2782_forms() {
    assert_eq!(
        parse("_web._tcp.service.concord."),
        service("default", "web", None)
    );
    assert_eq!(
        parse("_web._tcp.prod.service.concord."),
        service("prod", "web", None)
    );
    assert_eq!(
        parse("_web._primary.service.concord."),
        service("default", "web", Some("primary"))
    );
    assert_eq!(
        parse("_web._primary.prod.service.concord."),
        service("prod", "web", Some("primary"))
    );
    assert_eq!(parse("_w_b._tcp.service.concord."), Parsed::NotFound);
    assert_eq!(parse("_web._.service.concord."), Parsed::NotFound);
}

#[test]
fn names_are_case_insensitive() {
    assert_eq!(
        parse("Primary.WEB.Prod.SERVICE.Concord."),
        service("prod", "web", Some("primary"))
    );
    assert_eq!(parse("CONCORD."), Parsed::Apex);
}

#[test]
fn instance_names() {
    assert_eq!(
        parse("x--57.web.default.instance.concord."),
        Parsed::Instance {
            label: "x--57".into(),
            service: "web".into(),
            namespace: "default".into()
        }
    );
    assert_eq!(parse("web.default.instance.concord."), Parsed::NotFound);
    assert_eq!(parse("instance.concord."), Parsed::EmptyNonTerminal);
}

#[test]
fn zone_structure() {
    assert_eq!(parse("concord."), Parsed::Apex);
    assert_eq!(parse("service.concord."), Parsed::EmptyNonTerminal);
    assert_eq!(parse("example.com."), Parsed::OutOfZone);
    assert_eq!(parse("concord.com."), Parsed::OutOfZone);
    assert_eq!(parse("."), Parsed::OutOfZone);
    assert_eq!(parse("web.concord."), Parsed::NotFound);
    assert_eq!(parse("a.b.c.d.service.concord."), Parsed::NotFound);
    assert_eq!(parse("*.service.concord."), Parsed::NotFound);
}

#[test]
fn odd_label_bytes_are_not_found_not_a_panic() {
    let domain = Name::from_ascii("concord.").unwrap();
    for raw in [&b"w\xffb"[..], b"a.b", b"", b"\0", b"-"] {
        let Ok(name) = Name::from_labels([raw, &b"service"[..], &b"concord"[..]]) else {
            continue;
        };
        let parsed = parse_query_name(&name, &domain);
        assert!(
            matches!(parsed, Parsed::NotFound | Parsed::Service(_)),
            "{raw:?}: {parsed:?}"
        );
    }
    let longest = "a".repeat(63);
    assert_eq!(
        parse(&format!("{longest}.service.concord.")),
        service("default", &longest, None)
    );
}

/// The encoding's inverse, to show it is reversible for the plain and hex forms.
fn decode(label: &str) -> Option<String> {
    match label.strip_prefix("x--") {
        Some(hex) => (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()
            .and_then(|b| String::from_utf8(b).ok()),
        None if label.contains("--") => None,
        None => Some(label.to_owned()),
    }
}

#[test]
fn instance_labels_are_valid_distinct_and_reversible() {
    let ids = [
        "web-1",
        "Web-1",
        "WEB-1",
        "web_1",
        "10.0.0.1:8080",
        "x--776562",
        "a--b",
        "-web",
        "web-",
        "0",
        "web",
    ];
    let labels: Vec<String> = ids.iter().map(|id| instance_label(id)).collect();
    for (id, label) in ids.iter().zip(&labels) {
        assert!(label.len() <= 63, "{label}");
        assert!(
            label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{label}"
        );
        assert!(!label.starts_with('-') && !label.ends_with('-'), "{label}");
        assert_eq!(decode(label).as_deref(), Some(*id));
    }
    let distinct: std::collections::HashSet<&String> = labels.iter().collect();
    assert_eq!(distinct.len(), ids.len());
    assert_eq!(instance_label("web-1"), "web-1");
    assert_eq!(instance_label("Web"), "x--576562");
}

#[test]
fn long_ids_hash_into_one_label() {
    let a = "A".repeat(128);
    let b = format!("{}a", "A".repeat(127));
    let (la, lb) = (instance_label(&a), instance_label(&b));
    assert!(la.starts_with("h--") && la.len() == 35, "{la}");
    assert_ne!(la, lb);
    assert_eq!(la, instance_label(&a));
    // 30 bytes still fit the hex form, 31 do not.
    assert!(instance_label(&"A".repeat(30)).starts_with("x--"));
    assert!(instance_label(&"A".repeat(31)).starts_with("h--"));
    // A long plain id stays plain.
    assert_eq!(instance_label(&"a".repeat(63)), "a".repeat(63));
}
