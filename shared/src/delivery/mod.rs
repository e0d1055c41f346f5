//! Delivering what is owed under a claim on the item it concerns (the
//! protocol is `store::claim`): threshold emails and their events, the
//! trial-ended email, `UsagePeriodClosed`. Each claims on its own
//! conditions, then follows one sequence, [`under_claim`]: record
//! `sending`, make the calls (EventBridge, SES), then mark it done, or
//! release it after a call that certainly failed.
//!
//! | file | what |
//! |---|---|
//! | `threshold` | threshold emails and their crossing events, from a counter or a closed period |
//! | `trial` | the trial-ended email and `TrialExpired` |
//! | `period_close` | `UsagePeriodClosed`, one per org and period |
//! | `events` | events no claim guards: the outbox of admin changes, `GrantExpired` |

mod events;
mod period_close;
mod threshold;
mod trial;

pub use events::{flush_outbox, grants_expired, publish_outbox};
pub use period_close::deliver_period_closes;
pub use threshold::{after_increase, deliver_closed_threshold, deliver_threshold};
pub use trial::deliver_trial_ended;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::Deps;
use crate::bus::PublishError;
use crate::domain::events::EventKind;
use crate::domain::org::OrgId;
use crate::domain::period::ClosedPeriod;
use crate::email::templates::Email;
use crate::store::notice_claims::{Marked, NoticeHolder};
use crate::store::{Lease, StoreError};
use crate::timeouts::{MARK_BUDGET, within};

/// Why a notice was not delivered; it stays owed (the job sends it).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Send(#[from] crate::email::SendError),
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

/// Where a won claim is held, and so how its `sending`, mark and release
/// are written.
enum Claimed<'a> {
    /// A threshold notice, on its counter or its closed period's record.
    Threshold { resource: &'a str, threshold: u32, holder: NoticeHolder },
    /// The trial-ended notice, on the profile.
    Trial { now: DateTime<Utc> },
    /// `UsagePeriodClosed` of one period, on all its closed records at once.
    PeriodClose { group: &'a [ClosedPeriod], now: DateTime<Utc> },
}

impl Claimed<'_> {
    fn what(&self) -> &'static str {
        match self {
            Claimed::Threshold { .. } => "threshold notice",
            Claimed::Trial { .. } => "trial notice",
            Claimed::PeriodClose { .. } => "UsagePeriodClosed",
        }
    }

    /// A billing event: never published twice, so one whose outcome is
    /// unknown is left to lapse as presumed delivered (the job counts and
    /// logs it), and a store failure around it fails the org (the job's
    /// retry settles it) rather than being logged and passed over.
    fn is_billing(&self) -> bool {
        matches!(self, Claimed::PeriodClose { .. })
    }

    async fn sending(&self, deps: &Deps, org: &OrgId, lease: Lease) -> Result<bool, StoreError> {
        match self {
            Claimed::Threshold { resource, holder, .. } => {
                deps.store.threshold_sending(org, resource, lease, *holder).await
            }
            Claimed::Trial { .. } => deps.store.trial_sending(org, lease).await,
            Claimed::PeriodClose { group, .. } => deps.store.closed_sending(org, group, lease).await,
        }
    }

    async fn release(&self, deps: &Deps, org: &OrgId, lease: Lease) -> Result<(), StoreError> {
        match self {
            Claimed::Threshold { resource, holder, .. } => {
                deps.store.release_threshold(org, resource, lease, *holder).await
            }
            Claimed::Trial { now } => deps.store.finish_trial_notice(org, lease, false, *now).await,
            Claimed::PeriodClose { group, now } => {
                deps.store.finish_closed(org, group, lease, false, *now).await.map(|_| ())
            }
        }
    }

    /// Marks it done; for a threshold notice, the item as the mark left it.
    async fn mark(&self, deps: &Deps, org: &OrgId, lease: Lease) -> Result<Option<Marked>, StoreError> {
        match self {
            Claimed::Threshold { resource, threshold, holder } => {
                deps.store.mark_threshold(org, resource, *threshold, lease, *holder).await
            }
            Claimed::Trial { now } => deps.store.finish_trial_notice(org, lease, true, *now).await.map(|()| None),
            Claimed::PeriodClose { group, now } => {
                deps.store.finish_closed(org, group, lease, true, *now).await.map(|_| None)
            }
        }
    }
}

