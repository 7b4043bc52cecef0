//! HTTP dates (`Last-Modified`), parsed as Go's `http.ParseTime` does: the three formats of
//! RFC 7231 §7.1.1.1 — IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
//! (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`). BuildKit sets a
//! downloaded file's modification time from it, and to the Unix epoch when it is missing or
//! unparsable.

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Seconds since the Unix epoch of an HTTP date, or `None` if it is in none of the formats.
pub fn parse_http_date(s: &str) -> Option<i64> {
    imf_fixdate(s).or_else(|| rfc850(s)).or_else(|| asctime(s))
}

fn imf_fixdate(s: &str) -> Option<i64> {
    // Mon, 02 Jan 2006 15:04:05 GMT
    let (day, rest) = s.split_once(", ")?;
    DAYS.contains(&day).then_some(())?;
    let f: Vec<&str> = rest.split(' ').collect();
    let [d, mon, y, time, "GMT"] = f.as_slice() else { return None };
    (d.len() == 2 && y.len() == 4).then_some(())?;
    build(y.parse().ok()?, month(mon)?, d.parse().ok()?, time)
}

fn rfc850(s: &str) -> Option<i64> {
    // Monday, 02-Jan-06 15:04:05 MST (Go takes any zone name as UTC offset 0 when unknown;
    // HTTP requires GMT)
    let (day, rest) = s.split_once(", ")?;
    LONG_DAYS.contains(&day).then_some(())?;
    let (date, rest) = rest.split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    (zone == "GMT" || zone == "UTC").then_some(())?;
    let dm: Vec<&str> = date.split('-').collect();
    let [d, mon, yy] = dm.as_slice() else { return None };
    (d.len() == 2 && yy.len() == 2).then_some(())?;
    // Go's two-digit years: 69..99 are 19xx, 00..68 are 20xx.
    let yy: i64 = yy.parse().ok()?;
    let year = if yy >= 69 { 1900 + yy } else { 2000 + yy };
    build(year, month(mon)?, d.parse().ok()?, time)
}

fn asctime(s: &str) -> Option<i64> {
    // Mon Jan _2 15:04:05 2006
    let f: Vec<&str> = s.split(' ').filter(|p| !p.is_empty()).collect();
    let [day, mon, d, time, y] = f.as_slice() else { return None };
    DAYS.contains(day).then_some(())?;
    (d.len() <= 2 && y.len() == 4).then_some(())?;
    build(y.parse().ok()?, month(mon)?, d.parse().ok()?, time)
}

fn month(m: &str) -> Option<i64> {
    MONTHS.iter().position(|x| *x == m).map(|i| i as i64 + 1)
}

fn build(year: i64, month: i64, day: i64, time: &str) -> Option<i64> {
    let t: Vec<&str> = time.split(':').collect();
    let [h, m, s] = t.as_slice() else { return None };
    if h.len() != 2 || m.len() != 2 || s.len() != 2 {
        return None;
    }
    let (h, m, s): (i64, i64, i64) = (h.parse().ok()?, m.parse().ok()?, s.parse().ok()?);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 59 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + s)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_formats() {
        // 2001-02-03 04:05:06 UTC, what BuildKit set on a file served with this header.
        assert_eq!(parse_http_date("Sat, 03 Feb 2001 04:05:06 GMT"), Some(981173106));
        assert_eq!(parse_http_date("Saturday, 03-Feb-01 04:05:06 GMT"), Some(981173106));
        assert_eq!(parse_http_date("Sat Feb  3 04:05:06 2001"), Some(981173106));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("Tue, 29 Feb 2000 23:59:59 GMT"), Some(951868799));
        assert_eq!(parse_http_date("Wednesday, 31-Dec-69 00:00:00 GMT"), Some(-86400));
    }

    #[test]
    fn anything_else_is_none() {
        for bad in [
            "",
            "yesterday",
            "Sat, 03 Feb 2001 04:05:06 CET",
            "Sat, 3 Feb 2001 04:05:06 GMT",
            "Sat, 30 Feb 2001 04:05:06 GMT",
            "Sat, 03 Foo 2001 04:05:06 GMT",
            "Sat, 03 Feb 2001 24:05:06 GMT",
            "Sat, 03 Feb 2001 04:05 GMT",
            "2001-02-03T04:05:06Z",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }
}
