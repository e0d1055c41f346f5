//! A resource's usage: its counter (what the table keeps), the counter as
//! read at `now` (`Usage`: status, remaining, overage, forecast) and a day's
//! snapshot. Pure: the caller passes `now`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use chrono_tz::Tz;

use super::MAX_COUNT;
use super::catalogue::{Catalogue, Enforcement, ResourceKind};
use super::grant::Grant;
use super::locale::Locale;
use super::notice::InFlight;
use super::org::{OrgId, OrgProfile};
use super::period::Period;
use super::reservation::Hold;

/// Why a counter refuses more units (see [`Counter::refusal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    QuotaExceeded,
    TrialExpired,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::QuotaExceeded => "quota_exceeded",
            Reason::TrialExpired => "trial_expired",
        }
    }
}

/// The settings a counter takes from its org's profile and the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterSettings {
    pub plan: String,
    pub limit: Option<i64>,
    pub enforcement: Enforcement,
    pub locale: Locale,
    pub timezone: Tz,
    pub anchor_day: u32,
    pub trial_ends_at: Option<DateTime<Utc>>,
}

impl CounterSettings {
    /// `None` when the plan has no entry for `resource`.
    pub fn of(profile: &OrgProfile, resource: &str, catalogue: &Catalogue) -> Option<Self> {
        let allowance = catalogue.allowance(&profile.plan, resource, &profile.limits)?;
        Some(CounterSettings {
            plan: profile.plan.clone(),
            limit: allowance.limit,
            enforcement: allowance.enforcement,
            locale: profile.locale,
            timezone: profile.timezone,
            anchor_day: profile.anchor_day,
            trial_ends_at: profile.active_trial(catalogue),
        })
    }
}

/// What the store knows of one resource of one org.
#[derive(Debug, Clone, PartialEq)]
pub struct Counter {
    pub org_id: OrgId,
    pub resource: String,
    pub kind: ResourceKind,
    pub plan: String,
    pub used: i64,
    pub limit: Option<i64>,
    pub enforcement: Enforcement,
    /// The period `used` counts in (`period` resources only).
    pub period: Option<Period>,
    pub anchor_day: u32,
    pub timezone: chrono_tz::Tz,
    pub locale: Locale,
    /// Set while the org is on a plan with a trial.
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// Thresholds (percent) already notified in `period`.
    pub notified: Vec<u32>,
    /// A threshold notice being sent, if one is (see `store::notice_claims`).
    pub notice: Option<InFlight>,
    /// Units held for open reservations; they count against the limit.
    pub holds: Vec<Hold>,
    /// `held` as the item stores it: the sum of `holds`, unless a write went
    /// wrong. What a write that resets it pins.
    pub stored_held: i64,
    /// Changes with every change to `holds`: what a write that rewrites
    /// them pins.
    pub hold_version: i64,
    /// Grants `limit` includes.
    pub grants: Vec<Grant>,
    /// Changes with every change to `grants`: what a write of the limit pins.
    pub grant_version: i64,
}

impl Counter {
    /// A counter at 0, before anything was written to it: a `period`
    /// resource's in the period that holds `now`.
    pub fn fresh(
        org: &OrgId,
        resource: &str,
        kind: ResourceKind,
        settings: &CounterSettings,
        now: DateTime<Utc>,
    ) -> Counter {
        Counter {
            org_id: org.clone(),
            resource: resource.to_string(),
            kind,
            plan: settings.plan.clone(),
            used: 0,
            limit: settings.limit,
            enforcement: settings.enforcement,
            period: (kind == ResourceKind::Period)
                .then(|| Period::containing(now, settings.anchor_day, settings.timezone)),
            anchor_day: settings.anchor_day,
            timezone: settings.timezone,
            locale: settings.locale,
            trial_ends_at: settings.trial_ends_at,
            notified: Vec::new(),
            notice: None,
            holds: Vec::new(),
            stored_held: 0,
            hold_version: 0,
            grants: Vec::new(),
            grant_version: 0,
        }
    }

    /// Units held by the reservations on the counter.
    pub fn held(&self) -> i64 {
        self.holds.iter().map(|h| h.amount).sum()
    }

    /// The limit without its grants: the plan's, or the org's override.
    pub fn plan_limit(&self) -> Option<i64> {
        self.limit.map(|l| l - self.grants.iter().map(|g| g.amount).sum::<i64>())
    }

    /// Whether holds or grants that have expired by `now` are still on the
    /// counter (a write takes them off).
    pub fn lapsed(&self, now: DateTime<Utc>) -> bool {
        self.holds.iter().any(|h| h.expired(now)) || self.grants.iter().any(|g| g.expired(now))
    }

    /// The limit that held through a period ending at `end`: grants that
    /// expired before it do not count (one expiring at its end does).
    pub fn limit_through(&self, end: DateTime<Utc>) -> Option<i64> {
        let lapsed: i64 = self.grants.iter().filter(|g| g.expires_at < end).map(|g| g.amount).sum();
        self.limit.map(|l| l - lapsed)
    }

