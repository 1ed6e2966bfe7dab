//! Wall-clock helpers: Unix milliseconds, RFC 3339 timestamps, durations as operators type them, ages.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds: `2026-05-01T12:34:56.789Z`.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Parses `500ms`, `30s`, `5m`, `2h` or a bare number of seconds.
///
/// # Errors
///
/// A message naming the accepted forms.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("invalid duration '{text}': use e.g. 500ms, 30s, 5m, 2h"))?;
    let ms = match unit {
        "ms" => Some(number),
        "" | "s" => number.checked_mul(1000),
        "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => None,
    };
    ms.map(Duration::from_millis).ok_or_else(|| format!("invalid duration '{text}': use e.g. 500ms, 30s, 5m, 2h"))
}

/// How long ago `then_ms` was, seen from `now_ms`, for a table: `850ms ago`, `12s ago`, `5m ago`, `3h ago`,
/// `2d ago`; `in the future` for a clock ahead of ours.
pub fn age(now_ms: u64, then_ms: u64) -> String {
    let Some(ms) = now_ms.checked_sub(then_ms) else {
        return "in the future".to_owned();
    };
    match ms {
        0..1_000 => format!("{ms}ms ago"),
        1_000..120_000 => format!("{}s ago", ms / 1000),
        120_000..7_200_000 => format!("{}m ago", ms / 60_000),
        7_200_000..172_800_000 => format!("{}h ago", ms / 3_600_000),
        _ => format!("{}d ago", ms / 86_400_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_447_857_123), "2026-11-23T15:30:57.123Z");
        assert_eq!(rfc3339(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn durations_and_ages() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "s", "-1s", "3 days", "1.5s", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(age(10_000, 9_500), "500ms ago");
        assert_eq!(age(100_000, 40_000), "60s ago");
        assert_eq!(age(1_000_000, 0), "16m ago");
        assert_eq!(age(0, 1), "in the future");
    }
}
