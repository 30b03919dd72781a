//! Parsers for the cluster flags of `concord server`: `--initial-cluster`,
//! `--peer-route` and `--advertise-peer-addr`. Errors name the bad piece so a
//! typo in a long member list is easy to find.

use std::collections::BTreeMap;

use concord_api::validate;

/// `1=host:port,2=host:port,...` for `--initial-cluster`.
pub fn parse_initial_cluster(s: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut members = BTreeMap::new();
    for part in s.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!(
                "expected ID=HOST:PORT entries separated by commas, e.g. 1=10.0.0.1:7601,2=10.0.0.2:7601; got {s:?}"
            ));
        }
        let (id, addr) = parse_id_addr(part)?;
        if let Some(prev) = members.insert(id, addr) {
            return Err(format!("node {id} is listed twice (first at {prev})"));
        }
    }
    Ok(members)
}

/// `ID=HOST:PORT` for `--peer-route`.
pub fn parse_peer_route(s: &str) -> Result<(u64, String), String> {
    parse_id_addr(s.trim())
}

/// `HOST:PORT` kept as written (a name is resolved by whoever dials it).
pub fn parse_host_port(s: &str) -> Result<String, String> {
    let s = s.trim();
    validate::host_port("address", s).map_err(|e| e.message)?;
    Ok(s.to_owned())
}

fn parse_id_addr(part: &str) -> Result<(u64, String), String> {
    let Some((id, addr)) = part.split_once('=') else {
        return Err(format!("expected ID=HOST:PORT, got {part:?}"));
    };
    let id = match id.trim().parse::<u64>() {
        Ok(id) if id > 0 => id,
        _ => {
            return Err(format!(
                "{part:?}: the node id must be a number greater than 0"
            ));
        }
    };
    let addr = addr.trim();
    validate::host_port("address", addr).map_err(|e| format!("{part:?}: {}", e.message))?;
    Ok((id, addr.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_lists() {
        let m = parse_initial_cluster("1=127.0.0.1:7611, 2=127.0.0.1:7621,3=node3:7631").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[&2], "127.0.0.1:7621");
        assert_eq!(m[&3], "node3:7631");
        assert_eq!(parse_initial_cluster("7=[::1]:1").unwrap()[&7], "[::1]:1");
        for (bad, says) in [
            ("", "separated by commas"),
            ("1=a:1,", "separated by commas"),
            ("1:a:1", "ID=HOST:PORT"),
            ("0=a:1", "greater than 0"),
            ("x=a:1", "greater than 0"),
            ("1=a", "port is missing"),
            ("1=http://a:1", "no scheme"),
            ("1=a:1,1=b:2", "listed twice"),
        ] {
            let e = parse_initial_cluster(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn peer_routes_and_addresses() {
        assert_eq!(
            parse_peer_route("2=127.0.0.1:9000").unwrap(),
            (2, "127.0.0.1:9000".to_owned())
        );
        assert!(parse_peer_route("2").is_err());
        assert_eq!(parse_host_port("10.0.0.1:7601").unwrap(), "10.0.0.1:7601");
        assert!(parse_host_port("10.0.0.1").is_err());
    }
}
