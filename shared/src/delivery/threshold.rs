//! Threshold notices: the email a counter (or, once its period is closed,
//! the period's record) still owes for the highest threshold its count
//! reached, and the crossing's events, each under a claim on that item.
//! The consume path sends one right after the write that crossed it; the
//! daily job sends what is left.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{Claimed, Delivered, Delivery, DeliveryError, Letter, under_claim};
use crate::Deps;
use crate::domain::catalogue::{Enforcement, ResourceKind};
use crate::domain::events::{Event, EventKind, QuotaExceeded, QuotaThresholdCrossed};
use crate::domain::notice::{threshold_owed, threshold_reached};
use crate::domain::org::{OrgId, OrgProfile};
use crate::domain::period::{ClosedPeriod, Period};
use crate::domain::usage::Counter;
use crate::email::templates::{self, ThresholdNotice};
use crate::store::notice_claims::{Marked, NoticeHolder};
use crate::timeouts::{NOTIFY_BUDGET, within};

/// A threshold notice: the figures it reports and where its state is kept.
#[derive(Debug, Clone)]
struct Notice {
    resource: String,
    kind: ResourceKind,
    plan: String,
    used: i64,
    limit: i64,
    enforcement: Enforcement,
    period: Option<Period>,
    notified: Vec<u32>,
    holder: NoticeHolder,
}

impl Notice {
    fn of_counter(c: &Counter) -> Option<Notice> {
        Some(Notice {
            resource: c.resource.clone(),
            kind: c.kind,
            plan: c.plan.clone(),
            used: c.used,
            limit: c.limit?,
            enforcement: c.enforcement,
            period: c.period,
            notified: c.notified.clone(),
            holder: NoticeHolder::Counter(c.period),
        })
    }

    fn of_closed(c: &ClosedPeriod) -> Option<Notice> {
        Some(Notice {
            resource: c.resource.clone(),
            kind: ResourceKind::Period,
            plan: c.plan.clone(),
            used: c.used,
            limit: c.limit?,
            enforcement: c.enforcement,
            period: Some(c.period),
            notified: c.notified.clone(),
            holder: NoticeHolder::Closed(c.period),
        })
    }

    fn of(item: &Marked) -> Option<Notice> {
        match item {
            Marked::Counter(counter) => Notice::of_counter(counter),
            Marked::Closed(record) => Notice::of_closed(record),
        }
    }

    fn owed(&self) -> Option<u32> {
        threshold_owed(self.used, Some(self.limit), self.enforcement, &self.notified)
    }
}

/// Sends the threshold email a counter still owes, if any, and publishes
/// the crossing, once its claim is won. `rounds`: how many notices in a row
/// (a mark returns the counter as it stands, so one deferred behind this
/// sender's claim is sent next); the consume path sends one, the job a few.
/// `budget` bounds claiming and recording `sending`; the calls and the mark
/// have bounds of their own; SES's throttling is retried for as long as
/// `budget` too.
pub async fn deliver_threshold(
    deps: &Deps,
    profile: &OrgProfile,
    counter: &Counter,
    now: DateTime<Utc>,
    budget: Duration,
    rounds: usize,
) -> Result<Delivery, DeliveryError> {
    let start = Marked::Counter(Box::new(counter.clone()));
    deliver_rounds(deps, profile, start, now, budget, rounds, budget).await
}

/// Sends what a closed period still owes, the highest threshold its final
/// count reached, and then, when nothing is owed any more, settles its
/// `owed` flag; at most `rounds` notices.
pub async fn deliver_closed_threshold(
    deps: &Deps,
    profile: &OrgProfile,
    closed: &ClosedPeriod,
    now: DateTime<Utc>,
    budget: Duration,
    rounds: usize,
) -> Result<Delivery, DeliveryError> {
    deliver_rounds(deps, profile, Marked::Closed(closed.clone()), now, budget, rounds, budget).await
}

