//! One org's daily work: expired holds and grants off, lapsed claims
//! settled, its outbox published, owed notices delivered, ended periods
//! closed and billed, the trial ended, and the day's counters for its
//! snapshot.

use chrono::{DateTime, Utc};
use quota_shared::Deps;
use quota_shared::delivery::{self, DeliveryError};
use quota_shared::domain::org::OrgId;
use quota_shared::domain::period::ClosedPeriod;
use quota_shared::domain::state::OrgState;
use quota_shared::domain::usage::Counter;
use quota_shared::store::job::OrgEntry;
use quota_shared::store::notice_claims::NoticeHolder;
use quota_shared::store::{Settled, StoreError};

use crate::bounds::Options;

#[derive(Debug, Default)]
pub(crate) struct OrgOutcome {
    /// A notice or event that could not be delivered (it stays owed): the
    /// org counts as failed, and its snapshot is still written.
    pub(crate) error: Option<String>,
    /// Notices left owed because the time for deliveries was up.
    pub(crate) deferred: bool,
    /// Events published from the org's outbox.
    pub(crate) events: usize,
    /// Emails SES refused for good.
    pub(crate) rejected: usize,
    pub(crate) presumed: usize,
    pub(crate) emails: usize,
    pub(crate) periods_closed: usize,
    pub(crate) trial_expired: bool,
    /// The counters to record in today's snapshot.
    pub(crate) snapshot: Vec<Counter>,
}

