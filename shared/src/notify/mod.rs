//! Emails through SES v2, and the delivery routines the consume path and
//! the daily job share: a notice is claimed, sent, then marked (see
//! `store::notices`).

pub mod templates;

use std::path::PathBuf;

use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use chrono::{DateTime, Utc};

use crate::Deps;
use crate::domain::catalogue::Enforcement;
use crate::domain::org::OrgProfile;
use crate::domain::rfc3339;
use crate::domain::usage::{Counter, percentage, threshold_owed, threshold_reached};
use crate::events::EventKind;
use crate::store::StoreError;
use templates::{Email, ThresholdNotice};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("email not sent: {0}")]
    Send(String),
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

/// What to mark when `threshold` is sent: it, and 80 and 100 below it. Every
/// lower threshold counts as sent whenever a higher one is marked (see
/// `threshold_owed`), so the steps in between need no entry, and a jump to
/// 10 000 % stores three numbers, not a thousand.
pub fn marks_for(threshold: u32) -> Vec<u32> {
    let mut out: Vec<u32> = [80, 100].into_iter().filter(|t| *t < threshold).collect();
    out.push(threshold);
    out
}

/// Sends the threshold email a counter still owes, if any, and publishes
/// the crossing (`QuotaThresholdCrossed`, and `QuotaExceeded` the first time
/// 100 % is reached in a period) once its claim is won. `Ok(true)` when an
/// email went out.
pub async fn deliver_threshold(
    deps: &Deps,
    profile: &OrgProfile,
    counter: &Counter,
    now: DateTime<Utc>,
) -> Result<bool, NotifyError> {
    let Some(threshold) = threshold_owed(counter.used, counter.limit, counter.enforcement, &counter.notified) else {
        return Ok(false);
    };
    let Some(limit) = counter.limit else { return Ok(false) };
    let org = &profile.org_id;
    let resource = counter.resource.as_str();
    let claim = deps.store.claim_threshold(org, resource, threshold, limit, counter.period, now).await?;
    let Some(lease) = claim else { return Ok(false) };
    publish_crossing(deps, counter, threshold, limit, now).await;
    let recipients = profile.contacts.recipients();
    if !recipients.is_empty() {
        let notice = ThresholdNotice {
            org_id: org.to_string(),
            plan: counter.plan.clone(),
            resource: counter.resource.clone(),
            kind: counter.kind,
            threshold,
            used: counter.used,
            limit,
            blocks_at_limit: counter.enforcement == Enforcement::Hard,
            locale: profile.locale,
            dashboard_url: deps.notifier.dashboard_url.clone(),
        };
        if let Err(err) = deps.notifier.send(&recipients, &templates::threshold_email(&notice)).await {
            deps.store.release_threshold(org, resource, lease).await?;
            return Err(err);
        }
    }
    deps.store.mark_thresholds(org, resource, &marks_for(threshold), lease).await?;
    tracing::info!(org = %org, resource, threshold, recipients = recipients.len(), "threshold notice sent");
    Ok(!recipients.is_empty())
}

/// The crossing's events. At least once: a send that fails and is retried
/// publishes again (consumers dedupe on org, resource, period and threshold).
async fn publish_crossing(deps: &Deps, counter: &Counter, threshold: u32, limit: i64, now: DateTime<Utc>) {
    let detail = serde_json::json!({
        "orgId": counter.org_id,
        "resource": counter.resource,
        "threshold": threshold,
        "used": counter.used,
        "limit": limit,
        "percentage": percentage(counter.used, limit),
        "enforcement": counter.enforcement,
        "plan": counter.plan,
        "period": counter.period,
        "at": rfc3339(now),
    });
    deps.events.publish_or_log(EventKind::QuotaThresholdCrossed, &detail).await;
    if threshold >= 100 && !counter.notified.iter().any(|n| *n >= 100) {
        let exceeded = serde_json::json!({
            "orgId": counter.org_id,
            "resource": counter.resource,
            "used": counter.used,
            "limit": limit,
            "blocked": counter.enforcement == Enforcement::Hard,
            "plan": counter.plan,
            "period": counter.period,
            "at": rfc3339(now),
        });
        deps.events.publish_or_log(EventKind::QuotaExceeded, &exceeded).await;
    }
}

/// Sends the one trial-ended email, if owed and not claimed elsewhere.
/// `Ok(true)` when this call completed the notice.
pub async fn deliver_trial_ended(deps: &Deps, profile: &OrgProfile, now: DateTime<Utc>) -> Result<bool, NotifyError> {
    let org = &profile.org_id;
    let Some(trial_end) = profile.trial_ends_at else { return Ok(false) };
    let claim = deps.store.claim_trial_notice(org, &profile.plan, &rfc3339(trial_end), now).await?;
    let Some(lease) = claim else { return Ok(false) };
    let recipients = profile.contacts.recipients();
    if !recipients.is_empty() {
        let email = templates::trial_ended_email(org.as_str(), profile.locale, &deps.notifier.dashboard_url);
        if let Err(err) = deps.notifier.send(&recipients, &email).await {
            deps.store.finish_trial_notice(org, lease, false, now).await?;
            return Err(err);
        }
    }
    deps.store.finish_trial_notice(org, lease, true, now).await?;
    Ok(true)
}

/// After a write raised a counter (from `before`, when known): if a
/// threshold is owed and this write crossed it, or `before` is unknown, try
/// to claim, publish and email it at once. A failure here never fails the
/// write; the daily job sends whatever is still owed.
pub async fn after_increase(deps: &Deps, counter: &Counter, before: Option<i64>, now: DateTime<Utc>) {
    let Some(owed) = threshold_owed(counter.used, counter.limit, counter.enforcement, &counter.notified) else {
        return;
    };
    if before.is_some_and(|b| threshold_reached(b, counter.limit, counter.enforcement) == Some(owed)) {
        return; // reached by an earlier write and still unsent: the job retries it
    }
    let Some(org) = crate::domain::org::OrgId::parse(&counter.org_id) else { return };
    let result = match deps.store.profile(&org).await {
        Ok(Some(profile)) => deliver_threshold(deps, &profile, counter, now).await.map(|_| ()),
        Ok(None) => Ok(()),
        Err(err) => Err(err.into()),
    };
    if let Err(err) = result {
        tracing::warn!(error = %err, resource = counter.resource, "threshold email deferred to the daily job");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_stay_small_whatever_the_threshold() {
        assert_eq!(marks_for(80), vec![80]);
        assert_eq!(marks_for(100), vec![80, 100]);
        assert_eq!(marks_for(130), vec![80, 100, 130]);
        assert_eq!(marks_for(u32::MAX), vec![80, 100, u32::MAX]);
    }
}
