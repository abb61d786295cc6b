//! Encoders of samples and snapshots, with no command line in them:
//! [`openmetrics`] (OpenMetrics text, from one snapshot or a sample) and
//! `json` (one JSON object per sample; feature `json`), `qmp` (QEMU's
//! `query-stats` and `query-stats-schemas` answers; feature `json`).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Counter, Kind, Unit};

#[cfg(feature = "json")]
pub mod json;
pub mod openmetrics;
#[cfg(feature = "json")]
pub mod qmp;

/// RFC 3339 UTC timestamp with microseconds: `2026-11-22T05:30:00.123456Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// The kind's name (`cumulative`, `instant`, `peak`, `linear-hist`,
/// `log2-hist`, or `kind-N` for one this revision does not know).
pub fn kind_name(k: Kind) -> String {
    k.name()
        .map_or_else(|| format!("kind-{}", k.0), str::to_owned)
}

/// The unit's name (`none`, `bytes`, `seconds`, `cycles`, `boolean`, or
/// `unit-N`).
pub fn unit_name(u: Unit) -> String {
    u.name()
        .map_or_else(|| format!("unit-{}", u.0), str::to_owned)
}

/// SI prefixes of [`si`], from 10^-12 to 10^18.
const PREFIXES: [&str; 11] = ["p", "n", "u", "m", "", "k", "M", "G", "T", "P", "E"];

/// A number for people, in 3 significant digits with an SI prefix, at
/// most 6 characters (the tool's table format): `0`, `2.50`, `65.6`, `999`, `1.66k`, `1.18M`, `2.00m`
/// (milli), `350u` (micro); scientific notation (`1.00e-15`) beyond
/// the prefixes; `-` for what is not finite.
pub fn si(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_owned();
    }
    if x == 0.0 {
        return "0".to_owned();
    }
    let mut p = (x.abs().log10() / 3.0).floor() as i32;
    for _ in 0..2 {
        let m = x / 1000f64.powi(p);
        let a = m.abs();
        let text = if a < 9.995 {
            format!("{m:.2}")
        } else if a < 99.95 {
            format!("{m:.1}")
        } else if a < 999.5 {
            format!("{m:.0}")
        } else {
            // Rounds up to 1000: the next prefix.
            p += 1;
            continue;
        };
        return match usize::try_from(p + 4).ok().and_then(|i| PREFIXES.get(i)) {
            Some(prefix) => format!("{text}{prefix}"),
            None => format!("{x:.2e}"),
        };
    }
    format!("{x:.2e}")
}

/// Whether the counter's value is shown as a rate (cumulative scalars).
pub fn shows_rate(c: &Counter) -> bool {
    c.kind() == Kind::CUMULATIVE && !c.is_histogram()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps() {
        let t = |s: u64, us: u64| {
            rfc3339(UNIX_EPOCH + Duration::from_secs(s) + Duration::from_micros(us))
        };
        assert_eq!(t(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(t(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(t(1_700_000_000, 123_456), "2023-11-14T22:13:20.123456Z");
        assert_eq!(t(4_102_444_799, 0), "2099-12-31T23:59:59.000000Z");
    }

    #[test]
    fn numbers() {
        assert_eq!(si(0.0), "0");
        assert_eq!(si(0.372), "372m");
        assert_eq!(si(2.5), "2.50");
        assert_eq!(si(12.345), "12.3");
        assert_eq!(si(123.45), "123");
        assert_eq!(si(999.7), "1.00k");
        assert_eq!(si(1659.0), "1.66k");
        assert_eq!(si(1.18e6), "1.18M");
        assert_eq!(si(0.002), "2.00m");
        assert_eq!(si(3.5e-4), "350u");
        assert_eq!(si(-2.5e9), "-2.50G");
        assert_eq!(si(1e-15), "1.00e-15");
        assert_eq!(si(f64::NAN), "-");
        for x in [1e300, -1e-300, -99_999.4, -0.001_234_5, 999_999.9] {
            assert!(si(x).len() <= 10, "{x}: {}", si(x));
        }
    }
}