impl OrgOutcome {
    fn add(&mut self, done: delivery::Delivery) {
        self.emails += done.emails;
        self.rejected += done.rejected;
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
}

/// One org's daily work, on its state read now (one consistent `Query`).
/// `None` when the org has no profile any more.
pub(crate) async fn process_org(
    deps: &Deps,
    entry: &OrgEntry,
    now: DateTime<Utc>,
    options: Options,
) -> Result<Option<OrgOutcome>, JobError> {
    let Some(mut state) = deps.store.org_state(&entry.org).await? else {
        return Ok(None);
    };
    // 0. Holds and grants that have expired come off (the units held come
    //    back, each grant's `GrantExpired` is published once), so what
    //    follows works with the limits in force.
    let lapsed: Vec<Counter> = state.counters.values().filter(|c| c.lapsed(now)).cloned().collect();
    // A sweep closes an ended period first (billed on the grants it had).
    let swept_over = lapsed.iter().any(|c| c.period_ended(now));
    if !lapsed.is_empty() {
        for counter in &lapsed {
            let expired = deps.store.sweep(&entry.org, counter, now).await?;
            delivery::grants_expired(deps, &entry.org, &expired, now).await;
        }
        let Some(swept) = deps.store.org_state(&entry.org).await? else {
            return Ok(None);
        };
        state = swept;
    }
    let state = &state;
    let profile = &state.profile;
    let org = &profile.org_id;
    let mut outcome = OrgOutcome { presumed: settle_lapsed(deps, state).await?, ..Default::default() };
    let mut errors = Vec::new();

    // Events of admin changes that no request published (its answer was
    // lost, it stopped): from the outbox the org's state carries.
    if !state.outbox.is_empty() {
        if options.may_deliver() {
            outcome.events += delivery::publish_outbox(deps, org, &state.outbox).await;
        } else {
            outcome.deferred = true;
        }
    }

    // 1. Threshold emails still owed, on the counters as stored: a period
    //    that has just ended still owes its own (the claim is pinned to it).
    let (budget, rounds) = (options.notice_budget, options.rounds);
    for counter in state.counters.values() {
        if !options.may_deliver() {
            outcome.deferred = true;
            break;
        }
        match delivery::deliver_threshold(deps, profile, counter, now, budget, rounds).await {
            Ok(done) => outcome.add(done),
            Err(err) => errors.push(JobError::from(err)),
        }
    }

    // 2. Close ended periods (a notice still owed moves to the period's
    //    record), then finish what closed periods still owe: the notice,
    //    and the `UsagePeriodClosed` event. The index is eventually
    //    consistent, so closed periods are read from the table whenever it
    //    lists any; those it lists that are settled leave it.
    let mut rolled = swept_over;
    let mut rolled_here = false;
    for counter in state.counters.values() {
        if counter.period_ended(now) {
            deps.store.roll_over(org, counter, now).await?;
            rolled = true;
            rolled_here = true;
        }
    }
    // A close owes `QuotaRecovered` for each resource that had reached a
    // threshold, in the outbox the close wrote it to: out now, not tomorrow.
    if rolled_here
        && options.may_deliver()
        && let Ok(pending) = deps.store.outbox(org).await
    {
        outcome.events += delivery::publish_outbox(deps, org, &pending).await;
    }
    // A period that began in the last two days was closed just now, maybe
    // by a consume, maybe after the index scan read this org: its record is
    // read from the table whether or not the index lists it yet.
    let recent = |c: &Counter| c.period.is_some_and(|p| now - p.start < chrono::Duration::days(2));
    if rolled || entry.lists_closed() || state.counters.values().any(recent) {
        let mut closed = deps.store.pending_closed(org).await?;
        deps.store.forget_settled(entry, &closed).await?;
        // Lapsed claims on closed records, from this consistent read (a
        // rollover after the scan may have moved one there).
        let settled = settle_closed(deps, org, &closed).await?;
        if settled > 0 {
            outcome.presumed += settled;
            closed = deps.store.pending_closed(org).await?;
        }
        for record in closed.iter().filter(|c| c.owed) {
            if !options.may_deliver() {
                outcome.deferred = true;
                break;
            }
            match delivery::deliver_closed_threshold(deps, profile, record, now, budget, rounds).await {
                Ok(done) => outcome.add(done),
                Err(err) => errors.push(JobError::from(err)),
            }
        }
        let unemitted: Vec<ClosedPeriod> = closed.into_iter().filter(|c| !c.emitted).collect();
        if !unemitted.is_empty() && !options.may_deliver() {
            outcome.deferred = true;
        } else {
            match delivery::deliver_period_closes(deps, org, &profile.plan, unemitted, now).await {
                Ok(emitted) => outcome.periods_closed = emitted,
                Err(err) => errors.push(JobError::from(err)),
            }
        }
    }

    // 3. Trial expiry: one email, one event.
    let trial_over = profile.active_trial(deps.catalogue).is_some_and(|end| end <= now);
    if trial_over && state.trial_notified_at.is_none() && !options.may_deliver() {
        outcome.deferred = true;
    } else if trial_over && state.trial_notified_at.is_none() {
        match delivery::deliver_trial_ended(deps, profile, now, budget).await {
            Ok(Some(done)) => {
                outcome.trial_expired = true;
                outcome.add(done);
            }
            Ok(None) => {}
            Err(err) => errors.push(JobError::from(err)),
        }
    }

    // 4. Today's snapshot, of the counters as they stand now (written with
    //    the page's others).
    outcome.snapshot = state.counters_at(deps.catalogue, now);
    outcome.error = errors.into_iter().next().map(|err| err.to_string());
    Ok(Some(outcome))
}

/// 0. Claims whose sender vanished (the lease lapsed): presumed delivered if
///    the sender had begun its call, released (sent again below) if not.
///    Returns how many were presumed delivered. Lapse is judged by a fresh
///    reading of the clock, not the run's start.
pub(crate) async fn settle_lapsed(deps: &Deps, state: &OrgState) -> Result<usize, JobError> {
    let org = &state.profile.org_id;
    let now = deps.clock.now();
    let mut settled = Vec::new();
    for counter in state.counters.values() {
        if let Some(claim) = counter.notice.filter(|c| c.lapsed(now.timestamp())) {
            let holder = NoticeHolder::Counter(counter.period);
            let outcome = deps.store.settle_threshold(org, &counter.resource, holder, claim, now).await?;
            settled.push((outcome, "threshold notice", counter.resource.clone()));
        }
    }
    if let Some(claim) = state.trial_notice.filter(|c| c.lapsed(now.timestamp())) {
        let outcome = deps.store.settle_trial_notice(org, claim, now).await?;
        settled.push((outcome, "trial notice", String::new()));
    }
    Ok(count_presumed(org, settled))
}

/// Lapsed claims on closed records: threshold notices and period closes.
pub(crate) async fn settle_closed(deps: &Deps, org: &OrgId, closed: &[ClosedPeriod]) -> Result<usize, JobError> {
    let now = deps.clock.now();
    let mut settled = Vec::new();
    for record in closed {
        if let Some(claim) = record.notice.filter(|c| c.lapsed(now.timestamp())) {
            let holder = NoticeHolder::Closed(record.period);
            let outcome = deps.store.settle_threshold(org, &record.resource, holder, claim, now).await?;
            settled.push((outcome, "closed-period notice", record.resource.clone()));
        }
        if let Some(claim) = record.emit.filter(|c| c.lapsed(now.timestamp())) {
            let outcome = deps.store.settle_closed_event(org, record, claim, now).await?;
            settled.push((outcome, "UsagePeriodClosed", record.resource.clone()));
        }
    }
    Ok(count_presumed(org, settled))
}

pub(crate) fn count_presumed(org: &OrgId, settled: Vec<(Settled, &str, String)>) -> usize {
    let mut presumed = 0;
    for (outcome, what, resource) in settled {
        match outcome {
            Settled::PresumedDelivered => {
                presumed += 1;
                tracing::warn!(org = %org, what, resource, "sender vanished mid-call: presumed delivered");
            }
            Settled::Released => {
                tracing::info!(org = %org, what, resource, "sender vanished before its call: sent again")
            }
            Settled::Nothing => {}
        }
    }
    presumed
}
