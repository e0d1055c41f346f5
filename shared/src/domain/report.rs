//! The org usage report (`GET /v1/orgs/{orgId}/usage`), from a profile and
//! its counters as they stand at `now`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::catalogue::Catalogue;
use super::feature::{Entitlement, entitlements};
use super::messages;
use super::org::OrgProfile;
use super::period::Period;
use super::rfc3339;
use super::usage::Reason;
use super::usage::{Counter, Status, Usage};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgUsage {
    pub org_id: String,
    pub plan: String,
    /// The language the org's people read: the texts the service writes
    /// for them, and what a screen showing this report should use.
    pub locale: super::locale::Locale,
    /// The org's IANA time zone: its periods begin and end at midnight
    /// there, and a screen should write their dates in it.
    pub timezone: String,
    pub period: PeriodInfo,
    pub resources: Vec<Usage>,
    pub at_risk: AtRisk,
    pub blocked: Blocked,
    pub notifications_sent: BTreeMap<String, Vec<u32>>,
    pub trial: Option<Trial>,
    pub features: BTreeMap<String, Entitlement>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeriodInfo {
    pub start: String,
    pub end: String,
    pub days_remaining: i64,
    pub next_reset: String,
}

#[derive(Debug, Serialize)]
pub struct AtRisk {
    pub approaching: Vec<String>,
    pub exceeded: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Blocked {
    pub blocked: bool,
    pub reason: Option<Reason>,
    pub resources: Vec<String>,
    pub message: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trial {
    pub ends_at: String,
    pub expired: bool,
}

/// `counters`: every resource of the org, each already `at(now)`.
pub fn org_usage(profile: &OrgProfile, counters: &[Counter], catalogue: &Catalogue, now: DateTime<Utc>) -> OrgUsage {
    let period = Period::containing(now, profile.anchor_day, profile.timezone);
    let resources: Vec<Usage> = counters.iter().map(|c| c.usage(now)).collect();
    let names = |status: Status| -> Vec<String> {
        resources.iter().filter(|u| u.status == status).map(|u| u.resource.clone()).collect()
    };
    let trial = profile.active_trial(catalogue).map(|end| Trial { ends_at: rfc3339(end), expired: end <= now });
    let trial_expired = trial.as_ref().is_some_and(|t| t.expired);
    let blocked_resources: Vec<&Counter> = counters.iter().filter(|c| c.refusal(1, now).is_some()).collect();
    let reason = if trial_expired {
        Some(Reason::TrialExpired)
    } else if !blocked_resources.is_empty() {
        Some(Reason::QuotaExceeded)
    } else {
        None
    };
    let message = reason.map(|r| {
        // The first blocked resource names the message (trial: any resource).
        let c = blocked_resources.first().copied().or(counters.first());
        let (resource, kind) =
            c.map_or(("conversations", super::catalogue::ResourceKind::Period), |c| (c.resource.as_str(), c.kind));
        messages::refusal(r, resource, kind, profile.locale, catalogue)
    });
    OrgUsage {
        org_id: profile.org_id.to_string(),
        plan: profile.plan.clone(),
        locale: profile.locale,
        timezone: profile.timezone.name().to_string(),
        period: PeriodInfo {
            start: rfc3339(period.start),
            end: rfc3339(period.end),
            days_remaining: period.days_remaining(now),
            next_reset: rfc3339(period.end),
        },
        at_risk: AtRisk { approaching: names(Status::Warning), exceeded: names(Status::Exceeded) },
        blocked: Blocked {
            blocked: reason.is_some(),
            reason,
            resources: blocked_resources.iter().map(|c| c.resource.clone()).collect(),
            message,
        },
        notifications_sent: counters
            .iter()
            .filter(|c| !c.notified.is_empty())
            .map(|c| (c.resource.clone(), c.notified.clone()))
            .collect(),
        trial,
        resources,
        features: entitlements(profile, catalogue),
    }
}

/// An org in the admin's list (`GET /v1/admin/orgs`): how much at risk it is.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgSummary {
    pub org_id: String,
    pub plan: String,
    pub locale: super::locale::Locale,
    pub trial_ends_at: Option<String>,
    pub blocked: bool,
    pub blocked_reason: Option<Reason>,
    /// Resources at 80 % of their limit or more.
    pub at_risk: Vec<String>,
    /// The resource nearest its limit (the highest percentage), if any is limited.
    pub worst: Option<Worst>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Worst {
    pub resource: String,
    pub used: i64,
    pub limit: Option<i64>,
    pub percentage: Option<f64>,
    pub status: Status,
}

/// Which orgs a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgFilter {
    All,
    /// Some resource at 80 % or more.
    AtRisk,
    Blocked,
    /// A trial that ends within [`TRIAL_ENDING_DAYS`] and has not yet.
    TrialEnding,
}

/// How close a trial's end must be for the org to be "trial ending".
pub const TRIAL_ENDING_DAYS: i64 = 7;

impl OrgFilter {
    pub fn parse(text: &str) -> Option<OrgFilter> {
        match text {
            "all" => Some(OrgFilter::All),
            "at_risk" => Some(OrgFilter::AtRisk),
            "blocked" => Some(OrgFilter::Blocked),
            "trial_ending" => Some(OrgFilter::TrialEnding),
            _ => None,
        }
    }
}

impl OrgSummary {
    pub fn of(usage: &OrgUsage) -> OrgSummary {
        let worst = usage
            .resources
            .iter()
            .filter(|u| u.percentage.is_some())
            .max_by(|a, b| a.percentage.partial_cmp(&b.percentage).unwrap_or(std::cmp::Ordering::Equal))
            .map(|u| Worst {
                resource: u.resource.clone(),
                used: u.used,
                limit: u.limit,
                percentage: u.percentage,
                status: u.status,
            });
        let mut at_risk = usage.at_risk.exceeded.clone();
        at_risk.extend(usage.at_risk.approaching.iter().cloned());
        OrgSummary {
            org_id: usage.org_id.clone(),
            plan: usage.plan.clone(),
            locale: usage.locale,
            trial_ends_at: usage.trial.as_ref().map(|t| t.ends_at.clone()),
            blocked: usage.blocked.blocked,
            blocked_reason: usage.blocked.reason,
            at_risk,
            worst,
        }
    }

    /// Whether `filter` shows this org at `now`.
    pub fn shown(&self, filter: OrgFilter, now: DateTime<Utc>) -> bool {
        match filter {
            OrgFilter::All => true,
            OrgFilter::AtRisk => !self.at_risk.is_empty() || self.blocked,
            OrgFilter::Blocked => self.blocked,
            OrgFilter::TrialEnding => self
                .trial_ends_at
                .as_deref()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                .is_some_and(|end| end > now && end - now <= chrono::Duration::days(TRIAL_ENDING_DAYS)),
        }
    }

    /// Most at risk first: blocked orgs, then by the worst percentage.
    pub fn riskier(a: &OrgSummary, b: &OrgSummary) -> std::cmp::Ordering {
        let pct = |s: &OrgSummary| s.worst.as_ref().and_then(|w| w.percentage).unwrap_or(-1.0);
        b.blocked.cmp(&a.blocked).then(pct(b).partial_cmp(&pct(a)).unwrap_or(std::cmp::Ordering::Equal))
    }
}
