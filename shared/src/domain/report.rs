//! The org usage report (`GET /v1/orgs/{orgId}/usage`), from a profile and
//! its counters as they stand at `now`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::catalogue::Catalogue;
use super::decision::Reason;
use super::feature::{Entitlement, entitlements};
use super::messages;
use super::org::OrgProfile;
use super::period::Period;
use super::rfc3339;
use super::usage::{Counter, Status, Usage};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgUsage {
    pub org_id: String,
    pub plan: String,
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
