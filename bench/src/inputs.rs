//! Published inputs at real size (issue 27, point 7): an NRO combined
//! delegated file (~460k lines: 250k IPv4, 90k IPv6, 120k asn), a CAIDA
//! pfx2as file (~1M lines, both families, MOAS and AS sets, plain and
//! gzip-compressed as published), a CAIDA as-org2info file (~110k ASes,
//! gzip-compressed as published) and a US-sized campaign's hitlist (one
//! address per /24, ~6.5M, plus 5 % outside the campaign) seeded against
//! the US prefixes (~110k). The files are generated in the published
//! layouts from a fixed seed, written to a temporary directory and read
//! through the same code `campaign add` and `serve` use. Time is wall
//! clock; memory is the peak of live heap bytes while loading (the counting
//! allocator of `main`), the file's text included.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use darkwatch_collector::hitlist;
use darkwatch_schema::inputs::{asnames::AsNames, delegated, pfx2as::Pfx2As, special};
use ipnet::{IpNet, Ipv4Subnets};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::alloc::{live, peak, reset_peak};
use crate::{yes, Row};

const MIB: f64 = 1024.0 * 1024.0;

/// Runs `f` and returns its result, seconds taken and peak heap growth (MiB).
fn measure<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64, f64)> {
    let before = live();
    reset_peak();
    let t = Instant::now();
    let out = f()?;
    let secs = t.elapsed().as_secs_f64();
    Ok((out, secs, (peak() - before) as f64 / MIB))
}

/// An NRO combined file (extended layout); returns the text, its line count.
fn nro_file(rng: &mut StdRng) -> (String, usize) {
    const RIRS: [&str; 5] = ["afrinic", "apnic", "arin", "lacnic", "ripencc"];
    const OTHERS: [&str; 8] = ["CN", "JP", "DE", "BR", "FR", "GB", "KR", "ZA"];
    let mut s = String::with_capacity(48 << 20);
    let mut lines = 0;
    s.push_str("2.3|nro|20241122|460000|19700101|20241122|+0000\n");
    for kind in ["asn", "ipv4", "ipv6"] {
        let _ = writeln!(s, "nro|*|{kind}|*|0|summary");
    }
    s.push_str("# generated in the layout of delegated-nro-extended-stats\n");
    lines += 5;
    // IPv4: 250k records from 1.0.0.0 up, skipping special-purpose space;
    // 110k of them US, larger on average (a US campaign is ~6.5M /24s).
    let mut cursor: u64 = 1 << 24;
    for i in 0..250_000u32 {
        let us = i % 25 < 11;
        let count: u64 = if us {
            *[256, 256, 1024, 1024, 4096, 4096, 16384, 16384, 65536, 65536]
                .get(rng.gen_range(0..10))
                .unwrap_or(&256)
        } else {
            *[256, 512, 768, 1024, 2048, 4096, 8192, 16384]
                .get(rng.gen_range(0..8))
                .unwrap_or(&256)
        };
        // Align to the count's power of two where it is one.
        let align = count.next_power_of_two();
        cursor = cursor.div_ceil(align) * align;
        loop {
            let net = IpNet::V4(
                ipnet::Ipv4Net::new(
                    Ipv4Addr::from(cursor as u32),
                    32 - align.trailing_zeros() as u8,
                )
                .expect("prefix"),
            );
            match special::overlapping(&net) {
                Some(b) => {
                    let IpNet::V4(b) = b.net else { break };
                    cursor = u64::from(u32::from(b.broadcast())) + 1;
                    cursor = cursor.div_ceil(align) * align;
                }
                None => break,
            }
        }
        if cursor + count >= 1 << 32 {
            break;
        }
        let rir = RIRS[rng.gen_range(0..5)];
        let cc = if us {
            "US"
        } else {
            OTHERS[rng.gen_range(0..8)]
        };
        let status = if rng.gen_range(0..10) == 0 {
            "assigned"
        } else {
            "allocated"
        };
        let _ = writeln!(
            s,
            "{rir}|{cc}|ipv4|{}|{count}|20100101|{status}|{:08x}",
            Ipv4Addr::from(cursor as u32),
            rng.gen::<u32>()
        );
        cursor += count;
        lines += 1;
    }
    // IPv6: 90k records, /32s and /48s under 2600::/12 and 2a00::/12.
    for i in 0..90_000u128 {
        let us = i % 9 < 4;
        let (base, len) = if i % 3 == 0 {
            (0x2600u128, 48)
        } else {
            (0x2a00u128, 32)
        };
        let addr = Ipv6Addr::from(base << 112 | i << (128 - len));
        let cc = if us { "US" } else { OTHERS[(i % 8) as usize] };
        let _ = writeln!(s, "arin|{cc}|ipv6|{addr}|{len}|20120101|allocated|{i:08x}");
        lines += 1;
    }
    for i in 0..120_000u32 {
        let _ = writeln!(
            s,
            "ripencc|{}|asn|{}|1|20050101|allocated|{i:08x}",
            OTHERS[(i % 8) as usize],
            i + 1000
        );
        lines += 1;
    }
    (s, lines)
}

