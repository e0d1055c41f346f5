//! Notification bookkeeping on the items themselves, so a notice is never
//! sent twice and never lost:
//!
//! 1. claim: a conditional write takes a short lease, unless the notice is
//!    already marked sent, someone else holds a live lease, or the item no
//!    longer is in the state the notice was computed from;
//! 2. send;
//! 3. mark sent and drop the lease, or on failure just drop the lease, so the
//!    next job run tries again. Both only while the lease is still ours.
//!
//! A process that dies between 2 and 3 leaves the lease to expire: the
//! notice is then sent again. That window (one SES call) is the only way a
//! duplicate can happen. Rollovers and resets drop any lease.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};

use super::items::{self, key, n, s};
use super::sdk::applied;
use super::{Store, StoreError};
use crate::domain::org::OrgId;
use crate::domain::period::Period;

/// How long a claimed notice stays claimed if its sender disappears.
pub const LEASE_SECONDS: i64 = 120;

/// A held claim: the lease's expiry, which identifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease(i64);

impl Store {
    /// Claims threshold `threshold` of a counter's current period, provided
    /// the counter still has `limit` and has really reached the threshold.
    pub async fn claim_threshold(
        &self,
        org: &OrgId,
        resource: &str,
        threshold: u32,
        limit: i64,
        period: Option<Period>,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError> {
        // The smallest count at which `threshold` % of `limit` is reached.
        let need = (i128::from(threshold) * i128::from(limit) + 99) / 100;
        let need = i64::try_from(need).unwrap_or(i64::MAX);
        let until = (now + Duration::seconds(LEASE_SECONDS)).timestamp();
        let mut condition = "lim = :lim AND used >= :need AND NOT contains(notified, :t) \
            AND (attribute_not_exists(noticeLease) OR noticeLease < :now)"
            .to_string();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::counter_sk(resource))))
            .update_expression("SET noticeLease = :until")
            .expression_attribute_values(":t", n(i64::from(threshold)))
            .expression_attribute_values(":lim", n(limit))
            .expression_attribute_values(":need", n(need))
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":until", n(until));
        if let Some(p) = period {
            condition.push_str(" AND pend = :pe");
            req = req.expression_attribute_values(":pe", n(p.end.timestamp()));
        }
        Ok(applied(req.condition_expression(condition).send().await)?.then_some(Lease(until)))
    }

    /// Marks thresholds sent and drops the lease, if the lease is still ours
    /// (a reset or rollover meanwhile took it away, with the marks).
    pub async fn mark_thresholds(
        &self,
        org: &OrgId,
        resource: &str,
        thresholds: &[u32],
        lease: Lease,
    ) -> Result<(), StoreError> {
        let set = AttributeValue::Ns(thresholds.iter().map(u32::to_string).collect());
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::counter_sk(resource))))
            .update_expression("ADD notified :set REMOVE noticeLease")
            .condition_expression("noticeLease = :lease")
            .expression_attribute_values(":set", set)
            .expression_attribute_values(":lease", n(lease.0));
        applied(req.send().await).map(|_| ())
    }

    /// Drops our lease after a failed send.
    pub async fn release_threshold(&self, org: &OrgId, resource: &str, lease: Lease) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::counter_sk(resource))))
            .update_expression("REMOVE noticeLease")
            .condition_expression("noticeLease = :lease")
            .expression_attribute_values(":lease", n(lease.0))
            .send()
            .await;
        applied(result).map(|_| ())
    }

    /// Claims the org's one trial-ended notice, provided the org is still on
    /// `plan` with the trial end `trial_ends_at` (RFC 3339, as stored).
    pub async fn claim_trial_notice(
        &self,
        org: &OrgId,
        plan: &str,
        trial_ends_at: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError> {
        let until = (now + Duration::seconds(LEASE_SECONDS)).timestamp();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::PROFILE_SK.to_string())))
            .update_expression("SET trialNoticeLease = :until")
            .condition_expression(
                "#plan = :plan AND trialEndsAt = :te AND attribute_not_exists(trialNotifiedAt) \
                 AND (attribute_not_exists(trialNoticeLease) OR trialNoticeLease < :now)",
            )
            .expression_attribute_names("#plan", "plan")
            .expression_attribute_values(":plan", s(plan))
            .expression_attribute_values(":te", s(trial_ends_at))
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":until", n(until))
            .send()
            .await;
        Ok(applied(result)?.then_some(Lease(until)))
    }

    /// Marks the trial notice sent (`sent`) or releases the claim; only
    /// while the lease is ours.
    pub async fn finish_trial_notice(
        &self,
        org: &OrgId,
        lease: Lease,
        sent: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::PROFILE_SK.to_string())))
            .condition_expression("trialNoticeLease = :lease")
            .expression_attribute_values(":lease", n(lease.0));
        // The mark bumps the profile's version, so an org update computed
        // from the profile before it fails its condition and re-reads,
        // instead of writing the profile back without the mark.
        let req = if sent {
            req.update_expression("SET trialNotifiedAt = :at REMOVE trialNoticeLease ADD #version :one")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":at", s(crate::domain::rfc3339(now)))
                .expression_attribute_values(":one", n(1))
        } else {
            req.update_expression("REMOVE trialNoticeLease")
        };
        applied(req.send().await).map(|_| ())
    }
}
