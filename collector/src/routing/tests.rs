//! Routed scopes from small prefix-to-AS tables: more-specifics, covering
//! routes, multi-origin routes, unrouted blocks, sub-/24 allocations and
//! IPv6 allocations.

use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn nets(v: &[&str]) -> Vec<IpNet> {
    v.iter().map(|s| net(s)).collect()
}

fn table(text: &str) -> Pfx2As {
    let (m, skipped) = Pfx2As::parse(text, "t").unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    m
}

/// The prefix (and its origins) a block counts in.
fn of(r: &Routing, block: &str) -> Option<(String, Vec<u32>)> {
    let p = &r.prefixes()[r.prefix_of(&net(block))? as usize];
    Some((p.net.to_string(), p.asns.clone()))
}

fn owned(s: &str, asns: &[u32]) -> Option<(String, Vec<u32>)> {
    Some((s.to_string(), asns.to_vec()))
}

#[test]
fn without_routes_a_block_counts_in_the_longest_campaign_prefix() {
    let r = Routing::new(&nets(&["198.18.0.0/22", "198.18.2.0/24"]), None);
    assert_eq!(r.prefixes().len(), 2);
    assert_eq!(of(&r, "198.18.0.0/24"), owned("198.18.0.0/22", &[]));
    assert_eq!(of(&r, "198.18.2.0/24"), owned("198.18.2.0/24", &[]));
    assert_eq!(of(&r, "198.18.3.0/24"), owned("198.18.0.0/22", &[]));
    assert_eq!(of(&r, "198.18.4.0/24"), None);
    assert!(r.routed_prefixes().is_empty() && r.unrouted_prefixes().is_empty());
    assert_eq!(r.unrouted_v4_blocks(), 0);
}

#[test]
fn sub_24_allocations_count_in_the_block_that_holds_them() {
    let r = Routing::new(
        &nets(&[
            "198.51.100.0/26",
            "198.51.100.64/26",
            "198.51.100.192/26",
            "198.51.101.128/26",
        ]),
        None,
    );
    // Three allocations, one block: it counts once, in the first of them.
    assert_eq!(of(&r, "198.51.100.0/24"), owned("198.51.100.0/26", &[]));
    assert_eq!(of(&r, "198.51.101.0/24"), owned("198.51.101.128/26", &[]));
    assert_eq!(of(&r, "198.51.102.0/24"), None);
    // Inside a wider allocation, the wider one holds the block.
    let r = Routing::new(&nets(&["198.18.0.0/22", "198.18.1.64/26"]), None);
    assert_eq!(of(&r, "198.18.1.0/24"), owned("198.18.0.0/22", &[]));
    // With routes: the /24 route that covers them.
    let m = table("198.51.100.0\t24\t64500\n");
    let r = Routing::new(&nets(&["198.51.100.0/26", "198.51.100.64/26"]), Some(&m));
    assert_eq!(
        of(&r, "198.51.100.0/24"),
        owned("198.51.100.0/24", &[64500])
    );
    assert_eq!(r.prefixes().len(), 1);
}

#[test]
fn more_specific_routes_split_an_allocation_between_origins() {
    let m = table(
        "175.45.176.0\t24\t131279\n175.45.177.0\t24\t131279\n\
         175.45.178.0\t24\t131279\n175.45.179.0\t24\t64500\n",
    );
    let r = Routing::new(&nets(&["175.45.176.0/22"]), Some(&m));
    let got: Vec<String> = r.prefixes().iter().map(|p| p.net.to_string()).collect();
    assert_eq!(
        got,
        [
            "175.45.176.0/24",
            "175.45.177.0/24",
            "175.45.178.0/24",
            "175.45.179.0/24"
        ]
    );
    assert_eq!(r.routed_prefixes().len(), 4);
    assert_eq!(
        of(&r, "175.45.178.0/24"),
        owned("175.45.178.0/24", &[131279])
    );
    assert_eq!(
        of(&r, "175.45.179.0/24"),
        owned("175.45.179.0/24", &[64500])
    );
    assert!(r.unrouted_prefixes().is_empty());
}

