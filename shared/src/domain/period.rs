//! Billing periods: a calendar month that starts at 00:00 of the anchor day
//! in the org's time zone. An anchor past a month's end is clamped to its
//! last day (31 → Feb 28/29 → Mar 31).

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::catalogue::Enforcement;
use super::notice::InFlight;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    #[serde(serialize_with = "super::ser_rfc3339")]
    pub start: DateTime<Utc>,
    #[serde(serialize_with = "super::ser_rfc3339")]
    pub end: DateTime<Utc>,
}

impl Period {
    /// The period that contains `now`.
    pub fn containing(now: DateTime<Utc>, anchor_day: u32, tz: Tz) -> Period {
        let local = now.with_timezone(&tz).date_naive();
        let (mut year, mut month) = (local.year(), local.month());
        let mut start = period_start(year, month, anchor_day, tz);
        if start > now {
            (year, month) = previous_month(year, month);
            start = period_start(year, month, anchor_day, tz);
        }
        let (ny, nm) = next_month(year, month);
        Period { start, end: period_start(ny, nm, anchor_day, tz) }
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }

    /// Whole or partial days left, counting today.
    pub fn days_remaining(&self, now: DateTime<Utc>) -> i64 {
        let left = self.end - now;
        if left <= Duration::zero() { 0 } else { (left.num_seconds() + 86_399) / 86_400 }
    }
}

fn next_month(year: i32, month: u32) -> (i32, u32) {
    if month == 12 { (year + 1, 1) } else { (year, month + 1) }
}

fn previous_month(year: i32, month: u32) -> (i32, u32) {
    if month == 1 { (year - 1, 12) } else { (year, month - 1) }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = next_month(year, month);
    let first_next = NaiveDate::from_ymd_opt(ny, nm, 1).expect("valid month");
    first_next.pred_opt().expect("valid date").day()
}

/// 00:00 local on the (clamped) anchor day. Where 00:00 does not exist
/// (a DST gap at midnight), the first instant of that local day.
fn period_start(year: i32, month: u32, anchor_day: u32, tz: Tz) -> DateTime<Utc> {
    let day = anchor_day.clamp(1, days_in_month(year, month));
    let date = NaiveDate::from_ymd_opt(year, month, day).expect("clamped day is valid");
    let mut local = date.and_hms_opt(0, 0, 0).expect("midnight is valid");
    for _ in 0..48 {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
            LocalResult::None => local += Duration::minutes(30),
        }
    }
    // No zone has a gap this long; fall back to UTC midnight rather than panic.
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight is valid"))
}

/// A period that ended, with its final figures, for billing, and the state
/// of its notice (see `notice_claims`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedPeriod {
    pub resource: String,
    pub plan: String,
    pub period: Period,
    pub used: i64,
    pub limit: Option<i64>,
    pub overage: i64,
    pub enforcement: Enforcement,
    pub notified: Vec<u32>,
    /// A notice may still be due, or was in flight when the period closed.
    pub owed: bool,
    /// The threshold notice's claim, while one is in flight.
    pub notice: Option<InFlight>,
    /// `UsagePeriodClosed` has gone out.
    pub emitted: bool,
    /// The period-close event's claim, while one is in flight.
    pub emit: Option<InFlight>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn first_of_month_in_utc() {
        let p = Period::containing(utc("2026-03-15T10:00:00Z"), 1, Tz::UTC);
        assert_eq!(p.start, utc("2026-03-01T00:00:00Z"));
        assert_eq!(p.end, utc("2026-04-01T00:00:00Z"));
    }

    #[test]
    fn anchor_31_clamps_to_february_and_returns_to_31() {
        let tz = Tz::UTC;
        let p = Period::containing(utc("2026-02-10T00:00:00Z"), 31, tz);
        assert_eq!(p.start, utc("2026-01-31T00:00:00Z"));
        assert_eq!(p.end, utc("2026-02-28T00:00:00Z"));
        let p = Period::containing(utc("2026-03-05T00:00:00Z"), 31, tz);
        assert_eq!(p.start, utc("2026-02-28T00:00:00Z"));
        assert_eq!(p.end, utc("2026-03-31T00:00:00Z"));
        let p = Period::containing(utc("2028-02-29T12:00:00Z"), 31, tz);
        assert_eq!(p.start, utc("2028-02-29T00:00:00Z"), "leap year");
    }

    #[test]
    fn time_zone_moves_the_boundary() {
        let tz: Tz = "Europe/Copenhagen".parse().unwrap();
        // 1 March 00:00 in Copenhagen (CET, UTC+1) is 28 Feb 23:00 UTC.
        let p = Period::containing(utc("2026-02-28T23:30:00Z"), 1, tz);
        assert_eq!(p.start, utc("2026-02-28T23:00:00Z"));
        // 1 April 00:00 is in summer time (CEST, UTC+2).
        assert_eq!(p.end, utc("2026-03-31T22:00:00Z"));
        let before = Period::containing(utc("2026-02-28T22:59:59Z"), 1, tz);
        assert_eq!(before.end, p.start);
    }

    #[test]
    fn midnight_in_a_dst_gap_starts_at_the_first_valid_instant() {
        // Santiago moved clocks 00:00 → 01:00 on 2022-09-11.
        let tz: Tz = "America/Santiago".parse().unwrap();
        let p = Period::containing(utc("2022-09-20T12:00:00Z"), 11, tz);
        assert_eq!(p.start, utc("2022-09-11T04:00:00Z"));
    }

    #[test]
    fn days_remaining_counts_partial_days() {
        let p = Period::containing(utc("2026-03-30T12:00:00Z"), 1, Tz::UTC);
        assert_eq!(p.days_remaining(utc("2026-03-30T12:00:00Z")), 2);
        assert_eq!(p.days_remaining(utc("2026-03-31T23:59:59Z")), 1);
    }

    proptest! {
        #[test]
        fn periods_tile_time(secs in 0i64..4_000_000_000, anchor in 1u32..=31, zone in 0usize..5) {
            let zones = ["UTC", "Europe/Copenhagen", "America/New_York", "Pacific/Auckland", "Asia/Kolkata"];
            let tz: Tz = zones[zone].parse().unwrap();
            let now = DateTime::from_timestamp(secs, 0).unwrap();
            let p = Period::containing(now, anchor, tz);
            prop_assert!(p.contains(now));
            prop_assert!(p.end - p.start >= Duration::days(27) && p.end - p.start <= Duration::days(32));
            // The next period starts exactly where this one ends.
            let next = Period::containing(p.end, anchor, tz);
            prop_assert_eq!(next.start, p.end);
            let local = p.start.with_timezone(&tz);
            prop_assert!(local.day() == anchor.min(days_in_month(local.year(), local.month())));
        }
    }
}
