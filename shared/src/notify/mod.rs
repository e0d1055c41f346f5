//! Emails through SES v2, and the delivery routines the consume path and
//! the daily job share: a notice is claimed, sent, then marked (see
//! `store::notices`).

pub mod templates;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use chrono::{DateTime, Utc};

use crate::Deps;
use crate::domain::catalogue::{Enforcement, ResourceKind};
use crate::domain::notice::{threshold_owed, threshold_reached};
use crate::domain::org::{OrgId, OrgProfile};
use crate::domain::period::Period;
use crate::domain::rfc3339;
use crate::domain::usage::{Counter, percentage};
use crate::events::{EventKind, PublishError};
use crate::store::StoreError;
use crate::store::job::ClosedPeriod;
use crate::store::notices::NoticeHolder;
use crate::timeouts::{NOTIFY_BUDGET, within};
use templates::{Email, ThresholdNotice};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("email not sent: {0}")]
    Send(String),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("notification budget ran out; the notice stays owed")]
    OutOfTime,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sends email from one verified identity.
#[derive(Clone, Debug)]
pub struct Notifier {
    client: Client,
    sender: String,
    dashboard_url: String,
    /// Local runs only: a copy of every sent email as `.html` here.
    outbox: Option<PathBuf>,
}

impl Notifier {
    pub fn new(client: Client, sender: &str, dashboard_url: &str) -> Self {
        Notifier { client, sender: sender.to_string(), dashboard_url: dashboard_url.to_string(), outbox: None }
    }

    /// Also writes each sent email to `dir` (the local server offers this).
    pub fn with_outbox(mut self, dir: PathBuf) -> Self {
        self.outbox = Some(dir);
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn sender(&self) -> &str {
        &self.sender
    }

    pub fn dashboard_url(&self) -> &str {
        &self.dashboard_url
    }

    /// One message, addressed to every recipient.
    pub async fn send(&self, to: &[String], email: &Email) -> Result<(), NotifyError> {
        let utf8 = |text: &str| Content::builder().data(text).charset("UTF-8").build();
        let (subject, html, text) = match (utf8(&email.subject), utf8(&email.html), utf8(&email.text)) {
            (Ok(s), Ok(h), Ok(t)) => (s, h, t),
            _ => return Err(NotifyError::Send("email content did not build".into())),
        };
        let message = Message::builder().subject(subject).body(Body::builder().html(html).text(text).build()).build();
        self.client
            .send_email()
            .from_email_address(&self.sender)
            .destination(Destination::builder().set_to_addresses(Some(to.to_vec())).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|e| NotifyError::Send(aws_sdk_sesv2::error::DisplayErrorContext(&e).to_string()))?;
        if let Some(dir) = &self.outbox {
            let name = format!("{}-{}.html", Utc::now().format("%Y%m%dT%H%M%S%.3f"), slug(&email.subject));
            if let Err(err) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(dir.join(name), &email.html)) {
                tracing::warn!(error = %err, "could not write the outbox copy");
            }
        }
        Ok(())
    }
}

fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).take(60).collect()
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
/// the crossing, once its claim is won; then whatever became owed while it
/// was being sent. `Ok(true)` when an email went out. Claiming, publishing
/// and sending get `budget`; the mark that follows a send is never cut.
pub async fn deliver_threshold(
    deps: &Deps,
    profile: &OrgProfile,
    counter: &Counter,
    now: DateTime<Utc>,
    budget: Duration,
) -> Result<bool, NotifyError> {
    let deadline = Instant::now() + budget;
    let mut current = counter.clone();
    let mut sent = false;
    // A mark returns the counter as it stands: a crossing deferred while
    // this sender held the lease is sent next (a few rounds at most).
    for _ in 0..3 {
        let Some(notice) = Notice::of_counter(&current) else { break };
        let Some(threshold) = notice.owed() else { break };
        match deliver(deps, profile, &notice, threshold, now, deadline).await? {
            Delivered::NotClaimed => break,
            Delivered::Sent { emailed, after } => {
                sent |= emailed;
                match after {
                    Some(item) => current = crate::store::items::counter_from_item(&item).map_err(StoreError::from)?,
                    None => break,
                }
            }
        }
    }
    Ok(sent)
}

