//! What the domain's unit tests are built on: one instant and one counter.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::catalogue::{Enforcement, ResourceKind};
use super::locale::Locale;
use super::org::OrgId;
use super::period::Period;
use super::usage::Counter;

/// Mid-March 2026, mid-period for a period anchored on the 1st.
pub(crate) fn now() -> DateTime<Utc> {
    "2026-03-15T10:00:00Z".parse().unwrap()
}

/// A monthly `conversations` counter of a free org, in the period around [`now`].
pub(crate) fn counter(used: i64, limit: Option<i64>, enforcement: Enforcement) -> Counter {
    Counter {
        org_id: OrgId::parse("acme").unwrap(),
        resource: "conversations".into(),
        kind: ResourceKind::Period,
        plan: "free".into(),
        used,
        limit,
        enforcement,
        period: Some(Period::containing(now(), 1, Tz::UTC)),
        anchor_day: 1,
        timezone: Tz::UTC,
        locale: Locale::En,
        trial_ends_at: None,
        notified: vec![],
        notice: None,
        holds: vec![],
        stored_held: 0,
        hold_version: 0,
        grants: vec![],
        grant_version: 0,
    }
}
