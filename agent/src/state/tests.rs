use std::net::IpAddr;

use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn tracker(block: &str, hosts: impl Iterator<Item = u8>, belief: f64) -> BlockTracker {
    let b = net(block);
    let IpNet::V4(v4) = b else { panic!() };
    let o = v4.network().octets();
    let addrs = hosts.map(|h| IpAddr::from([o[0], o[1], o[2], h])).collect();
    let mut t = BlockTracker::from_discovery(b, addrs);
    t.belief = belief;
    t.availability = 0.5;
    t
}

/// Dense and sparse IPv4 blocks, an IPv6 block and a control.
fn state() -> CampaignState {
    let mut st = CampaignState {
        last_round: Some(7),
        prefixes: vec![net("198.18.0.0/16")],
        ..CampaignState::default()
    };
    for t in [
        tracker("198.18.1.0/24", 0..=255, 0.99),
        tracker("198.18.2.0/24", [3u8, 200].into_iter(), 0.01),
        tracker("198.18.3.0/24", (0..=255).step_by(3), 0.42),
    ] {
        st.trackers.insert(t.block, t);
    }
    let v6 = BlockTracker::from_discovery(
        net("2001:db8:1::/48"),
        vec![
            "2001:db8:1::1".parse().unwrap(),
            "2001:db8:1::9".parse().unwrap(),
        ],
    );
    st.trackers.insert(v6.block, v6);
    let c = tracker("192.0.2.0/24", [1u8].into_iter(), 0.9);
    st.control_trackers.insert(c.block, c);
    st
}

fn same(a: &crate::tracked::Trackers, b: &crate::tracked::Trackers) {
    assert_eq!(a.len(), b.len());
    for ((ka, ta), (kb, tb)) in a.iter().zip(b) {
        assert_eq!(ka, kb);
        assert_eq!(ta.responsive, tb.responsive, "{ka}");
        // Quantized to 8 bits: within half a step of the range.
        assert!((ta.belief - tb.belief).abs() < 0.002, "{ka}");
        assert!((ta.availability - tb.availability).abs() < 0.002, "{ka}");
    }
}

#[test]
fn sets_and_beliefs_round_trip() {
    let st = state();
    let (id, trackers) = decode_sets(&encode_sets(&st, 77)).unwrap();
    assert_eq!(id, 77);
    let mut back = CampaignState::default();
    for (control, t) in trackers {
        let map = if control {
            &mut back.control_trackers
        } else {
            &mut back.trackers
        };
        map.insert(t.block, t);
    }
    same(&back.trackers, &st.trackers);
    same(&back.control_trackers, &st.control_trackers);
    // Beliefs of a later round, applied to the same sets.
    let mut later = st.clone();
    for t in later.trackers.values_mut() {
        t.belief = 0.33;
    }
    apply_beliefs(&mut back, 77, &encode_beliefs(&later, 77)).unwrap();
    same(&back.trackers, &later.trackers);
}

#[test]
fn a_belief_file_that_does_not_fit_is_refused_whole() {
    let st = state();
    let good = encode_beliefs(&st, 5);
    assert!(good.len() <= 16 + 2 * 5 + 16, "2 bytes per block at most");
    let mut back = st.clone();
    assert_eq!(
        apply_beliefs(&mut back, 6, &good),
        Err(StateError::OtherSets)
    );
    for cut in [0, 3, 10, good.len() - 1] {
        assert!(apply_beliefs(&mut back, 5, &good[..cut]).is_err(), "{cut}");
    }
    assert!(decode_sets(&encode_sets(&st, 1)[..20]).is_err());
    assert_eq!(
        decode_sets(b"{\"json\": 1}").unwrap_err(),
        StateError::Magic
    );
    same(&back.trackers, &st.trackers);
}

#[test]
fn a_dense_ipv4_block_costs_a_few_bytes() {
    let mut st = CampaignState::default();
    for i in 0..1000u32 {
        let t = tracker(&format!("10.{}.{}.0/24", i / 256, i % 256), 0..=255, 0.99);
        st.trackers.insert(t.block, t);
    }
    let bytes = encode_sets(&st, 1).len();
    assert!(bytes < 16 * 1000, "{bytes} bytes");
}

#[test]
fn save_then_load_resumes_and_a_torn_belief_file_costs_beliefs_only() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::new(dir.path(), "kp");
    let mut st = state();
    st.sets_changed = true;
    save(&files, &mut st).unwrap();
    let loaded = load(&files);
    same(&loaded.trackers, &st.trackers);
    same(&loaded.control_trackers, &st.control_trackers);
    assert_eq!(
        (loaded.last_round, &loaded.prefixes),
        (Some(7), &st.prefixes)
    );

    // A later round: beliefs move, the sets do not and are not rewritten.
    let sets_before = std::fs::read(&files.sets).unwrap();
    for t in st.trackers.values_mut() {
        t.belief = 0.2;
    }
    st.last_round = Some(8);
    save(&files, &mut st).unwrap();
    assert_eq!(std::fs::read(&files.sets).unwrap(), sets_before);
    same(&load(&files).trackers, &st.trackers);

    // The belief file is torn: the sets and the rest stand, beliefs fall
    // back to the snapshot taken with the sets.
    let b = std::fs::read(&files.belief).unwrap();
    std::fs::write(&files.belief, &b[..b.len() / 2]).unwrap();
    let torn = load(&files);
    assert_eq!(torn.last_round, Some(8));
    assert_eq!(torn.trackers.len(), st.trackers.len());
    for (k, t) in &torn.trackers {
        assert_eq!(t.responsive, st.trackers[k].responsive);
        assert!((t.belief - state().trackers[k].belief).abs() < 0.002);
    }
    assert!(torn.discovered_round == st.discovered_round);
}

