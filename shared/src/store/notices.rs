//! Notification bookkeeping on the items themselves, so a notice is never
//! lost and, short of a crash, never sent twice:
//!
//! 1. claim: a conditional write takes a short lease, unless the notice is
//!    already sent, someone else holds a live lease, or the item is no
//!    longer in the state the notice was computed from;
//! 2. publish and send;
//! 3. mark it sent and drop the lease, or on failure only drop the lease so
//!    the next job run tries again. Both hold only while the lease is ours.
//!
//! A threshold's state lives on its counter: `notified` (every threshold
//! marked this period), `ntop` (the highest; a claim must be above it, so
//! nothing is sent below a threshold already sent) and `noticeLease`. When
//! a period is rolled over, that state moves to the period's `CLOSED#`
//! record, flagged `owed` if a notice is still due or in flight; the job
//! delivers it from there, and a sender whose lease moved marks it there.
//!
//! A process that dies between SES accepting an email and the mark leaves
//! the lease to expire ([`LEASE_SECONDS`]); the notice is then sent again.
//! That window is the only way a duplicate can happen.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Duration, Utc};

use super::items::{self, Item, key, n, s};
use super::sdk::applied;
use super::{Store, StoreError};
use crate::domain::org::OrgId;
use crate::domain::period::Period;

/// How long a claimed notice stays claimed if its sender disappears. Far
/// above the longest a sender can hold it (`timeouts::NOTIFY_BUDGET` plus a
/// mark), so a live sender never loses its lease.
pub const LEASE_SECONDS: i64 = 120;

/// A held claim: the lease's expiry, which identifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease(i64);

impl Lease {
    fn from_now(now: DateTime<Utc>) -> Lease {
        Lease((now + Duration::seconds(LEASE_SECONDS)).timestamp())
    }
}

/// Where a threshold notice's state is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeHolder {
    /// The counter, in the period the notice was computed for (`None` for
    /// `total` resources).
    Counter(Option<Period>),
    /// The record of a period that has been closed.
    Closed(Period),
}

/// What to mark when `threshold` is sent: it, and 80 and 100 below it. Every
/// lower threshold counts as sent once a higher one is (the claim's `ntop`
/// condition), so the steps in between need no entry, and a jump to
/// 10 000 % stores three numbers, not a thousand.
pub fn marks_for(threshold: u32) -> Vec<u32> {
    let mut out: Vec<u32> = [80, 100].into_iter().filter(|t| *t < threshold).collect();
    out.push(threshold);
    out
}

/// One conditional UpdateItem on a lease's item.
struct LeaseWrite<'a> {
    key: Item,
    update: &'a str,
    condition: String,
    names: Vec<(&'a str, &'a str)>,
    values: Vec<(&'a str, AttributeValue)>,
    return_new: bool,
}

impl Store {
    /// The one place a lease's item is written: `Ok(None)` when the
    /// condition did not hold; the item as written when asked for.
    async fn lease_write(&self, w: LeaseWrite<'_>) -> Result<Option<Item>, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(w.key))
            .update_expression(w.update)
            .condition_expression(w.condition);
        for (name, value) in w.names {
            req = req.expression_attribute_names(name, value);
        }
        for (name, value) in w.values {
            req = req.expression_attribute_values(name, value);
        }
        if w.return_new {
            req = req.return_values(ReturnValue::AllNew);
        }
        let result = req.send().await;
        match result {
            Ok(out) => Ok(Some(out.attributes().cloned().unwrap_or_default())),
            Err(err) => applied(Err::<(), _>(err)).map(|_| None),
        }
    }

    fn holder_key(org: &OrgId, resource: &str, holder: NoticeHolder) -> Item {
        match holder {
            NoticeHolder::Counter(_) => key(items::pk(org), items::counter_sk(resource)),
            NoticeHolder::Closed(p) => key(items::pk(org), items::closed_sk(resource, p)),
        }
    }

