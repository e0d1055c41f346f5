//! Delivering notices: the threshold and trial-ended emails and the events
//! that go with them, each under a claim on the item it concerns (the
//! protocol is `store::lease`): claim, record `sending`, call SES and
//! EventBridge, then mark it done, or release it after a call that certainly
//! failed. The consume path and the daily job both deliver through here.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::Deps;
use crate::bus::PublishError;
use crate::domain::catalogue::{Enforcement, ResourceKind};
use crate::domain::events::{
    Event, EventKind, GrantExpired, Pending, QuotaExceeded, QuotaThresholdCrossed, TrialExpired,
};
use crate::domain::grant::Expired;
use crate::domain::notice::{threshold_owed, threshold_reached};
use crate::domain::org::{OrgId, OrgProfile};
use crate::domain::period::ClosedPeriod;
use crate::domain::period::Period;
use crate::domain::rfc3339;
use crate::domain::usage::Counter;
use crate::notify::templates::{self, ThresholdNotice};
use crate::store::StoreError;
use crate::store::notices::{Marked, NoticeHolder};
use crate::timeouts::{EXPIRED_GRANTS_BUDGET, MARK_BUDGET, NOTIFY_BUDGET, OUTBOX_BUDGET, within};

/// Why a notice was not delivered; it stays owed (the job sends it).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Send(#[from] crate::notify::SendError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("notification budget ran out; the notice stays owed")]
    OutOfTime,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DeliveryError {
    /// Whether the call may have been carried out anyway.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            DeliveryError::Send(err) => err.outcome_unknown,
            DeliveryError::Publish(err) => err.outcome_unknown,
            DeliveryError::OutOfTime | DeliveryError::Store(_) => false,
        }
    }
}

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
    deliver_counter(deps, profile, counter, now, budget, rounds, budget).await
}

/// What delivering notices came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Emails that went out.
    pub emails: usize,
    /// Emails SES refused for good: their notices are done, unsent.
    pub rejected: usize,
}

impl Delivery {
    pub fn sent(&self) -> bool {
        self.emails > 0
    }

    fn add(&mut self, emailed: bool, rejected: bool) {
        self.emails += usize::from(emailed);
        self.rejected += usize::from(rejected);
    }
}

/// [`deliver_threshold`], retrying SES's throttling for `patience` (none on
/// the consume path: the job sends what is left).
async fn deliver_counter(
    deps: &Deps,
    profile: &OrgProfile,
    counter: &Counter,
    now: DateTime<Utc>,
    budget: Duration,
    rounds: usize,
    patience: Duration,
) -> Result<Delivery, DeliveryError> {
    let deadline = Instant::now() + budget;
    let mut current = counter.clone();
    let mut done = Delivery::default();
    for _ in 0..rounds {
        let Some(notice) = Notice::of_counter(&current) else { break };
        let Some(threshold) = notice.owed() else { break };
        // Boxed: the delivery's state machine is large, and would otherwise
        // sit inline in every caller's future (the consume handler's too).
        match Box::pin(deliver(deps, profile, &notice, threshold, now, deadline, patience)).await? {
            Delivered::NotClaimed => break,
            Delivered::Sent { emailed, rejected, after } => {
                done.add(emailed, rejected);
                match after {
                    Some(Marked::Counter(counter)) => current = *counter,
                    _ => break,
                }
            }
        }
    }
    Ok(done)
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
    let org = &profile.org_id;
    let deadline = Instant::now() + budget;
    let mut current = closed.clone();
    let mut done = Delivery::default();
    for _ in 0..rounds {
        let owed = Notice::of_closed(&current).and_then(|n| n.owed().map(|t| (n, t)));
        let Some((notice, threshold)) = owed else {
            deps.store.settle_closed_notice(org, &closed.resource, closed.period).await?;
            break;
        };
        match Box::pin(deliver(deps, profile, &notice, threshold, now, deadline, budget)).await? {
            Delivered::NotClaimed => break,
            Delivered::Sent { emailed, rejected, after } => {
                done.add(emailed, rejected);
                match after {
                    Some(Marked::Closed(record)) => current = record,
                    _ => break,
                }
            }
        }
    }
    Ok(done)
}

