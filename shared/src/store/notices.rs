//! Notification bookkeeping on the items themselves, so a notice is never
//! sent twice and never lost:
//!
//! 1. claim: a conditional write takes a short lease, unless the notice is
//!    already marked sent or someone else holds a live lease;
//! 2. send;
//! 3. mark sent (and drop the lease), or on failure just drop the lease, so
//!    the next job run tries again.
//!
//! A process that dies between 2 and 3 leaves the lease to expire: the
//! notice is then sent again. That window (one SES call) is the only way a
//! duplicate can happen.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};

use super::items::{self, key, n, s};
use super::{Store, StoreError, applied};
use crate::domain::org::OrgId;
use crate::domain::period::Period;

/// How long a claimed notice stays claimed if its sender disappears.
pub const LEASE_SECONDS: i64 = 120;

impl Store {
    /// Claims threshold `threshold` of a counter's current period.
    pub async fn claim_threshold(
        &self,
        org: &OrgId,
        resource: &str,
        threshold: u32,
        period: Option<Period>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut condition = "attribute_exists(pk) AND NOT contains(notified, :t) \
            AND (attribute_not_exists(noticeLease) OR noticeLease < :now)"
            .to_string();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::counter_sk(resource))))
            .update_expression("SET noticeLease = :until")
            .expression_attribute_values(":t", n(i64::from(threshold)))
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":until", n((now + Duration::seconds(LEASE_SECONDS)).timestamp()));
        if let Some(p) = period {
            condition.push_str(" AND pend = :pe");
            req = req.expression_attribute_values(":pe", n(p.end.timestamp()));
        }
        applied(req.condition_expression(condition).send().await)
    }

    /// Marks thresholds sent (the one sent and every lower one) and drops the lease.
    pub async fn mark_thresholds(
        &self,
        org: &OrgId,
        resource: &str,
        thresholds: &[u32],
        period: Option<Period>,
    ) -> Result<(), StoreError> {
        let set = AttributeValue::Ns(thresholds.iter().map(u32::to_string).collect());
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::counter_sk(resource))))
            .update_expression("ADD notified :set REMOVE noticeLease")
            .expression_attribute_values(":set", set);
        // The period may have rolled over meanwhile: then the marks belong to
        // a period that is gone, and the new one must stay unmarked.
        req = match period {
            Some(p) => req.condition_expression("pend = :pe").expression_attribute_values(":pe", n(p.end.timestamp())),
            None => req.condition_expression("attribute_exists(pk)"),
        };
        applied(req.send().await).map(|_| ())
    }

    /// Drops a counter's notice lease after a failed send.
    pub async fn release_threshold(&self, org: &OrgId, resource: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::counter_sk(resource))))
            .update_expression("REMOVE noticeLease")
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        applied(result).map(|_| ())
    }

    /// Claims the org's one trial-ended notice.
    pub async fn claim_trial_notice(&self, org: &OrgId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::PROFILE_SK.to_string())))
            .update_expression("SET trialNoticeLease = :until")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(trialNotifiedAt) \
                 AND (attribute_not_exists(trialNoticeLease) OR trialNoticeLease < :now)",
            )
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":until", n((now + Duration::seconds(LEASE_SECONDS)).timestamp()))
            .send()
            .await;
        applied(result)
    }

    /// Marks the trial notice sent (`sent`) or releases the claim.
    pub async fn finish_trial_notice(&self, org: &OrgId, sent: bool, now: DateTime<Utc>) -> Result<(), StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::PROFILE_SK.to_string())))
            .condition_expression("attribute_exists(pk)");
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