#[test]
fn a_covering_route_holds_the_blocks_its_more_specifics_do_not() {
    // A /16 wider than the allocation, a more-specific /24 inside it, and a
    // /25 (longer than a block: not a block's route).
    let m = table(
        "175.45.0.0\t16\t64501\n175.45.177.0\t24\t64502\n175.45.178.0\t25\t64503\n\
         175.44.0.0\t16\t64504\n",
    );
    let r = Routing::new(&nets(&["175.45.176.0/22"]), Some(&m));
    assert_eq!(of(&r, "175.45.176.0/24"), owned("175.45.0.0/16", &[64501]));
    assert_eq!(
        of(&r, "175.45.177.0/24"),
        owned("175.45.177.0/24", &[64502])
    );
    assert_eq!(of(&r, "175.45.178.0/24"), owned("175.45.0.0/16", &[64501]));
    assert_eq!(of(&r, "175.45.179.0/24"), owned("175.45.0.0/16", &[64501]));
    // Routes that hold none of the campaign's blocks are not its prefixes.
    assert_eq!(r.prefixes().len(), 2);
}

#[test]
fn a_multi_origin_route_counts_for_each_origin() {
    let m = table("192.0.2.0\t24\t64500_{64501,64502}\n");
    let r = Routing::new(&nets(&["192.0.2.0/24"]), Some(&m));
    assert_eq!(
        of(&r, "192.0.2.0/24"),
        owned("192.0.2.0/24", &[64500, 64501, 64502])
    );
}

#[test]
fn blocks_no_route_covers_stay_in_an_unrouted_group() {
    let m = table("198.18.1.0\t24\t64500\n198.18.2.0\t24\t64501\n");
    let r = Routing::new(&nets(&["198.18.0.0/22", "198.18.8.0/24"]), Some(&m));
    assert_eq!(of(&r, "198.18.0.0/24"), owned("198.18.0.0/22", &[]));
    assert_eq!(of(&r, "198.18.1.0/24"), owned("198.18.1.0/24", &[64500]));
    assert_eq!(of(&r, "198.18.3.0/24"), owned("198.18.0.0/22", &[]));
    assert_eq!(of(&r, "198.18.8.0/24"), owned("198.18.8.0/24", &[]));
    let unrouted: Vec<IpNet> = r.unrouted_prefixes().iter().map(|p| p.net).collect();
    assert_eq!(unrouted, nets(&["198.18.0.0/22", "198.18.8.0/24"]));
    assert_eq!(r.routed_prefixes().len(), 2);
    assert_eq!(r.unrouted_v4_blocks(), 3);
}

#[test]
fn ipv6_blocks_take_their_route_and_the_allocation_is_not_a_count() {
    let m = table("2400:8b00::\t32\t131279\n2400:8b00:5::\t48\t64500\n");
    let r = Routing::new(&nets(&["2400:8b00::/32", "2001:db8::/32"]), Some(&m));
    assert_eq!(
        of(&r, "2400:8b00:1::/48"),
        owned("2400:8b00::/32", &[131279])
    );
    assert_eq!(
        of(&r, "2400:8b00:5::/48"),
        owned("2400:8b00:5::/48", &[64500])
    );
    assert_eq!(
        of(&r, "2400:8b00:6::/48"),
        owned("2400:8b00::/32", &[131279])
    );
    assert_eq!(of(&r, "2001:db8:7::/48"), owned("2001:db8::/32", &[]));
    assert_eq!(of(&r, "2400:8b01::/48"), None);
    // Runs, not blocks: a /32 is three runs here, not 65,536 entries.
    assert!(r.runs.len() <= 4, "{:?}", r.runs);
}