enum Delivered {
    /// Already sent, or someone else holds it.
    NotClaimed,
    /// Published, sent (`emailed`: there were recipients) and marked;
    /// `rejected`: SES refused the email for good (marked all the same);
    /// `after`: the item as the mark left it.
    Sent { emailed: bool, rejected: bool, after: Option<Marked> },
}

/// claim → `sending` → publish + send → mark; or release after a call that
/// certainly failed. The email and events are built before `sending` is
/// recorded, so little lies between it and the calls. Claims are taken and
/// checked with a fresh reading of the clock: a long job run must not claim
/// with the time it started.
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
        return Ok(Delivered::NotClaimed);
    };
    let lease = claim.lease;
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
    let events = crossing_events(org, notice, threshold, first_full, now);
    let release = || async {
        let released = within(MARK_BUDGET, deps.store.release_threshold(org, resource, lease, notice.holder)).await;
        if let Some(Err(err)) = released {
            tracing::warn!(org = %org, resource, error = %err, "claim not released; it lapses");
        }
    };
    match within(left(), deps.store.threshold_sending(org, resource, lease, notice.holder)).await {
        Some(Ok(true)) => {}
        Some(Ok(false)) => return Ok(Delivered::NotClaimed), // a reset took the claim: nothing is owed now
        Some(Err(err)) => {
            release().await;
            return Err(err.into());
        }
        None => {
            release().await;
            return Err(DeliveryError::OutOfTime);
        }
    }
    // The calls, each bounded by its client's timeout. A publish whose
    // outcome is unknown counts as done (its events may be out), so the
    // email still goes.
    if let Err(err) = deps.events.publish_all(&events).await {
        if !err.outcome_unknown {
            release().await;
            return Err(err.into());
        }
        tracing::warn!(org = %org, resource, error = %err, "crossing events may not be published");
    }
    let mut rejected = false;
    if let Some(email) = &email
        && let Err(err) = deps.notifier.send(&recipients, email, patience).await
    {
        if err.rejected {
            // SES will never take this message (an unverified recipient in
            // the sandbox, an address it refuses): final for this notice,
            // marked as done so that it is not tried every day.
            tracing::error!(org = %org, resource, threshold, error = %err, "email rejected by SES for good; not sent");
            rejected = true;
        } else {
            // Released: the job sends it again. After a timeout the email
            // may have gone out already; that one case can send it twice
            // (SendEmail has no idempotency token).
            if err.outcome_unknown {
                tracing::warn!(org = %org, resource, threshold, error = %err, "email may have gone out; the job sends it again");
            }
            release().await;
            return Err(err.into());
        }
    }
    let after = match within(MARK_BUDGET, deps.store.mark_threshold(org, resource, threshold, lease, notice.holder))
        .await
    {
        Some(Ok(after)) => after,
        Some(Err(err)) => {
            tracing::warn!(org = %org, resource, threshold, error = %err, "sent but not marked; the claim lapses as delivered");
            None
        }
        None => None,
    };
    if !rejected {
        tracing::info!(org = %org, resource, threshold, recipients = recipients.len(), "threshold notice sent");
    }
    Ok(Delivered::Sent { emailed: email.is_some() && !rejected, rejected, after })
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

