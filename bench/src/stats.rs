//! Pure helpers of the benchmark: medians, the silent-block plan and ground
//! truth, parsers of each tool's output, and the markdown table. No I/O.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Median of `xs` (mean of the middle two for even lengths); `None` if empty
/// or if a value is NaN.
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() || xs.iter().any(|x| x.is_nan()) {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The /24 blocks of `net` (an IPv4 prefix of length ≤ 24), as network
/// addresses shifted right by 8.
pub fn blocks_of(net: Ipv4Net) -> Vec<u32> {
    let first = u32::from(net.network()) >> 8;
    let last = u32::from(net.broadcast()) >> 8;
    (first..=last).collect()
}

/// Chooses `share` of the /24 blocks of `net` to be silent, reproducibly
/// from `seed`.
pub fn silent_blocks(net: Ipv4Net, share: f64, seed: u64) -> BTreeSet<u32> {
    let mut all = blocks_of(net);
    all.shuffle(&mut StdRng::seed_from_u64(seed));
    let n = ((all.len() as f64) * share).round() as usize;
    all.into_iter().take(n).collect()
}

/// Per-/24 counts of distinct answering addresses.
pub type BlockCounts = HashMap<u32, u64>;

/// Counts distinct addresses per /24.
pub fn count_addrs(addrs: impl IntoIterator<Item = Ipv4Addr>) -> BlockCounts {
    let set: BTreeSet<u32> = addrs.into_iter().map(u32::from).collect();
    let mut out = BlockCounts::new();
    for a in set {
        *out.entry(a >> 8).or_default() += 1;
    }
    out
}

/// How a tool's findings compare with the ground truth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accuracy {
    /// Responsive addresses the tool found (in live blocks, at most all).
    pub found: u64,
    /// Responsive addresses it was asked to probe.
    pub truth: u64,
    /// Addresses it reported in silent blocks (must be 0).
    pub false_positives: u64,
}

impl Accuracy {
    pub fn share(&self) -> f64 {
        if self.truth == 0 {
            0.0
        } else {
            self.found as f64 / self.truth as f64
        }
    }
}

/// Scores `found` against `truth` (both per-/24 counts); silent blocks are
/// those absent from `truth`.
pub fn score(found: &BlockCounts, truth: &BlockCounts) -> Accuracy {
    let mut acc = Accuracy {
        found: 0,
        truth: truth.values().sum(),
        false_positives: 0,
    };
    for (block, &n) in found {
        match truth.get(block) {
            Some(&t) => acc.found += n.min(t),
            None => acc.false_positives += n,
        }
    }
    acc
}

/// Ground truth: per live /24, how many of `probed` addresses fall in it.
pub fn truth_of(probed: &[Ipv4Net], silent: &BTreeSet<u32>) -> BlockCounts {
    let mut out = BlockCounts::new();
    for net in probed {
        let (s, e) = (u32::from(net.network()), u32::from(net.broadcast()));
        for a in s..=e {
            if !silent.contains(&(a >> 8)) {
                *out.entry(a >> 8).or_default() += 1;
            }
        }
    }
    out
}

/// Addresses from lines that are just an IPv4 address (fping `-a`, zmap's
/// default `saddr` output); anything else is skipped.
pub fn parse_addr_lines(text: &str) -> Vec<Ipv4Addr> {
    text.lines()
        .filter_map(|l| l.trim().parse::<Ipv4Addr>().ok())
        .collect()
}

/// darkwatch-agent `probe --json`: per-block `responsive` counts.
pub fn parse_darkwatch(text: &str) -> BlockCounts {
    let mut out = BlockCounts::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let block = v["block"].as_str().and_then(|b| b.parse::<Ipv4Net>().ok());
        let n = v["responsive"].as_u64();
        if let (Some(b), Some(n)) = (block, n) {
            if n > 0 {
                *out.entry(u32::from(b.network()) >> 8).or_default() += n;
            }
        }
    }
    out
}

/// scamper `-O json` ping objects: the destinations with at least one reply.
pub fn parse_scamper_json(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["type"] != "ping" {
            continue;
        }
        let replies = v["statistics"]["replies"]
            .as_u64()
            .or_else(|| v["responses"].as_array().map(|r| r.len() as u64))
            .unwrap_or(0);
        if replies > 0 {
            if let Some(dst) = v["dst"].as_str().and_then(|d| d.parse().ok()) {
                out.push(dst);
            }
        }
    }
    out
}

/// Formats a markdown table.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n", header.join(" | "));
    s.push_str(&format!(
        "|{}\n",
        header.iter().map(|_| " --- |").collect::<String>()
    ));
    for r in rows {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn silent_share_is_exact_and_reproducible() {
        let net: Ipv4Net = "198.18.0.0/16".parse().unwrap();
        let a = silent_blocks(net, 0.2, 7);
        assert_eq!(a.len(), 51);
        assert_eq!(a, silent_blocks(net, 0.2, 7));
        assert_ne!(a, silent_blocks(net, 0.2, 8));
        assert!(a.iter().all(|b| (0x00C6_1200..=0x00C6_12FF).contains(b)));
    }

    #[test]
    fn scoring_caps_per_block_and_counts_false_positives() {
        let net: Ipv4Net = "198.18.0.0/23".parse().unwrap();
        let silent = BTreeSet::from([u32::from(Ipv4Addr::new(198, 18, 1, 0)) >> 8]);
        let truth = truth_of(&[net], &silent);
        assert_eq!(truth.values().sum::<u64>(), 256);
        let found = count_addrs([
            Ipv4Addr::new(198, 18, 0, 1),
            Ipv4Addr::new(198, 18, 0, 1),
            Ipv4Addr::new(198, 18, 0, 2),
            Ipv4Addr::new(198, 18, 1, 9),
        ]);
        let acc = score(&found, &truth);
        assert_eq!((acc.found, acc.truth, acc.false_positives), (2, 256, 1));
        assert!((acc.share() - 2.0 / 256.0).abs() < 1e-12);
    }

    #[test]
    fn parses_each_tool() {
        let fping = "198.18.0.1\n198.18.0.2\nICMP Host Unreachable from x\n\n";
        assert_eq!(parse_addr_lines(fping).len(), 2);
        let dw = r#"{"block":"198.18.3.0/24","state":"up","responsive":256}
{"block":"198.18.4.0/24","state":"down","responsive":0}
not json"#;
        let c = parse_darkwatch(dw);
        assert_eq!(c.len(), 1);
        assert_eq!(c[&(u32::from(Ipv4Addr::new(198, 18, 3, 0)) >> 8)], 256);
        let sc = r#"{"type":"cycle-start"}
{"type":"ping","dst":"198.18.0.5","statistics":{"replies":1}}
{"type":"ping","dst":"198.18.0.6","statistics":{"replies":0}}
{"type":"ping","dst":"198.18.0.7","responses":[{"from":"198.18.0.7"}]}"#;
        assert_eq!(
            parse_scamper_json(sc),
            vec![Ipv4Addr::new(198, 18, 0, 5), Ipv4Addr::new(198, 18, 0, 7)]
        );
    }

    #[test]
    fn table_has_header_separator_and_rows() {
        let t = markdown_table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n| --- | --- |\n| 1 | 2 |\n");
    }
}
