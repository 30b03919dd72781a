//! Everything the log, snapshots and outcomes carry must round-trip through postcard,
//! which cannot skip absent fields: these tests catch a `skip_serializing_if` creeping
//! back into an embedded API type.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::testutil::{register, spec};
use crate::{Command, Event, EventKind, Outcome};
use concord_api::registry::Instance;
use concord_api::watch::ServiceEventKind;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let bytes = postcard::to_stdvec(value).expect("encode");
    let back: T = postcard::from_bytes(&bytes).expect("decode");
    assert_eq!(&back, value);
}

fn instance(ttl_secs: Option<u32>) -> Instance {
    let s = spec("10.0.0.1", ttl_secs);
    Instance {
        id: "1".to_owned(),
        address: s.address,
        port: s.port,
        tags: s.tags,
        meta: s.meta,
        weight: s.weight,
        ttl_secs,
        status: concord_api::registry::HealthStatus::Passing,
        checks: Vec::new(),
        maintenance: None,
    }
}

#[test]
fn types_holding_instances_round_trip_through_postcard() {
    for ttl in [None, Some(7)] {
        round_trip(&register("web", "1", "h", ttl));
        round_trip(&vec![
            register("web", "1", "h", ttl),
            Command::LeaseGrant { ttl_secs: 3 },
        ]);
        round_trip(&Outcome::Registered {
            revision: 4,
            instance: instance(ttl),
            lease: ttl.map(u64::from),
        });
        round_trip(&Event {
            revision: 4,
            kind: EventKind::Service {
                kind: ServiceEventKind::Register,
                namespace: "default".to_owned(),
                service: "web".to_owned(),
                instance: instance(ttl),
            },
        });
        let mut sm = crate::testutil::machine();
        sm.apply(register("web", "1", "h", ttl));
        round_trip(sm.instance("default", "web", "1").expect("registered"));
    }
}

/// Values are encoded as byte strings (`serde_bytes`), which postcard writes exactly
/// like the element-by-element `Vec<u8>` of earlier versions: logs, snapshots and
/// relay messages written before still decode, and newer ones decode in older code.
#[test]
fn byte_values_keep_the_sequence_encoding() {
    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Plain {
        value: Vec<u8>,
        create_revision: u64,
        mod_revision: u64,
        version: u64,
        lease: Option<u64>,
    }
    let value: Vec<u8> = (0..=255u8).chain(0..44).collect();
    let entry = crate::KvEntry {
        value: value.clone(),
        create_revision: 3,
        mod_revision: 9,
        version: 4,
        lease: Some(2),
    };
    let plain = Plain {
        value,
        create_revision: 3,
        mod_revision: 9,
        version: 4,
        lease: Some(2),
    };
    let bytes = postcard::to_stdvec(&entry).expect("encode");
    assert_eq!(bytes, postcard::to_stdvec(&plain).expect("encode"));
    let back: crate::KvEntry = postcard::from_bytes(&bytes).expect("decode");
    assert_eq!(back, entry);
    let old: Plain = postcard::from_bytes(&bytes).expect("decode");
    assert_eq!(old, plain);

    let put = Command::Put {
        key: "k".to_owned(),
        value: b"v1".to_vec(),
        lease: None,
        cas: Some(0),
    };
    round_trip(&put);
    round_trip(&Event {
        revision: 5,
        kind: EventKind::Kv {
            kind: concord_api::watch::KvEventKind::Put,
            key: "k".to_owned(),
            value: vec![0, 1, 255],
        },
    });
}

/// JSON (used by tests and tools) keeps writing values as arrays of numbers.
#[test]
fn byte_values_stay_arrays_in_json() {
    let put = Command::Put {
        key: "k".to_owned(),
        value: vec![1, 2],
        lease: None,
        cas: None,
    };
    let json = serde_json::to_value(&put).expect("encode");
    assert_eq!(json["Put"]["value"], serde_json::json!([1, 2]));
    let back: Command = serde_json::from_value(json).expect("decode");
    assert_eq!(back, put);
}
