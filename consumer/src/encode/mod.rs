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
}