/// What goes out under a claim, built before `sending` is recorded so that
/// little lies between it and the calls.
struct Letter<'a> {
    /// Published in one `PutEvents`.
    events: Vec<(EventKind, serde_json::Value)>,
    /// The email and its recipients, when there are any.
    email: Option<(&'a [String], Email)>,
    /// How long SES's throttling is retried.
    patience: Duration,
}

/// What a delivery under a claim came to.
enum Delivered {
    /// Not ours: already sent, claimed by someone else, or (at `sending`)
    /// taken back by a change that owes no notice any more.
    NotOurs,
    /// Published, sent (`emailed`: there were recipients) and marked;
    /// `rejected`: SES refused the email for good (marked all the same);
    /// `after`: a threshold notice's item as the mark left it.
    Sent { emailed: bool, rejected: bool, after: Option<Marked> },
}

/// The one sequence under a won claim (`lease`): `sending` → publish and
/// send → mark; or release after a call that certainly failed.
/// `sending_by` is the deadline of a sender on the consume path: a
/// `sending` that fails or runs out of time there gives the claim back at
/// once (nothing went out). Without one (the job's), a failure leaves the
/// claim to lapse, and the next run sends it.
async fn under_claim(
    deps: &Deps,
    org: &OrgId,
    on: &Claimed<'_>,
    lease: Lease,
    sending_by: Option<Instant>,
    letter: Letter<'_>,
) -> Result<Delivered, DeliveryError> {
    let what = on.what();
    let release = || async {
        if let Some(Err(err)) = within(MARK_BUDGET, on.release(deps, org, lease)).await {
            tracing::warn!(org = %org, what, error = %err, "claim not released; it lapses");
        }
    };
    let ours = match sending_by {
        Some(deadline) => {
            match within(deadline.saturating_duration_since(Instant::now()), on.sending(deps, org, lease)).await {
                Some(Ok(ours)) => ours,
                Some(Err(err)) => {
                    release().await;
                    return Err(err.into());
                }
                None => {
                    release().await;
                    return Err(DeliveryError::OutOfTime);
                }
            }
        }
        None => on.sending(deps, org, lease).await?,
    };
    if !ours {
        return Ok(Delivered::NotOurs);
    }
    // The calls, each bounded by its client's timeout.
    if let Err(err) = deps.events.publish_all(&letter.events).await {
        if on.is_billing() {
            // Certainly failed: released, the next run publishes it. Outcome
            // unknown: left to lapse as presumed delivered.
            if !err.outcome_unknown {
                on.release(deps, org, lease).await?;
            }
            return Err(err.into());
        }
        if !err.outcome_unknown {
            release().await;
            return Err(err.into());
        }
        // A notice's events whose outcome is unknown count as published
        // (they may be out), so the email still goes.
        tracing::warn!(org = %org, what, error = %err, "events may not be published");
    }
    let mut rejected = false;
    if let Some((recipients, email)) = &letter.email
        && let Err(err) = deps.notifier.send(recipients, email, letter.patience).await
    {
        if err.rejected {
            // SES will never take this message (an unverified recipient in
            // the sandbox, an address it refuses): final for this notice,
            // marked as done so that it is not tried every day.
            tracing::error!(org = %org, what, error = %err, "email rejected by SES for good; not sent");
            rejected = true;
        } else {
            // Released: the job sends it again. After a timeout the email
            // may have gone out already; that one case can send it twice
            // (SendEmail has no idempotency token).
            if err.outcome_unknown {
                tracing::warn!(org = %org, what, error = %err, "email may have gone out; the job sends it again");
            }
            release().await;
            return Err(err.into());
        }
    }
    let after = if on.is_billing() {
        on.mark(deps, org, lease).await?
    } else {
        match within(MARK_BUDGET, on.mark(deps, org, lease)).await {
            Some(Ok(after)) => after,
            Some(Err(err)) => {
                tracing::warn!(org = %org, what, error = %err, "sent but not marked; the claim lapses as delivered");
                None
            }
            None => None,
        }
    };
    Ok(Delivered::Sent { emailed: letter.email.is_some() && !rejected, rejected, after })
}