#[test]
fn the_json_state_of_an_earlier_version_is_migrated_once() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::new(dir.path(), "kp");
    let old = state();
    std::fs::write(&files.legacy, serde_json::to_vec(&old).unwrap()).unwrap();
    let mut st = load(&files);
    same(&st.trackers, &old.trackers);
    assert!(st.sets_changed);
    save(&files, &mut st).unwrap();
    assert!(!files.legacy.exists(), "the JSON state is removed");
    same(&load(&files).trackers, &old.trackers);
}

#[test]
fn lost_sets_mean_a_new_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::new(dir.path(), "kp");
    let mut st = state();
    st.discovered_round = Some(3);
    save(&files, &mut st).unwrap();
    std::fs::write(&files.sets, b"DWS1").unwrap();
    let back = load(&files);
    assert!(back.trackers.is_empty());
    assert_eq!(back.discovered_round, None);
}

/// The previous format's sets file (`DWS1`), as the previous agent wrote it.
fn encode_sets_v1(st: &CampaignState, id: u64) -> Vec<u8> {
    let mut raw = Vec::new();
    for (control, t) in all(st) {
        let flag = if control { CONTROL } else { 0 };
        match (&t.block, &t.responsive) {
            (IpNet::V4(b), Responsive::V4Block { net, hosts }) if b.prefix_len() == 24 => {
                let n: u32 = hosts.iter().map(|w| w.count_ones()).sum();
                if n < 32 {
                    raw.push(V4_HOSTS | flag);
                    raw.extend_from_slice(net);
                    raw.push(n as u8);
                    raw.extend(t.responsive.iter().map(|a| match a {
                        IpAddr::V4(a) => a.octets()[3],
                        IpAddr::V6(_) => 0,
                    }));
                } else {
                    raw.push(V4_BITMAP | flag);
                    raw.extend_from_slice(net);
                    for w in hosts {
                        raw.extend_from_slice(&w.to_le_bytes());
                    }
                }
            }
            (block, r) => {
                raw.push(LIST | flag);
                push_addr(&mut raw, block.network());
                raw.push(block.prefix_len());
                raw.extend_from_slice(&(r.len() as u32).to_le_bytes());
                for a in r.iter() {
                    push_addr(&mut raw, a);
                }
            }
        }
        raw.extend_from_slice(&quantize(t.belief, BELIEF_MIN, BELIEF_MAX).to_le_bytes());
        raw.extend_from_slice(&quantize(t.availability, AVAIL_MIN, AVAIL_MAX).to_le_bytes());
    }
    let mut out = b"DWS1".to_vec();
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    out.extend(zstd::bulk::compress(&raw, 3).unwrap());
    out
}

/// The previous format's belief file (`DWB1`): 16-bit belief and availability.
fn encode_beliefs_v1(st: &CampaignState, sets_id: u64) -> Vec<u8> {
    let n = st.trackers.len() + st.control_trackers.len();
    let mut out = b"DWB1".to_vec();
    out.extend_from_slice(&sets_id.to_le_bytes());
    out.extend_from_slice(&(n as u32).to_le_bytes());
    for (_, t) in all(st) {
        out.extend_from_slice(&quantize(t.belief, BELIEF_MIN, BELIEF_MAX).to_le_bytes());
        out.extend_from_slice(&quantize(t.availability, AVAIL_MIN, AVAIL_MAX).to_le_bytes());
    }
    out
}

#[test]
fn the_previous_binary_state_is_read_and_rewritten_in_the_new_format() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::new(dir.path(), "kp");
    // What the previous agent left: meta, sets and beliefs of format 1,
    // the beliefs a round later than the sets' snapshot.
    let mut st = state();
    st.sets_changed = true;
    save(&files, &mut st).unwrap();
    std::fs::write(&files.sets, encode_sets_v1(&state(), 41)).unwrap();
    for t in st.trackers.values_mut() {
        t.belief = 0.3;
    }
    std::fs::write(&files.belief, encode_beliefs_v1(&st, 41)).unwrap();
    let mut back = load(&files);
    same(&back.trackers, &st.trackers);
    same(&back.control_trackers, &st.control_trackers);
    assert!(back.sets_changed, "format 1 sets are rewritten");
    save(&files, &mut back).unwrap();
    assert!(std::fs::read(&files.sets).unwrap().starts_with(SETS_MAGIC));
    assert!(std::fs::read(&files.belief)
        .unwrap()
        .starts_with(BELIEF_MAGIC));
    let again = load(&files);
    assert!(!again.sets_changed);
    same(&again.trackers, &st.trackers);
}

#[test]
fn sets_cost_about_their_entropy() {
    // 2,000 consecutive /24s with 34 random hosts of 254 each (~17 B of
    // entropy per set), beliefs all alike.
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut st = CampaignState::default();
    for i in 0..2000u32 {
        let mut hosts: Vec<u8> = (1..255).collect();
        for k in 0..34 {
            let j = rng.gen_range(k..hosts.len());
            hosts.swap(k, j);
        }
        hosts.truncate(34);
        let t = tracker(
            &format!("10.{}.{}.0/24", i / 256, i % 256),
            hosts.into_iter(),
            0.99,
        );
        st.trackers.insert(t.block, t);
    }
    let sets = encode_sets(&st, 1).len() as f64 / 2000.0;
    let beliefs = encode_beliefs(&st, 1).len() as f64 / 2000.0;
    assert!(sets < 20.0, "{sets} B per block");
    assert!(beliefs < 0.5, "{beliefs} B per block");
    assert_eq!(decode_sets(&encode_sets(&st, 1)).unwrap().1.len(), 2000);
}