/// Sends the one trial-ended email and publishes `TrialExpired`, if owed
/// and not claimed elsewhere. `Some` when this call completed the notice
/// (with how its email went).
pub async fn deliver_trial_ended(
    deps: &Deps,
    profile: &OrgProfile,
    now: DateTime<Utc>,
    budget: Duration,
) -> Result<Option<Delivery>, DeliveryError> {
    let org = &profile.org_id;
    let Some(trial_end) = profile.trial_ends_at else { return Ok(None) };
    let trial_end_text = rfc3339(trial_end);
    let claim = within(budget, deps.store.claim_trial_notice(org, &profile.plan, &trial_end_text, deps.clock.now()));
    let Some(lease) = claim.await.ok_or(DeliveryError::OutOfTime)?? else { return Ok(None) };
    let recipients = profile.contacts.recipients();
    let expired = TrialExpired { org_id: org.clone(), plan: profile.plan.clone(), trial_ended_at: trial_end, at: now };
    let email = (!recipients.is_empty())
        .then(|| templates::trial_ended_email(org.as_str(), profile.locale, deps.notifier.dashboard_url()));
    let release = || async {
        if let Some(Err(err)) = within(MARK_BUDGET, deps.store.finish_trial_notice(org, lease, false, now)).await {
            tracing::warn!(org = %org, error = %err, "trial claim not released; it lapses");
        }
    };
    if !deps.store.trial_sending(org, lease).await? {
        return Ok(None); // the trial end moved: this notice is not owed
    }
    if let Err(err) = deps.events.publish(&expired).await {
        if !err.outcome_unknown {
            release().await;
            return Err(err.into());
        }
        tracing::warn!(org = %org, error = %err, "TrialExpired may not be published");
    }
    let mut done = Delivery::default();
    if let Some(email) = &email {
        match deps.notifier.send(&recipients, email, budget).await {
            Ok(()) => done.add(true, false),
            Err(err) if err.rejected => {
                tracing::error!(org = %org, error = %err, "trial email rejected by SES for good; not sent");
                done.add(false, true);
            }
            Err(err) => {
                release().await; // as for threshold emails: the job sends it again
                return Err(err.into());
            }
        }
    }
    if let Some(Err(err)) = within(MARK_BUDGET, deps.store.finish_trial_notice(org, lease, true, now)).await {
        tracing::warn!(org = %org, error = %err, "trial notice sent but not marked; the claim lapses as delivered");
    }
    Ok(Some(done))
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
            Box::pin(deliver_counter(deps, &profile, counter, now, left, 1, Duration::ZERO)).await.map(|d| d.sent())
        }
    };
    if let Err(err) = result {
        tracing::warn!(error = %err, resource = counter.resource, "threshold notice deferred to the daily job");
    }
}

/// Publishes the org's events still in its outbox (`store::outbox`: the
/// events of admin changes, written with them), ten to a `PutEvents`, and
/// takes each off once published; what is left (EventBridge refused, or
/// the time ran out) waits for the next finder. Returns how many went out.
pub async fn publish_outbox(deps: &Deps, org: &OrgId, pending: &[Pending]) -> usize {
    let mut published = 0;
    for batch in pending.chunks(10) {
        let entries: Vec<(EventKind, serde_json::Value)> = batch.iter().map(|p| (p.kind, p.detail.clone())).collect();
        if let Err(err) = deps.events.publish_all(&entries).await {
            tracing::warn!(error = %err, org = %org, "outbox events not published; the next finder will");
            return published;
        }
        published += batch.len();
        for event in batch {
            if let Err(err) = deps.store.published(org, &event.id).await {
                tracing::warn!(error = %err, event = event.id, "published event not taken off the outbox");
            }
        }
    }
    published
}

/// After an admin write: publishes what the org's outbox holds (its own
/// event, and any an earlier request left), within `OUTBOX_BUDGET`.
pub async fn flush_outbox(deps: &Deps, org: &OrgId) {
    let flush = async {
        let pending = deps.store.outbox(org).await?;
        Ok::<usize, StoreError>(publish_outbox(deps, org, &pending).await)
    };
    match within(OUTBOX_BUDGET, flush).await {
        Some(Ok(_)) => {}
        Some(Err(err)) => tracing::warn!(error = %err, org = %org, "outbox not read; the next finder will publish it"),
        None => tracing::warn!(org = %org, "outbox not flushed in time; the next finder will publish it"),
    }
}

/// Publishes `GrantExpired` for grants a write took off its counter: only
/// the write that took a grant off reports it, so at most once. Ten to a
/// `PutEvents`, all within `EXPIRED_GRANTS_BUDGET`.
pub async fn grants_expired(deps: &Deps, org: &OrgId, expired: &[Expired], now: DateTime<Utc>) {
    if expired.is_empty() {
        return;
    }
    let events: Vec<(EventKind, serde_json::Value)> =
        expired.iter().map(|e| GrantExpired::new(org, e, now).entry()).collect();
    let publish = async {
        for batch in events.chunks(10) {
            deps.events.publish_all(batch).await?;
        }
        Ok::<(), PublishError>(())
    };
    match within(EXPIRED_GRANTS_BUDGET, publish).await {
        Some(Ok(())) => {}
        Some(Err(err)) => tracing::warn!(error = %err, "GrantExpired not published"),
        None => tracing::warn!(grants = expired.len(), "GrantExpired not published within its budget"),
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