/// A pfx2as file: 900k IPv4 and 150k IPv6 routes; 3 % multi-origin, 1 %
/// AS sets, some both.
fn pfx2as_file(rng: &mut StdRng) -> (String, usize) {
    let mut s = String::with_capacity(32 << 20);
    let origin = |rng: &mut StdRng| -> String {
        let a = rng.gen_range(1..400_000u32);
        match rng.gen_range(0..100) {
            0..=2 => format!("{a}_{}", a + 1),
            3 => format!("{{{a},{}}}", a + 7),
            4 => format!("{a}_{{{},{}}}", a + 1, a + 2),
            _ => a.to_string(),
        }
    };
    let mut lines = 0;
    for _ in 0..900_000 {
        let len = *[24u8, 24, 24, 24, 23, 22, 20, 19, 16]
            .get(rng.gen_range(0..9))
            .unwrap_or(&24);
        let net = ipnet::Ipv4Net::new(Ipv4Addr::from(rng.gen_range(1u32 << 24..0xe000_0000)), len)
            .expect("prefix")
            .trunc();
        let o = origin(rng);
        let _ = writeln!(s, "{}\t{len}\t{o}", net.network());
        lines += 1;
    }
    for _ in 0..150_000 {
        let len = *[48u8, 48, 48, 44, 40, 32, 29]
            .get(rng.gen_range(0..7))
            .unwrap_or(&48);
        let net = ipnet::Ipv6Net::new(
            Ipv6Addr::from(0x2000u128 << 112 | rng.gen::<u128>() >> 4),
            len,
        )
        .expect("prefix")
        .trunc();
        let o = origin(rng);
        let _ = writeln!(s, "{}\t{len}\t{o}", net.network());
        lines += 1;
    }
    (s, lines)
}

/// A CAIDA as-org2info file as published: 100k organisations, then 110k
/// ASes (95 % of them with an organisation, the rest named by their
/// aut_name); returns the text and its AS count.
fn as_org2info_file(rng: &mut StdRng) -> (String, usize) {
    const ORGS: u32 = 100_000;
    const ASES: u32 = 110_000;
    const CCS: [&str; 9] = ["US", "CN", "JP", "DE", "BR", "FR", "GB", "KP", "ZA"];
    let mut s = String::with_capacity(16 << 20);
    s.push_str("# name: AS Org\n# generated in the layout of YYYYMMDD.as-org2info.txt\n");
    s.push_str("# format:org_id|changed|org_name|country|source\n");
    for o in 0..ORGS {
        let _ = writeln!(
            s,
            "ORG-{o:06}-ARIN|20241001|Example Networks {o} Sociedad Anónima de Telecomunicaciones|{}|ARIN",
            CCS[rng.gen_range(0..CCS.len())]
        );
    }
    s.push_str("# format:aut|changed|aut_name|org_id|opaque_id|source\n");
    for i in 0..ASES {
        let asn = if i % 2 == 0 {
            i / 2 + 1
        } else {
            131_072 + i * 3
        };
        let org = if rng.gen_range(0..20) == 0 {
            String::new()
        } else {
            format!("ORG-{:06}-ARIN", rng.gen_range(0..ORGS))
        };
        let _ = writeln!(
            s,
            "{asn}|20241001|EXAMPLE-AS-{asn}|{org}|{:032x}_ARIN|ARIN",
            rng.gen::<u128>()
        );
    }
    (s, ASES as usize)
}

