//! The trial-ended notice: one email and `TrialExpired`, once, under a
//! claim on the profile, when a free plan's trial is over (the daily job).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Claimed, Delivered, Delivery, DeliveryError, Letter, under_claim};
use crate::Deps;
use crate::domain::events::{Event, TrialExpired};
use crate::domain::org::OrgProfile;
use crate::domain::rfc3339;
use crate::email::templates;
use crate::timeouts::within;

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
    let letter = Letter {
        events: vec![expired.entry()],
        email: email.map(|email| (recipients.as_slice(), email)),
        patience: budget,
    };
    match under_claim(deps, org, &Claimed::Trial { now }, lease, None, letter).await? {
        // The trial end moved: this notice is not owed.
        Delivered::NotOurs => Ok(None),
        Delivered::Sent { emailed, rejected, .. } => {
            let mut done = Delivery::default();
            done.add(emailed, rejected);
            Ok(Some(done))
        }
    }
}
