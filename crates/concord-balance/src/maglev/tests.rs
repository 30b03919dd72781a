use super::*;

const SIZE: u64 = 65_537;
const KEYS: u64 = 10_000;

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("endpoint-{i}")).collect()
}

fn maglev(ids: &[String]) -> Maglev {
    let members: Vec<(&str, u32)> = ids.iter().map(|id| (id.as_str(), 1)).collect();
    Maglev::new(&members, SIZE)
}

#[test]
fn equal_weights_get_slots_to_within_one() {
    let slots = maglev(&ids(10)).slots(10);
    let (min, max) = (slots.iter().min().unwrap(), slots.iter().max().unwrap());
    assert!(max - min <= 1, "{slots:?}");
    assert_eq!(slots.iter().sum::<usize>(), SIZE as usize);
}

#[test]
fn weighted_slots_are_proportional() {
    let table = Maglev::new(&[("a", 1), ("b", 2), ("c", 3)], SIZE);
    let slots = table.slots(3);
    for (i, &n) in slots.iter().enumerate() {
        let ideal = SIZE as f64 * (i as f64 + 1.0) / 6.0;
        assert!((n as f64 - ideal).abs() / ideal < 0.005, "{slots:?}");
    }
}

#[test]
fn keys_spread_near_evenly() {
    let table = maglev(&ids(10));
    let mut counts = [0u32; 10];
    for k in 0..KEYS {
        counts[table.lookup(k)] += 1;
    }
    // Slots are even, so only sampling noise remains (sigma ~ 30 keys).
    assert!(
        counts.iter().all(|&c| (880..=1_120).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn growing_the_set_moves_close_to_one_in_n_plus_one_keys() {
    for n in [4, 10, 20] {
        let (before_ids, after_ids) = (ids(n), ids(n + 1));
        let (before, after) = (maglev(&before_ids), maglev(&after_ids));
        let mut moved = 0;
        let mut to_newcomer = 0;
        for k in 0..KEYS {
            let (b, a) = (before.lookup(k), after.lookup(k));
            if before_ids[b] != after_ids[a] {
                moved += 1;
                to_newcomer += usize::from(a == n);
            }
        }
        let fraction = moved as f64 / KEYS as f64;
        let ideal = 1.0 / (n as f64 + 1.0);
        assert!(
            (0.8 * ideal..=1.5 * ideal).contains(&fraction),
            "n={n}: moved {fraction:.4}, ideal {ideal:.4}"
        );
        assert!(
            to_newcomer as f64 >= 0.7 * moved as f64,
            "n={n}: {to_newcomer}/{moved}"
        );
    }
}

#[test]
fn same_members_same_table() {
    let ids = ids(6);
    assert_eq!(maglev(&ids).table, maglev(&ids).table);
}

#[test]
fn one_member_owns_every_slot() {
    let table = Maglev::new(&[("only", 3)], 7);
    assert_eq!(table.slots(1), [7]);
}