    /// Claims `threshold` of a counter's current period, provided the
    /// counter still has `limit` and has really reached the threshold, and
    /// nothing at or above it was sent.
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
        let lease = Lease::from_now(now);
        let mut condition = "lim = :lim AND used >= :need AND NOT contains(notified, :t) \
            AND (attribute_not_exists(ntop) OR ntop < :t) \
            AND (attribute_not_exists(noticeLease) OR noticeLease < :now)"
            .to_string();
        let mut values = vec![
            (":t", n(i64::from(threshold))),
            (":lim", n(limit)),
            (":need", n(need)),
            (":now", n(now.timestamp())),
            (":until", n(lease.0)),
        ];
        if let Some(p) = period {
            condition.push_str(" AND pend = :pe");
            values.push((":pe", n(p.end.timestamp())));
        }
        let key = key(items::pk(org), items::counter_sk(resource));
        let write =
            LeaseWrite { key, update: "SET noticeLease = :until", condition, names: vec![], values, return_new: false };
        Ok(self.lease_write(write).await?.map(|_| lease))
    }

    /// Claims the notice still owed by a closed period: `threshold` of what
    /// its record says was used, if nothing at or above it was sent.
    pub async fn claim_closed_threshold(
        &self,
        org: &OrgId,
        resource: &str,
        threshold: u32,
        period: Period,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError> {
        let lease = Lease::from_now(now);
        let write = LeaseWrite {
            key: key(items::pk(org), items::closed_sk(resource, period)),
            update: "SET noticeLease = :until",
            condition: "attribute_exists(owed) AND (attribute_not_exists(ntop) OR ntop < :t) \
                AND (attribute_not_exists(noticeLease) OR noticeLease < :now)"
                .into(),
            names: vec![],
            values: vec![(":t", n(i64::from(threshold))), (":now", n(now.timestamp())), (":until", n(lease.0))],
            return_new: false,
        };
        Ok(self.lease_write(write).await?.map(|_| lease))
    }

    /// Marks `threshold` sent and drops the lease, while the lease is ours:
    /// on the counter, or, if a rollover moved the notice meanwhile, on the
    /// closed period's record. Returns the counter as it now stands (`None`
    /// when the notice was marked elsewhere or the lease was taken away by
    /// a reset, which re-arms every threshold anyway).
    pub async fn mark_threshold(
        &self,
        org: &OrgId,
        resource: &str,
        threshold: u32,
        lease: Lease,
        holder: NoticeHolder,
    ) -> Result<Option<Item>, StoreError> {
        let set = AttributeValue::Ns(marks_for(threshold).iter().map(u32::to_string).collect());
        let mark = |key: Item, closed: bool| LeaseWrite {
            key,
            update: if closed {
                "ADD notified :set SET ntop = :t REMOVE noticeLease, owed"
            } else {
                "ADD notified :set SET ntop = :t REMOVE noticeLease"
            },
            condition: "noticeLease = :lease".into(),
            names: vec![],
            values: vec![(":set", set.clone()), (":t", n(i64::from(threshold))), (":lease", n(lease.0))],
            return_new: !closed,
        };
        let closed = matches!(holder, NoticeHolder::Closed(_));
        if let Some(item) = self.lease_write(mark(Self::holder_key(org, resource, holder), closed)).await? {
            return Ok((!closed).then_some(item));
        }
        if let NoticeHolder::Counter(Some(period)) = holder {
            let moved = self.lease_write(mark(key(items::pk(org), items::closed_sk(resource, period)), true)).await?;
            if moved.is_some() {
                return Ok(None);
            }
        }
        tracing::warn!(org = %org, resource, threshold, "notice sent but its lease was gone (reset meanwhile)");
        Ok(None)
    }

    /// Drops our lease after a failed send or publish, wherever it is now.
    pub async fn release_threshold(
        &self,
        org: &OrgId,
        resource: &str,
        lease: Lease,
        holder: NoticeHolder,
    ) -> Result<(), StoreError> {
        let release = |key: Item| LeaseWrite {
            key,
            update: "REMOVE noticeLease",
            condition: "noticeLease = :lease".into(),
            names: vec![],
            values: vec![(":lease", n(lease.0))],
            return_new: false,
        };
        if self.lease_write(release(Self::holder_key(org, resource, holder))).await?.is_none()
            && let NoticeHolder::Counter(Some(period)) = holder
        {
            self.lease_write(release(key(items::pk(org), items::closed_sk(resource, period)))).await?;
        }
        Ok(())
    }

    /// A closed period owes nothing more: drops its `owed` flag, unless a
    /// sender holds a live lease on it.
    pub async fn settle_closed_notice(
        &self,
        org: &OrgId,
        resource: &str,
        period: Period,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let write = LeaseWrite {
            key: key(items::pk(org), items::closed_sk(resource, period)),
            update: "REMOVE owed, noticeLease",
            condition: "attribute_not_exists(noticeLease) OR noticeLease < :now".into(),
            names: vec![],
            values: vec![(":now", n(now.timestamp()))],
            return_new: false,
        };
        self.lease_write(write).await.map(|_| ())
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
        let lease = Lease::from_now(now);
        let write = LeaseWrite {
            key: key(items::pk(org), items::PROFILE_SK.to_string()),
            update: "SET trialNoticeLease = :until",
            condition: "#plan = :plan AND trialEndsAt = :te AND attribute_not_exists(trialNotifiedAt) \
                AND (attribute_not_exists(trialNoticeLease) OR trialNoticeLease < :now)"
                .into(),
            names: vec![("#plan", "plan")],
            values: vec![
                (":plan", s(plan)),
                (":te", s(trial_ends_at)),
                (":now", n(now.timestamp())),
                (":until", n(lease.0)),
            ],
            return_new: false,
        };
        Ok(self.lease_write(write).await?.map(|_| lease))
    }

    /// Marks the trial notice sent (`sent`) or releases the claim; only
    /// while the lease is ours. An org update that moves the trial end
    /// takes the lease away (the new trial end is a new notice).
    pub async fn finish_trial_notice(
        &self,
        org: &OrgId,
        lease: Lease,
        sent: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = s(crate::domain::rfc3339(now));
        let write = LeaseWrite {
            key: key(items::pk(org), items::PROFILE_SK.to_string()),
            update: if sent { "SET trialNotifiedAt = :at REMOVE trialNoticeLease" } else { "REMOVE trialNoticeLease" },
            condition: "trialNoticeLease = :lease".into(),
            names: vec![],
            values: if sent { vec![(":lease", n(lease.0)), (":at", at)] } else { vec![(":lease", n(lease.0))] },
            return_new: false,
        };
        if self.lease_write(write).await?.is_none() {
            tracing::warn!(org = %org, sent, "trial notice lease was gone (the trial end moved meanwhile)");
        }
        Ok(())
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