/// Sends the notice a closed period still owes, if any; otherwise settles
/// the period's `owed` flag.
pub async fn deliver_closed_threshold(
    deps: &Deps,
    profile: &OrgProfile,
    closed: &ClosedPeriod,
    now: DateTime<Utc>,
    budget: Duration,
) -> Result<bool, NotifyError> {
    let org = &profile.org_id;
    let notice = Notice::of_closed(closed);
    let Some((notice, threshold)) = notice.and_then(|n| n.owed().map(|t| (n, t))) else {
        deps.store.settle_closed_notice(org, &closed.resource, closed.period).await?;
        return Ok(false);
    };
    match deliver(deps, profile, &notice, threshold, now, Instant::now() + budget).await? {
        Delivered::NotClaimed => Ok(false),
        Delivered::Sent { emailed, .. } => Ok(emailed),
    }
}

enum Delivered {
    /// Already sent, or someone else holds it.
    NotClaimed,
    /// Published, sent (`emailed`: there were recipients) and marked;
    /// `after`: the counter as the mark left it.
    Sent { emailed: bool, after: Option<crate::store::items::Item> },
}

/// claim → `sending` → publish + send (within the deadline) → mark, or
/// release after a failed call. The email and event are built before
/// `sending` is recorded, so little lies between it and the call.
async fn deliver(
    deps: &Deps,
    profile: &OrgProfile,
    notice: &Notice,
    threshold: u32,
    now: DateTime<Utc>,
    deadline: Instant,
) -> Result<Delivered, NotifyError> {
    let org = &profile.org_id;
    let resource = notice.resource.as_str();
    let left = || deadline.saturating_duration_since(Instant::now());
    let claim = async {
        match notice.holder {
            NoticeHolder::Counter(period) => {
                deps.store.claim_threshold(org, resource, threshold, notice.limit, period, now).await
            }
            NoticeHolder::Closed(period) => {
                deps.store.claim_closed_threshold(org, resource, threshold, period, now).await
            }
        }
    };
    // Out of time while claiming: a claim that went through lapses without
    // `sending`, and the job sends the notice.
    let Some(lease) = within(left(), claim).await.ok_or(NotifyError::OutOfTime)?? else {
        return Ok(Delivered::NotClaimed);
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
            dashboard_url: deps.notifier.dashboard_url.clone(),
        })
    });
    let events = crossing_events(org, notice, threshold, now);
    let send = async {
        if !deps.store.threshold_sending(org, resource, lease, notice.holder).await? {
            return Ok(false); // a reset took the claim: nothing is owed now
        }
        for (kind, detail) in &events {
            deps.events.publish(*kind, detail).await?;
        }
        if let Some(email) = &email {
            deps.notifier.send(&recipients, email).await?;
        }
        Ok::<bool, NotifyError>(true)
    };
    match within(left(), send).await.unwrap_or(Err(NotifyError::OutOfTime)) {
        Ok(true) => {
            let after = deps.store.mark_threshold(org, resource, threshold, lease, notice.holder).await?;
            tracing::info!(org = %org, resource, threshold, recipients = recipients.len(), "threshold notice sent");
            Ok(Delivered::Sent { emailed: email.is_some(), after })
        }
        Ok(false) => Ok(Delivered::NotClaimed),
        Err(err) => {
            deps.store.release_threshold(org, resource, lease, notice.holder).await?;
            Err(err)
        }
    }
}

