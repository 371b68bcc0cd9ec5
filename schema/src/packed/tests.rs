//! Tests of packing: block spaces, exact round trips, sizes, bad input.

use ipnet::IpNet;

use super::*;

fn nets(s: &[&str]) -> Vec<IpNet> {
    s.iter().map(|p| p.parse().unwrap()).collect()
}

#[test]
fn space_orders_v4_before_v6_and_merges_overlaps() {
    let s = BlockSpace::new(&nets(&[
        "2001:db8::/47",
        "198.18.2.0/23",
        "198.18.0.0/22",
        "198.18.9.128/25",
        "198.18.9.0/25",
    ]));
    // /22 holds the /23: 4 blocks, then 198.18.9.0/24 once, then 2 /48s.
    assert_eq!(s.len(), 7);
    let all: Vec<String> = (0..s.len())
        .map(|i| s.block_at(i).unwrap().to_string())
        .collect();
    assert_eq!(
        all,
        [
            "198.18.0.0/24",
            "198.18.1.0/24",
            "198.18.2.0/24",
            "198.18.3.0/24",
            "198.18.9.0/24",
            "2001:db8::/48",
            "2001:db8:1::/48"
        ]
    );
    for i in 0..s.len() {
        assert_eq!(s.index_of(&s.block_at(i).unwrap()), Some(i));
    }
    assert_eq!(s.index_of(&"198.18.4.0/24".parse().unwrap()), None);
    assert_eq!(s.index_of(&"198.18.0.0/23".parse().unwrap()), None);
    assert_eq!(s.block_at(7), None);
}

#[test]
fn digest_depends_on_the_set_of_blocks_only() {
    let a = BlockSpace::new(&nets(&["198.18.0.0/23", "198.18.2.0/24"]));
    let b = BlockSpace::new(&nets(&["198.18.2.0/24", "198.18.0.0/24", "198.18.1.0/24"]));
    let c = BlockSpace::new(&nets(&["198.18.0.0/22"]));
    assert_eq!(a.digest(), b.digest());
    assert_ne!(a.digest(), c.digest());
    assert_eq!(a.digest().len(), 16);
}

fn sample(space: &BlockSpace) -> Vec<PackedBlock> {
    (0..space.len())
        .filter(|i| i % 3 != 1)
        .map(|i| PackedBlock {
            index: i,
            state: [BlockState::Up, BlockState::Down, BlockState::Uncertain][(i % 5 % 3) as usize],
            probes: (i % 7) as u32 + 1,
            replies: (i % 2) as u32,
            belief: (i * 13 % 256) as u8,
            availability: (i * 7 % 256) as u8,
            // Times only with replies; some blocks' minimum below the median.
            rtt: if i % 2 == 1 {
                Rtt {
                    min: (i % 200) as u8 + 1,
                    median: (i % 200) as u8 + 1 + (i % 3) as u8,
                }
            } else {
                Rtt::NONE
            },
        })
        .collect()
}

#[test]
fn packs_and_unpacks_exactly() {
    let space = BlockSpace::new(&nets(&["198.18.0.0/16", "2001:db8::/40"]));
    let blocks = sample(&space);
    let p = PackedRound::pack("kp", 9, &space, 1_800_000_000_000, (0, 1), blocks.clone()).unwrap();
    assert_eq!(p.blocks as usize, blocks.len());
    assert_eq!(p.unpack(&space).unwrap(), blocks);
    let obs = p.to_observations(&space).unwrap();
    assert_eq!(obs.len(), blocks.len());
    assert_eq!(obs[1].block.to_string(), "198.18.2.0/24");
    assert_eq!(obs[1].probes, 3);
    // JSON envelope round trip.
    let back: PackedRound = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
}

#[test]
fn a_typical_round_costs_under_a_byte_per_block() {
    // 65,536 blocks, nearly all up with one probe answered, a few down.
    let space = BlockSpace::new(&nets(&["10.0.0.0/8"]));
    let blocks = typical_round(space.len(), 0);
    let p = PackedRound::pack("big", 1, &space, 1_800_000_000_000, (0, 1), blocks).unwrap();
    let per_block = p.data.len() as f64 / space.len() as f64;
    assert!(per_block < 1.0, "{per_block} bytes per block on the wire");
    // Reply times are in it.
    assert!(p.unpack(&space).unwrap()[1].rtt.median > 0);
}

#[test]
fn chunks_cover_the_round_once() {
    let space = BlockSpace::new(&nets(&["198.18.0.0/18"]));
    let blocks = sample(&space);
    let chunks = pack_chunks("kp", 3, &space, 1_800_000_000_000, blocks.clone(), 10).unwrap();
    assert_eq!(chunks.len(), blocks.len().div_ceil(10));
    assert!(chunks.iter().all(|c| c.chunks as usize == chunks.len()));
    let back: Vec<PackedBlock> = chunks
        .iter()
        .flat_map(|c| c.unpack(&space).unwrap())
        .collect();
    assert_eq!(back, blocks);
    // An empty round is one empty chunk, so the collector still sees it.
    let empty = pack_chunks("kp", 3, &space, 1_800_000_000_000, vec![], 10).unwrap();
    assert_eq!(empty.len(), 1);
    assert!(empty[0].unpack(&space).unwrap().is_empty());
}