/// Up to `rounds` notices in a row from one item (a counter, or a closed
/// period's record), each on the item as the last mark left it. `budget`
/// bounds claiming and `sending`; SES's throttling is retried for
/// `patience` (none on the consume path: the job sends what is left). A
/// closed record that owes nothing more has its `owed` flag settled; a
/// counter's notice that a rollover moved to the closed record ends the
/// rounds (the job sends what the record owes).
async fn deliver_rounds(
    deps: &Deps,
    profile: &OrgProfile,
    mut current: Marked,
    now: DateTime<Utc>,
    budget: Duration,
    rounds: usize,
    patience: Duration,
) -> Result<Delivery, DeliveryError> {
    let deadline = Instant::now() + budget;
    let mut done = Delivery::default();
    for _ in 0..rounds {
        let owed = Notice::of(&current).and_then(|n| n.owed().map(|t| (n, t)));
        let Some((notice, threshold)) = owed else {
            if let Marked::Closed(record) = &current {
                deps.store.settle_closed_notice(&profile.org_id, &record.resource, record.period).await?;
            }
            break;
        };
        // Boxed: the delivery's state machine is large, and would otherwise
        // sit inline in every caller's future (the consume handler's too).
        match Box::pin(deliver(deps, profile, &notice, threshold, now, deadline, patience)).await? {
            Delivered::NotOurs => break,
            Delivered::Sent { emailed, rejected, after } => {
                done.add(emailed, rejected);
                current = match (current, after) {
                    (Marked::Counter(_), Some(after @ Marked::Counter(_))) => after,
                    (Marked::Closed(_), Some(after @ Marked::Closed(_))) => after,
                    _ => break,
                };
            }
        }
    }
    Ok(done)
}

/// One threshold notice: its claim (taken and checked with a fresh reading
/// of the clock: a long job run must not claim with the time it started),
/// then the claimed-delivery sequence.
async fn deliver(
    deps: &Deps,
    profile: &OrgProfile,
    notice: &Notice,
    threshold: u32,
    now: DateTime<Utc>,
    deadline: Instant,
    patience: Duration,
) -> Result<Delivered, DeliveryError> {
    let org = &profile.org_id;
    let resource = notice.resource.as_str();
    let left = || deadline.saturating_duration_since(Instant::now());
    if left().is_zero() {
        return Err(DeliveryError::OutOfTime);
    }
    let claim_at = deps.clock.now();
    let claim = async {
        match notice.holder {
            NoticeHolder::Counter(period) => {
                deps.store.claim_threshold(org, resource, threshold, notice.limit, period, claim_at).await
            }
            NoticeHolder::Closed(period) => {
                deps.store.claim_closed_threshold(org, resource, threshold, period, claim_at).await
            }
        }
    };
    // Out of time while claiming: a claim that went through lapses without
    // `sending`, and whoever comes next may take it over.
    let Some(claim) = within(left(), claim).await.ok_or(DeliveryError::OutOfTime)?? else {
        return Ok(Delivered::NotOurs);
    };
    let recipients = profile.contacts.recipients();
    let email = (!recipients.is_empty()).then(|| {
        templates::threshold_email(&ThresholdNotice {
            org_id: org.to_string(),
            plan: notice.plan.clone(),
            resource: notice.resource.clone(),
            kind: notice.kind,
            threshold,
            used: notice.used,
            limit: notice.limit,
            blocks_at_limit: notice.enforcement == Enforcement::Hard,
            locale: profile.locale,
            dashboard_url: deps.notifier.dashboard_url().to_string(),
        })
    });
    let first_full = threshold >= 100 && claim.top_before.is_none_or(|top| top < 100);
    let letter = Letter {
        events: crossing_events(org, notice, threshold, first_full, now),
        email: email.map(|email| (recipients.as_slice(), email)),
        patience,
    };
    let on = Claimed::Threshold { resource, threshold, holder: notice.holder };
    let delivered = under_claim(deps, org, &on, claim.lease, Some(deadline), letter).await?;
    if let Delivered::Sent { rejected: false, .. } = delivered {
        tracing::info!(org = %org, resource, threshold, recipients = recipients.len(), "threshold notice sent");
    }
    Ok(delivered)
}

