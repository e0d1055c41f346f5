//! `UsagePeriodClosed`: one event per org and period (all its resources),
//! emitted once under a claim on the period's closed records, for billing.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Claimed, Delivered, DeliveryError, Letter, under_claim};
use crate::Deps;
use crate::domain::events::{ClosedResource, Event, UsagePeriodClosed};
use crate::domain::org::OrgId;
use crate::domain::period::ClosedPeriod;

/// Emits one `UsagePeriodClosed` per period (all its resources), each
/// claimed first so that concurrent or repeated runs emit it once. Returns
/// how many were emitted. A publish that certainly failed releases the
/// claim (the next run emits it); one whose outcome is unknown leaves it to
/// lapse as delivered: never a second billing event.
pub async fn deliver_period_closes(
    deps: &Deps,
    org: &OrgId,
    plan: &str,
    mut closed: Vec<ClosedPeriod>,
    now: DateTime<Utc>,
) -> Result<usize, DeliveryError> {
    closed
        .sort_by(|a, b| (a.period.start, a.period.end, &a.resource).cmp(&(b.period.start, b.period.end, &b.resource)));
    let mut emitted = 0;
    for group in closed.chunk_by(|a, b| a.period == b.period) {
        let Some(lease) = deps.store.claim_closed(org, group, deps.clock.now()).await? else {
            continue;
        };
        let resources = group
            .iter()
            .map(|c| ClosedResource {
                resource: c.resource.clone(),
                used: c.used,
                limit: c.limit,
                overage: c.overage,
                enforcement: c.enforcement,
                plan: c.plan.clone(),
            })
            .collect();
        let period = group[0].period;
        let event = UsagePeriodClosed {
            org_id: org.clone(),
            plan: plan.to_string(),
            period_id: UsagePeriodClosed::period_id(org, period),
            period,
            resources,
            at: now,
        };
        let letter = Letter { events: vec![event.entry()], email: None, patience: Duration::ZERO };
        match under_claim(deps, org, &Claimed::PeriodClose { group, now }, lease, None, letter).await? {
            Delivered::NotOurs => continue,
            Delivered::Sent { .. } => emitted += 1,
        }
    }
    Ok(emitted)
}