#[test]
fn refuses_bad_input_without_panicking() {
    let space = BlockSpace::new(&nets(&["198.18.0.0/24"]));
    let b = |index| PackedBlock {
        index,
        state: BlockState::Up,
        probes: 1,
        replies: 1,
        belief: 255,
        availability: 255,
        rtt: Rtt::NONE,
    };
    let pack = |blocks| PackedRound::pack("kp", 1, &space, 0, (0, 1), blocks);
    assert!(matches!(pack(vec![b(1)]), Err(PackedError::Index { .. })));
    assert!(matches!(pack(vec![b(0), b(0)]), Err(PackedError::Order(0))));
    let good = pack(vec![b(0)]).unwrap();
    // Another space: index 0 of an empty space.
    let empty = BlockSpace::new(&[]);
    assert!(matches!(
        good.unpack(&empty),
        Err(PackedError::Index { .. })
    ));
    let mut bad = good.clone();
    bad.blocks = 2;
    assert!(matches!(bad.unpack(&space), Err(PackedError::Count { .. })));
    bad = good.clone();
    bad.data = "!!".into();
    assert_eq!(bad.unpack(&space), Err(PackedError::Base64));
    bad = good.clone();
    bad.data = base64::engine::general_purpose::STANDARD.encode(b"not zstd");
    assert!(matches!(
        bad.unpack(&space),
        Err(PackedError::Decompress(_))
    ));
    bad = good.clone();
    bad.chunk = 1;
    assert!(matches!(bad.unpack(&space), Err(PackedError::Chunk { .. })));
    // A bomb: a million zero bytes declared as one block.
    bad = good.clone();
    let bomb = zstd::bulk::compress(&vec![0u8; 1 << 20], 3).unwrap();
    bad.data = base64::engine::general_purpose::STANDARD.encode(bomb);
    assert!(bad.unpack(&space).is_err());
}

#[test]
fn spaces_unpack_by_digest_and_refuse_an_unknown_one() {
    let prefixes = nets(&["192.0.2.0/24", "198.51.100.0/23"]);
    let space = BlockSpace::new(&prefixes);
    let blocks = sample(&space);
    let p = PackedRound::pack("c", 1, &space, 0, (0, 1), blocks.clone()).unwrap();
    let data = p.compressed().unwrap();
    let digest = space.digest();
    let spaces = Spaces::new([(digest.as_str(), prefixes.as_slice())]);
    let (found, got) = spaces.unpack(&digest, &data, p.blocks).unwrap();
    assert_eq!(found, &space);
    assert_eq!(got, blocks);
    assert_eq!(
        spaces.unpack("nope", &data, p.blocks).unwrap_err(),
        PackedError::UnknownSpace("nope".into())
    );
    assert!(matches!(
        spaces.unpack(&digest, &data, p.blocks + 1),
        Err(PackedError::Count { .. })
    ));
}

#[test]
fn reply_times_survive_packing_and_reach_observations() {
    let space = BlockSpace::new(&nets(&["198.18.0.0/24"]));
    let mut times = [4.0, 150.0, 151.0];
    let block = PackedBlock {
        index: 0,
        state: BlockState::Up,
        probes: 3,
        replies: 3,
        belief: 255,
        availability: 255,
        rtt: Rtt::of(&mut times),
    };
    let p = PackedRound::pack("kp", 1, &space, 0, (0, 1), vec![block]).unwrap();
    assert_eq!(p.unpack(&space).unwrap(), vec![block]);
    let o = &p.to_observations(&space).unwrap()[0];
    let (min, median) = (o.rtt_min_ms.unwrap(), o.rtt_median_ms.unwrap());
    assert!((min / 4.0 - 1.0).abs() < 0.03, "{min}");
    assert!((median / 150.0 - 1.0).abs() < 0.03, "{median}");
}

/// Version 1 columns (before reply times), as stored rounds hold them.
fn v1_columns(blocks: &[PackedBlock]) -> Vec<u8> {
    zstd::bulk::compress(&columns(blocks, 1), 3).unwrap()
}

#[test]
fn version_1_rounds_still_unpack_without_times() {
    let space = BlockSpace::new(&nets(&["198.18.0.0/22"]));
    let blocks = sample(&space);
    let old = unpack_columns(&v1_columns(&blocks), blocks.len() as u32, &space).unwrap();
    let untimed: Vec<PackedBlock> = blocks
        .iter()
        .map(|b| PackedBlock {
            rtt: Rtt::NONE,
            ..*b
        })
        .collect();
    assert_eq!(old, untimed);
    // What an agent sends a collector that accepts version 1 only.
    let p = PackedRound::pack_as(1, "c", 1, &space, 0, (0, 1), blocks.clone()).unwrap();
    assert_eq!(p.unpack(&space).unwrap(), untimed);
    assert!(PackedRound::pack_as(3, "c", 1, &space, 0, (0, 1), blocks.clone()).is_err());
    // A version from the future is refused, not misread.
    let mut raw = columns(&blocks, PACKED_VERSION);
    raw[0] = PACKED_VERSION + 1;
    let future = zstd::bulk::compress(&raw, 3).unwrap();
    assert_eq!(
        unpack_columns(&future, blocks.len() as u32, &space),
        Err(PackedError::Version(PACKED_VERSION + 1))
    );
}

#[test]
fn the_schedule_travels_once_per_round_and_old_envelopes_still_decode() {
    let space = BlockSpace::new(&nets(&["198.18.0.0/22"]));
    let mut p =
        PackedRound::pack("kp", 3, &space, 1_800_000_000_000, (0, 1), sample(&space)).unwrap();
    let old = serde_json::to_string(&p).unwrap();
    assert!(!old.contains("schedule"), "absent unless set: {old}");
    let back: PackedRound = serde_json::from_str(&old).unwrap();
    assert_eq!(back.schedule, None);
    p.schedule = Some(crate::phase::RoundSchedule {
        anchor_ms: 1_799_999_400_000,
        span_ms: 500_000,
        slices: 60,
        phase: 12,
    });
    let new = serde_json::to_string(&p).unwrap();
    let back: PackedRound = serde_json::from_str(&new).unwrap();
    assert_eq!(back, p);
    assert_eq!(back.unpack(&space).unwrap(), sample(&space));
}