/// The crossing's events: `QuotaThresholdCrossed`, and `QuotaExceeded` when
/// this is the first threshold at or above 100 % in the period (as the
/// claim found the item, not as the sender last read it). Published under
/// the notice's claim, so they are owed with it. At least once: a send that
/// certainly failed after the publish publishes again on the retry
/// (consumers dedupe on org, resource, period and threshold).
fn crossing_events(
    org: &OrgId,
    notice: &Notice,
    threshold: u32,
    first_full: bool,
    now: DateTime<Utc>,
) -> Vec<(EventKind, serde_json::Value)> {
    let (resource, plan) = (notice.resource.as_str(), notice.plan.as_str());
    let crossed = QuotaThresholdCrossed::new(
        org.clone(),
        resource,
        threshold,
        notice.used,
        notice.limit,
        notice.enforcement,
        plan,
        notice.period,
        now,
    );
    let mut events = vec![crossed.entry()];
    if first_full {
        let exceeded = QuotaExceeded {
            org_id: org.clone(),
            resource: resource.to_string(),
            used: notice.used,
            limit: notice.limit,
            blocked: notice.enforcement == Enforcement::Hard,
            plan: plan.to_string(),
            period: notice.period,
            at: now,
        };
        events.push(exceeded.entry());
    }
    events
}

/// After a write raised a counter (from `before`, when known): if a
/// threshold is owed and this write crossed it, or `before` is unknown, try
/// to send it now: within `timeouts::NOTIFY_BUDGET` to claim it, then its
/// calls and mark, each bounded. A failure here never fails the write; the
/// daily job sends what is owed.
pub async fn after_increase(deps: &Deps, counter: &Counter, before: Option<i64>, now: DateTime<Utc>) {
    let Some(owed) = threshold_owed(counter.used, counter.limit, counter.enforcement, &counter.notified) else {
        return;
    };
    if before.is_some_and(|b| threshold_reached(b, counter.limit, counter.enforcement) == Some(owed)) {
        return; // reached by an earlier write and still unsent: the job retries it
    }
    let org = counter.org_id.clone();
    let started = Instant::now();
    let result = match within(NOTIFY_BUDGET, deps.store.profile(&org)).await {
        None => Err(DeliveryError::OutOfTime),
        Some(Err(err)) => Err(err.into()),
        Some(Ok(None)) => Ok(false),
        Some(Ok(Some(profile))) => {
            let left = NOTIFY_BUDGET.saturating_sub(started.elapsed());
            let start = Marked::Counter(Box::new(counter.clone()));
            Box::pin(deliver_rounds(deps, &profile, start, now, left, 1, Duration::ZERO)).await.map(|d| d.sent())
        }
    };
    if let Err(err) = result {
        tracing::warn!(error = %err, resource = counter.resource, "threshold notice deferred to the daily job");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_owed_from_its_figures() {
        let closed = ClosedPeriod {
            resource: "conversations".into(),
            plan: "basic".into(),
            period: Period::containing("2026-03-10T00:00:00Z".parse().unwrap(), 1, chrono_tz::Tz::UTC),
            used: 115,
            limit: Some(100),
            overage: 15,
            enforcement: Enforcement::Soft,
            notified: vec![80, 100],
            owed: true,
            notice: None,
            emitted: false,
            emit: None,
        };
        assert_eq!(Notice::of_closed(&closed).unwrap().owed(), Some(110));
        let unlimited = ClosedPeriod { limit: None, ..closed.clone() };
        assert!(Notice::of_closed(&unlimited).is_none());
        let sent = ClosedPeriod { notified: vec![80, 100, 110], ..closed };
        assert_eq!(Notice::of_closed(&sent).unwrap().owed(), None);
    }
}
