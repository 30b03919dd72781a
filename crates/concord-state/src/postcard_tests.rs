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
