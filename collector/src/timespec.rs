//! The one time syntax of the CLI and the API (`--since`, `--from`,
//! `--until`, `since=`, `from=`, `until=`).
//!
//! A bare number is refused: `1700000000` is Unix seconds to one operator and
//! milliseconds to another, and reading one as the other silently moved a
//! query by a factor of 1,000 ("spans 29914407 rounds"). So absolute times
//! carry their unit, and ages say how long ago:
//!
//! | form | meaning |
//! |---|---|
//! | `2014-12-22T16:00:00Z` | RFC 3339 |
//! | `1419264000s` | Unix seconds |
//! | `1419264000000ms` | Unix milliseconds |
//! | `90m`, `6h`, `2d`, `1w` | that long before now |
//!
//! Seconds are not an age unit: `30s` would read as a time in 1970 under the
//! row above. A Unix time before 2000 is refused as a likely slip.

use chrono::DateTime;

/// The syntax, for error messages and `--help`.
pub const SYNTAX: &str =
    "an RFC 3339 time, Unix seconds (1419264000s), Unix milliseconds (1419264000000ms), \
     or an age such as 90m, 6h, 2d, 1w";

/// 2000-01-01T00:00:00Z in Unix milliseconds: earlier absolute times are
/// taken for a mistake (an age written with `s`, a count of minutes).
const EARLIEST_MS: i64 = 946_684_800_000;

/// Parses `s` into Unix milliseconds; ages count back from `now_ms`.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let bad = || format!("{s:?} is not a time: use {SYNTAX}");
    if num.is_empty() {
        return Err(bad());
    }
    let n: i64 = num.parse().map_err(|_| bad())?;
    let absolute = |ms: Option<i64>| match ms {
        Some(ms) if ms >= EARLIEST_MS => Ok(ms),
        _ => Err(format!(
            "{s:?} is before the year 2000: for an age write 90m, 6h or 2d; for a Unix time \
             give all its digits"
        )),
    };
    let age = |mult: i64| Ok(now_ms.saturating_sub(n.saturating_mul(mult)));
    match unit {
        "" => Err(format!(
            "{s:?} has no unit: write {s}s for Unix seconds, {s}ms for Unix milliseconds, \
             or an age such as {s}m or {s}h"
        )),
        "ms" => absolute(Some(n)),
        "s" => absolute(n.checked_mul(1000)),
        "m" => age(60_000),
        "h" => age(3_600_000),
        "d" => age(86_400_000),
        "w" => age(7 * 86_400_000),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_419_264_000_000; // 2014-12-22T16:00:00Z

    #[test]
    fn every_form_reads_the_same_instant() {
        for s in [
            "2014-12-22T16:00:00Z",
            "2014-12-22T17:00:00+01:00",
            "1419264000s",
            "1419264000000ms",
            " 1419264000s ",
        ] {
            assert_eq!(parse_time(s, 0), Ok(NOW), "{s}");
        }
    }

    /// The three forms `--since` always took, in this syntax (Unix
    /// seconds now carry their unit).
    #[test]
    fn since_forms() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time("2h", now), Ok(now - 7_200_000));
        assert_eq!(parse_time("1700000000s", now), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2014-12-22T16:00:00Z", now), Ok(NOW));
        assert!(parse_time("yesterday", now).is_err());
    }

    #[test]
    fn ages_count_back_from_now() {
        assert_eq!(parse_time("90m", NOW), Ok(NOW - 5_400_000));
        assert_eq!(parse_time("6h", NOW), Ok(NOW - 21_600_000));
        assert_eq!(parse_time("2d", NOW), Ok(NOW - 172_800_000));
        assert_eq!(parse_time("1w", NOW), Ok(NOW - 604_800_000));
        assert_eq!(parse_time("0h", NOW), Ok(NOW));
    }

    /// The trap this module exists for: a bare number has no unit.
    #[test]
    fn a_bare_number_is_refused_with_both_readings() {
        let e = parse_time("1419264000", NOW).unwrap_err();
        assert!(
            e.contains("1419264000s") && e.contains("1419264000ms"),
            "{e}"
        );
    }

    #[test]
    fn slips_are_refused() {
        // an age written in seconds would be 1970
        assert!(parse_time("30s", NOW)
            .unwrap_err()
            .contains("before the year 2000"));
        // seconds given where milliseconds were meant
        assert!(parse_time("1419264000ms", NOW).is_err());
        for bad in [
            "",
            "h",
            "yesterday",
            "5y",
            "-2h",
            "1.5h",
            "2h30m",
            "99999999999999999999s",
        ] {
            assert!(parse_time(bad, NOW).is_err(), "{bad:?}");
        }
    }
}