/// One address per IPv4 /24 of `prefixes`, plus 5 % outside them.
fn hitlist_file(rng: &mut StdRng, prefixes: &[IpNet]) -> (String, usize) {
    let mut s = String::with_capacity(100 << 20);
    let mut n = 0;
    for p in prefixes {
        let IpNet::V4(p) = p else { continue };
        for block in Ipv4Subnets::new(p.network(), p.broadcast(), 24) {
            let a = u32::from(block.network()) | rng.gen_range(1..255u32);
            let _ = writeln!(s, "{}", Ipv4Addr::from(a));
            n += 1;
            if rng.gen_range(0..20) == 0 {
                let _ = writeln!(s, "{}", Ipv4Addr::from(rng.gen::<u32>() | 0x0100_0000));
                n += 1;
            }
        }
    }
    (s, n)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<std::path::PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, bytes).with_context(|| format!("write {}", p.display()))?;
    Ok(p)
}

fn row(rows: &mut Vec<Row>, what: String, secs: f64, mib: f64, max_secs: f64, max_mib: f64) {
    rows.push(Row {
        what,
        darkwatch: format!("{secs:.2} s, {mib:.0} MiB"),
        peers: "–".into(),
        goal: if max_mib > 0.0 {
            format!("≤ {max_secs:.0} s, ≤ {max_mib:.0} MiB")
        } else {
            format!("≤ {max_secs:.0} s")
        },
        met: yes(secs <= max_secs && (max_mib <= 0.0 || mib <= max_mib)),
    });
}

pub fn rows(rows: &mut Vec<Row>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut rng = StdRng::seed_from_u64(27);
    eprintln!("inputs: generating an NRO file, a pfx2as file and a hitlist");

    let (nro, nro_lines) = nro_file(&mut rng);
    let nro_path = write(dir.path(), "delegated-nro-extended-stats", nro.as_bytes())?;
    drop(nro);
    let (us, secs, mib) = measure(|| Ok(delegated::read_lines(&nro_path, "US")?))?;
    let us: Vec<IpNet> = us.items.into_iter().map(|(_, n)| n).collect();
    row(
        rows,
        format!(
            "load NRO combined file, {nro_lines} lines, US ({} prefixes)",
            us.len()
        ),
        secs,
        mib,
        5.0,
        500.0,
    );

    let (pfx, pfx_lines) = pfx2as_file(&mut rng);
    let pfx_path = write(
        dir.path(),
        "routeviews-rv2-20241122-1200.pfx2as",
        pfx.as_bytes(),
    )?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(pfx.as_bytes())?;
    let gz_path = write(
        dir.path(),
        "routeviews-rv2-20241122-1200.pfx2as.gz",
        &gz.finish()?,
    )?;
    drop(pfx);
    for (path, how) in [(&pfx_path, "plain"), (&gz_path, "gzip")] {
        let ((m, _), secs, mib) = measure(|| Ok(Pfx2As::load(path)?))?;
        row(
            rows,
            format!(
                "load pfx2as, {pfx_lines} lines ({} prefixes), {how}",
                m.len()
            ),
            secs,
            mib,
            5.0,
            500.0,
        );
    }

    let (org2info, ases) = as_org2info_file(&mut rng);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(org2info.as_bytes())?;
    let names_path = write(dir.path(), "20241001.as-org2info.txt.gz", &gz.finish()?)?;
    drop(org2info);
    let ((names, _), secs, mib) = measure(|| Ok(AsNames::load(&names_path)?))?;
    row(
        rows,
        format!(
            "load AS names (as-org2info), {ases} ASes ({} named), gzip",
            names.len()
        ),
        secs,
        mib,
        5.0,
        500.0,
    );
    drop(names);

    let (text, n) = hitlist_file(&mut rng, &us);
    let ((kept, outside), secs, mib) = measure(|| {
        let h = hitlist::read(&text, "hitlist.txt")?;
        let seed = hitlist::seed(h.addrs, &us, false);
        Ok((seed.addresses, seed.outside + seed.reserved))
    })?;
    eprintln!("inputs: hitlist of {n} addresses: {kept} kept, {outside} skipped");
    row(
        rows,
        format!(
            "seed a hitlist, {n} addresses against {} prefixes ({kept} kept, {outside} outside)",
            us.len()
        ),
        secs,
        mib,
        30.0,
        0.0,
    );
    Ok(())
}
