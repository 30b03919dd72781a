use super::*;

const KEYS: u64 = 10_000;

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("endpoint-{i}")).collect()
}

fn ring(ids: &[String], weight: u32) -> Ring {
    let members: Vec<(&str, u32)> = ids.iter().map(|id| (id.as_str(), weight)).collect();
    Ring::new(&members, 100, 1 << 20)
}

fn owners(ring: &Ring, ids: &[String]) -> Vec<String> {
    (0..KEYS).map(|k| ids[ring.lookup(k)].clone()).collect()
}

#[test]
fn growing_the_set_moves_about_one_in_n_plus_one_keys_all_to_the_new_endpoint() {
    for n in [4, 10, 20] {
        let (before_ids, after_ids) = (ids(n), ids(n + 1));
        let before = owners(&ring(&before_ids, 1), &before_ids);
        let after = owners(&ring(&after_ids, 1), &after_ids);
        let moved: Vec<usize> = (0..before.len())
            .filter(|&k| before[k] != after[k])
            .collect();
        let newcomer = &after_ids[n];
        assert!(
            moved.iter().all(|&k| &after[k] == newcomer),
            "keys moved between old endpoints"
        );
        let fraction = moved.len() as f64 / KEYS as f64;
        let ideal = 1.0 / (n as f64 + 1.0);
        assert!(
            (0.6 * ideal..=1.4 * ideal).contains(&fraction),
            "n={n}: moved {fraction:.4}, ideal {ideal:.4}"
        );
    }
}

#[test]
fn removing_an_endpoint_moves_only_its_keys() {
    let all = ids(8);
    let mut fewer = all.clone();
    let removed = fewer.remove(3);
    let before = owners(&ring(&all, 1), &all);
    let after = owners(&ring(&fewer, 1), &fewer);
    for (b, a) in before.iter().zip(&after) {
        assert!(b == a || *b == removed, "{b} -> {a}");
    }
}

#[test]
fn equal_weights_spread_within_tolerance() {
    let ids = ids(10);
    let ring = ring(&ids, 1);
    let mut counts = vec![0u32; ids.len()];
    for k in 0..KEYS {
        counts[ring.lookup(k)] += 1;
    }
    // 100 virtual nodes give each endpoint about +-10% of its arc (one sigma).
    assert!(
        counts.iter().all(|&c| (650..=1_350).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn virtual_nodes_follow_weight() {
    let ring = Ring::new(&[("a", 1), ("b", 3)], 100, 1 << 20);
    assert_eq!(ring.len(), 400);
    let heavy = (0..KEYS).filter(|&k| ring.lookup(k) == 1).count() as f64 / KEYS as f64;
    assert!((0.65..=0.85).contains(&heavy), "{heavy}");
}

#[test]
fn large_weights_are_scaled_to_the_point_cap_keeping_one_point_each() {
    let ring = Ring::new(&[("a", 1_000_000), ("b", 1_000_000), ("c", 1)], 100, 10_000);
    assert!(ring.len() <= 10_001, "{}", ring.len());
    let c_points = ring.points.iter().filter(|&&(_, i)| i == 2).count();
    assert_eq!(c_points, 1);
}

#[test]
fn same_members_same_ring_in_any_process() {
    let ids = ids(5);
    assert_eq!(owners(&ring(&ids, 1), &ids), owners(&ring(&ids, 1), &ids));
    // Pinned: a change to the hashing would silently move every user's keys.
    let r = ring(&ids, 1);
    let pinned: Vec<usize> = (0..8).map(|k| r.lookup(k)).collect();
    assert_eq!(pinned, PINNED_OWNERS);
}

const PINNED_OWNERS: [usize; 8] = [2, 3, 4, 3, 2, 2, 1, 0];