/// The crossing's events: `QuotaThresholdCrossed`, and `QuotaExceeded` the
/// first time 100 % is reached in a period. Published under the notice's
/// claim, so they are owed with it. At least once: a send that fails after
/// the publish publishes again on the retry (consumers dedupe on org,
/// resource, period and threshold).
fn crossing_events(
    org: &OrgId,
    notice: &Notice,
    threshold: u32,
    now: DateTime<Utc>,
) -> Vec<(EventKind, serde_json::Value)> {
    let mut events = vec![(
        EventKind::QuotaThresholdCrossed,
        serde_json::json!({
            "orgId": org,
            "resource": notice.resource,
            "threshold": threshold,
            "used": notice.used,
            "limit": notice.limit,
            "percentage": percentage(notice.used, notice.limit),
            "enforcement": notice.enforcement,
            "plan": notice.plan,
            "period": notice.period,
            "at": rfc3339(now),
        }),
    )];
    if threshold >= 100 && !notice.notified.iter().any(|n| *n >= 100) {
        events.push((
            EventKind::QuotaExceeded,
            serde_json::json!({
                "orgId": org,
                "resource": notice.resource,
                "used": notice.used,
                "limit": notice.limit,
                "blocked": notice.enforcement == Enforcement::Hard,
                "plan": notice.plan,
                "period": notice.period,
                "at": rfc3339(now),
            }),
        ));
    }
    events
}

/// Sends the one trial-ended email and publishes `TrialExpired`, if owed
/// and not claimed elsewhere. `Ok(true)` when this call completed the notice.
pub async fn deliver_trial_ended(
    deps: &Deps,
    profile: &OrgProfile,
    now: DateTime<Utc>,
    budget: Duration,
) -> Result<bool, NotifyError> {
    let org = &profile.org_id;
    let Some(trial_end) = profile.trial_ends_at else { return Ok(false) };
    let claim = deps.store.claim_trial_notice(org, &profile.plan, &rfc3339(trial_end), now).await?;
    let Some(lease) = claim else { return Ok(false) };
    let recipients = profile.contacts.recipients();
    let detail = serde_json::json!({
        "orgId": org,
        "plan": profile.plan,
        "trialEndedAt": rfc3339(trial_end),
        "at": rfc3339(now),
    });
    let email = (!recipients.is_empty())
        .then(|| templates::trial_ended_email(org.as_str(), profile.locale, &deps.notifier.dashboard_url));
    let send = async {
        if !deps.store.trial_sending(org, lease).await? {
            return Ok(false); // the trial end moved: this notice is not owed
        }
        deps.events.publish(EventKind::TrialExpired, &detail).await?;
        if let Some(email) = &email {
            deps.notifier.send(&recipients, email).await?;
        }
        Ok::<bool, NotifyError>(true)
    };
    match within(budget, send).await.unwrap_or(Err(NotifyError::OutOfTime)) {
        Ok(true) => {
            deps.store.finish_trial_notice(org, lease, true, now).await?;
            Ok(true)
        }
        Ok(false) => Ok(false),
        Err(err) => {
            deps.store.finish_trial_notice(org, lease, false, now).await?;
            Err(err)
        }
    }
}

/// After a write raised a counter (from `before`, when known): if a
/// threshold is owed and this write crossed it, or `before` is unknown, try
/// to claim, publish and email it now, within `timeouts::NOTIFY_BUDGET`. A
/// failure here never fails the write; the daily job sends what is owed.
pub async fn after_increase(deps: &Deps, counter: &Counter, before: Option<i64>, now: DateTime<Utc>) {
    let Some(owed) = threshold_owed(counter.used, counter.limit, counter.enforcement, &counter.notified) else {
        return;
    };
    if before.is_some_and(|b| threshold_reached(b, counter.limit, counter.enforcement) == Some(owed)) {
        return; // reached by an earlier write and still unsent: the job retries it
    }
    let Some(org) = OrgId::parse(&counter.org_id) else { return };
    let started = Instant::now();
    let result = match within(NOTIFY_BUDGET, deps.store.profile(&org)).await {
        None => Err(NotifyError::OutOfTime),
        Some(Err(err)) => Err(err.into()),
        Some(Ok(None)) => Ok(false),
        Some(Ok(Some(profile))) => {
            let left = NOTIFY_BUDGET.saturating_sub(started.elapsed());
            deliver_threshold(deps, &profile, counter, now, left).await
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