    /// Whether the counter's period has ended by `now`. A period that starts
    /// after `now` (written by a server whose clock is ahead) has not: periods
    /// only move forward.
    pub fn period_ended(&self, now: DateTime<Utc>) -> bool {
        self.period.is_some_and(|p| p.end <= now)
    }

    /// The counter as it stands at `now`: a period that has ended counts as a
    /// fresh one at 0, whether or not anything has been written since.
    /// Holds and grants expired by `now` count for nothing, as if already
    /// taken off.
    pub fn at(&self, now: DateTime<Utc>) -> Counter {
        let mut counter = match self.period {
            Some(_) if self.period_ended(now) => Counter {
                used: 0,
                period: Some(Period::containing(now, self.anchor_day, self.timezone)),
                notified: Vec::new(),
                notice: None,
                ..self.clone()
            },
            _ => self.clone(),
        };
        if counter.lapsed(now) {
            let lapsed: i64 = counter.grants.iter().filter(|g| g.expired(now)).map(|g| g.amount).sum();
            counter.limit = counter.limit.map(|l| l - lapsed);
            counter.grants.retain(|g| !g.expired(now));
            counter.holds.retain(|h| !h.expired(now));
        }
        counter
    }

    pub fn trial_expired(&self, now: DateTime<Utc>) -> bool {
        self.trial_ends_at.is_some_and(|end| end <= now)
    }

    /// Whether `amount` more units would be refused: by a hard limit (held
    /// units count), or because the count would pass `MAX_COUNT` (2^53 − 1),
    /// past which JSON clients lose exactness; soft and unlimited resources
    /// stop there too.
    pub fn would_exceed(&self, amount: i64) -> bool {
        let after = self.used.saturating_add(self.held()).saturating_add(amount);
        after > MAX_COUNT || (self.enforcement == Enforcement::Hard && self.limit.is_some_and(|limit| after > limit))
    }

    /// Why `amount` more units would be refused at `now`, if they would.
    pub fn refusal(&self, amount: i64, now: DateTime<Utc>) -> Option<Reason> {
        if self.trial_expired(now) {
            Some(Reason::TrialExpired)
        } else if self.would_exceed(amount) {
            Some(Reason::QuotaExceeded)
        } else {
            None
        }
    }

    /// Usage as shown to clients. Call on `self.at(now)`.
    pub fn usage(&self, now: DateTime<Utc>) -> Usage {
        let limit = self.limit;
        Usage {
            resource: self.resource.clone(),
            kind: self.kind,
            used: self.used,
            held: self.held(),
            limit,
            plan_limit: self.plan_limit(),
            grants: self.grants.clone(),
            remaining: limit.map(|l| (l - self.used - self.held()).max(0)),
            percentage: limit.map(|l| percentage(self.used, l)),
            overage: limit.map_or(0, |l| (self.used - l).max(0)),
            status: Status::of(self.used, limit),
            blocked: self.refusal(1, now).is_some(),
            enforcement: self.enforcement,
            period: self.period,
            forecast: self.forecast(now).map(super::rfc3339),
        }
    }

    /// When the limit is reached if use goes on at this period's rate so
    /// far: `None` for `total` resources, when unlimited, unused, already
    /// reached, or not within this period. Needs an hour of history.
    pub fn forecast(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let period = self.period?;
        let limit = self.limit?;
        let elapsed = (now - period.start).num_seconds();
        if self.used <= 0 || self.used >= limit || elapsed < 3600 {
            return None;
        }
        let to_limit = i64::try_from(i128::from(elapsed) * i128::from(limit) / i128::from(self.used)).ok()?;
        // Checked: a limit of 10^15 would put the date past what time can hold.
        let at = period.start.checked_add_signed(chrono::Duration::try_seconds(to_limit)?)?;
        (at < period.end).then_some(at)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Exceeded,
}

impl Status {
    pub fn of(used: i64, limit: Option<i64>) -> Status {
        match limit {
            None => Status::Ok,
            Some(l) if used >= l => Status::Exceeded,
            Some(l) if i128::from(used) * 100 >= i128::from(l) * 80 => Status::Warning,
            Some(_) => Status::Ok,
        }
    }
}

/// Percent of the limit used, to two decimals. A limit of 0 is full at once.
pub fn percentage(used: i64, limit: i64) -> f64 {
    if limit <= 0 {
        return 100.0;
    }
    (used as f64 * 10_000.0 / limit as f64).round() / 100.0
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    pub resource: String,
    pub kind: ResourceKind,
    pub used: i64,
    /// Units held by open reservations.
    pub held: i64,
    /// The effective limit: the plan's (or the org's override) plus grants.
    pub limit: Option<i64>,
    #[serde(rename = "planLimit")]
    pub plan_limit: Option<i64>,
    /// Live grants.
    pub grants: Vec<Grant>,
    /// What may still be consumed: the limit less used and held units.
    pub remaining: Option<i64>,
    pub percentage: Option<f64>,
    pub overage: i64,
    pub status: Status,
    pub blocked: bool,
    pub enforcement: Enforcement,
    pub period: Option<Period>,
    /// When the limit is reached at this period's rate (`period` resources).
    pub forecast: Option<String>,
}

/// A day's usage of one resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub date: String,
    pub used: i64,
    pub limit: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::{counter, now};
    use chrono_tz::Tz;

    #[test]
    fn status_boundaries() {
        assert_eq!(Status::of(79, Some(100)), Status::Ok);
        assert_eq!(Status::of(80, Some(100)), Status::Warning);
        assert_eq!(Status::of(99, Some(100)), Status::Warning);
        assert_eq!(Status::of(100, Some(100)), Status::Exceeded);
        assert_eq!(Status::of(10_000, None), Status::Ok);
    }

    #[test]
    fn unlimited_has_no_percentage() {
        let u = counter(5, None, Enforcement::Hard).usage(now());
        assert_eq!((u.limit, u.remaining, u.percentage), (None, None, None));
        assert!(!u.blocked);
    }

    #[test]
    fn a_finished_period_reads_as_zero() {
        let c = counter(42, Some(100), Enforcement::Hard);
        let later: DateTime<Utc> = "2026-04-02T00:00:00Z".parse().unwrap();
        let fresh = c.at(later);
        assert_eq!(fresh.used, 0);
        assert_eq!(fresh.period.unwrap().start, "2026-04-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(c.at(now()).used, 42);
    }

    #[test]
    fn a_period_ahead_of_the_clock_is_current() {
        // Written by a server already in April; read with a clock still in March.
        let mut c = counter(7, Some(100), Enforcement::Hard);
        let april = Period::containing("2026-04-01T00:00:00Z".parse().unwrap(), 1, Tz::UTC);
        c.period = Some(april);
        let late: DateTime<Utc> = "2026-03-31T23:59:59Z".parse().unwrap();
        assert!(!c.period_ended(late));
        assert_eq!(c.at(late).used, 7);
        assert_eq!(c.at(late).period, Some(april));
        assert!(c.period_ended(april.end));
    }

    #[test]
    fn expired_holds_and_grants_count_for_nothing_from_their_expiry() {
        use crate::domain::grant::Grant;
        use crate::domain::reservation::Hold;
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let mut c = counter(90, Some(150), Enforcement::Hard);
        c.grants = vec![
            Grant { id: "grt_a".into(), amount: 30, expires_at: at("2026-03-20T00:00:00Z") },
            Grant { id: "grt_b".into(), amount: 20, expires_at: at("2026-04-01T00:00:00Z") },
        ];
        c.holds = vec![Hold { nonce: "n".into(), amount: 40, expires_at: at("2026-03-15T10:10:00Z") }];
        assert_eq!((c.plan_limit(), c.held()), (Some(100), 40));
        assert!(c.would_exceed(21), "90 used + 40 held + 21 > 150");
        assert!(!c.would_exceed(20));

        let later = c.at(at("2026-03-15T10:10:00Z"));
        assert_eq!((later.held(), later.limit, later.grants.len()), (0, Some(150), 2), "the hold ended");
        let after_a = c.at(at("2026-03-20T00:00:00Z"));
        assert_eq!((after_a.limit, after_a.plan_limit(), after_a.grants.len()), (Some(120), Some(100), 1));
        assert!(c.lapsed(at("2026-03-15T10:10:00Z")) && !c.lapsed(at("2026-03-15T10:09:59Z")));

        // Billed on the limit that held through the period's end: a grant
        // that ends with the period counts, one that ended before does not.
        assert_eq!(c.limit_through(at("2026-04-01T00:00:00Z")), Some(120));
        let usage = after_a.usage(at("2026-03-20T00:00:00Z"));
        assert_eq!((usage.limit, usage.plan_limit, usage.remaining, usage.held), (Some(120), Some(100), Some(30), 0));
    }

    #[test]
    fn forecast_extrapolates_this_periods_rate() {
        // 15 March 10:00 is 14 days 10 hours into March; 50 of 100 used.
        let c = counter(50, Some(100), Enforcement::Hard);
        let at = c.forecast(now()).unwrap();
        assert_eq!(at, "2026-03-29T20:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(c.usage(now()).forecast.as_deref(), Some("2026-03-29T20:00:00Z"));
        // At this rate the limit is not reached before the period ends.
        assert_eq!(counter(20, Some(100), Enforcement::Hard).forecast(now()), None);
        assert_eq!(counter(100, Some(100), Enforcement::Soft).forecast(now()), None);
        assert_eq!(counter(0, Some(100), Enforcement::Soft).forecast(now()), None);
        assert_eq!(counter(10, None, Enforcement::Soft).forecast(now()), None);
        // Far beyond any period, and beyond what a date can hold: no forecast, no panic.
        for limit in [1_000_000_000_000, crate::domain::MAX_COUNT] {
            let u = counter(1, Some(limit), Enforcement::Soft).usage(now());
            assert_eq!(u.forecast, None);
        }
    }
}
