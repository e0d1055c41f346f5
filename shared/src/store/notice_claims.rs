//! The notices that use the claim protocol (`claim`): a threshold's, on its
//! counter or, once its period is closed, on the period's `CLOSED#` record;
//! and the trial-ended notice, on the profile. A threshold's marks live
//! beside its claim: `notified` (every threshold sent this period) and
//! `ntop` (the highest; a claim must be above it, so nothing is sent below a
//! threshold already sent). A rollover moves all of it to the `CLOSED#`
//! record, flagged `owed` while a notice is due or in flight there.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};

use super::attrs::{Item, key, n, s};
use super::claim::{Claim, Done, Lease, LeaseWrite, Settled, THRESHOLD, TRIAL, claimable, lapse_line};
use super::items;
use super::{Store, StoreError};
use crate::domain::notice::{InFlight, marks_for};
use crate::domain::org::OrgId;
use crate::domain::period::{ClosedPeriod, Period};
use crate::domain::usage::Counter;

/// Where a threshold notice's state is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeHolder {
    /// The counter, in the period the notice was computed for (`None` for
    /// `total` resources).
    Counter(Option<Period>),
    /// The record of a period that has been closed.
    Closed(Period),
}

/// Where a mark landed, as it now stands.
#[derive(Debug, Clone)]
pub enum Marked {
    Counter(Box<Counter>),
    Closed(ClosedPeriod),
}

impl Store {
    fn notice_key(org: &OrgId, resource: &str, holder: NoticeHolder) -> Item {
        match holder {
            NoticeHolder::Counter(_) => key(items::pk(org), items::counter_sk(resource)),
            NoticeHolder::Closed(p) => key(items::pk(org), items::closed_sk(resource, p)),
        }
    }

    /// The holders to try, in order: where the claim was taken, then, for a
    /// counter's period, the record a rollover may have moved it to.
    fn notice_keys(org: &OrgId, resource: &str, holder: NoticeHolder) -> Vec<(Item, bool)> {
        let mut keys = vec![(Self::notice_key(org, resource, holder), matches!(holder, NoticeHolder::Closed(_)))];
        if let NoticeHolder::Counter(Some(period)) = holder {
            keys.push((Self::notice_key(org, resource, NoticeHolder::Closed(period)), true));
        }
        keys
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
    ) -> Result<Option<Claim>, StoreError> {
        // The smallest count at which `threshold` % of `limit` is reached.
        let need = (i128::from(threshold) * i128::from(limit) + 99) / 100;
        let need = i64::try_from(need).unwrap_or(i64::MAX);
        let lease = Lease::from_now(now);
        let mut condition = format!(
            "lim = :lim AND used >= :need AND NOT contains(notified, :t) \
             AND (attribute_not_exists(ntop) OR ntop < :t) AND {}",
            claimable(THRESHOLD)
        );
        let mut values = vec![
            (":t", n(i64::from(threshold))),
            (":lim", n(limit)),
            (":need", n(need)),
            (":until", n(lease.0)),
            (":now", lapse_line(now)),
        ];
        if let Some(p) = period {
            condition.push_str(" AND pend = :pe");
            values.push((":pe", n(p.end.timestamp())));
        }
        let write = LeaseWrite {
            key: key(items::pk(org), items::counter_sk(resource)),
            update: "SET noticeLease = :until, noticeFor = :t REMOVE noticeSending".into(),
            condition,
            names: vec![],
            values,
            returns: Some(ReturnValue::AllOld),
        };
        Ok(self.lease_write(write).await?.map(|before| Claim::of(lease, &before)))
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
    ) -> Result<Option<Claim>, StoreError> {
        let lease = Lease::from_now(now);
        let write = LeaseWrite {
            key: key(items::pk(org), items::closed_sk(resource, period)),
            update: "SET noticeLease = :until, noticeFor = :t REMOVE noticeSending".into(),
            condition: format!(
                "attribute_exists(owed) AND (attribute_not_exists(ntop) OR ntop < :t) AND {}",
                claimable(THRESHOLD)
            ),
            names: vec![],
            values: vec![(":t", n(i64::from(threshold))), (":until", n(lease.0)), (":now", lapse_line(now))],
            returns: Some(ReturnValue::AllOld),
        };
        Ok(self.lease_write(write).await?.map(|before| Claim::of(lease, &before)))
    }

    /// Records that the threshold notice is about to go out; `false` when
    /// the lease is gone (a reset took it), and nothing must be sent.
    pub async fn threshold_sending(
        &self,
        org: &OrgId,
        resource: &str,
        lease: Lease,
        holder: NoticeHolder,
    ) -> Result<bool, StoreError> {
        for (key, _) in Self::notice_keys(org, resource, holder) {
            if self.lease_sending(key, THRESHOLD, lease).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Marks `threshold` sent and drops the lease, while the lease is ours:
    /// on the counter or, if a rollover moved the notice meanwhile, on the
    /// closed period's record. Returns where, with the item as it now
    /// stands; `None` when it cannot be read back, or when a reset took the
    /// lease (it re-arms every
    /// threshold anyway). A closed record keeps its `owed` flag: a higher
    /// threshold may still be due there, which only a fresh look can tell.
    pub async fn mark_threshold(
        &self,
        org: &OrgId,
        resource: &str,
        threshold: u32,
        lease: Lease,
        holder: NoticeHolder,
    ) -> Result<Option<Marked>, StoreError> {
        let set = AttributeValue::Ns(marks_for(threshold).iter().map(u32::to_string).collect());
        for (key, closed) in Self::notice_keys(org, resource, holder) {
            let done = Done {
                clause: "ADD notified :set SET ntop = :t",
                values: vec![(":set", set.clone()), (":t", n(i64::from(threshold)))],
                also_remove: "",
            };
            if let Some(item) = self.lease_done(key, THRESHOLD, lease, done).await? {
                // The mark is written: an item that cannot be read back only
                // ends the caller's look for a further threshold.
                let marked = if closed {
                    items::closed_from_item(&item).map(Marked::Closed)
                } else {
                    items::counter_from_item(&item).ok().map(|c| Marked::Counter(Box::new(c)))
                };
                if marked.is_none() {
                    tracing::warn!(org = %org, resource, threshold, "notice marked, but its item could not be read back");
                }
                return Ok(marked);
            }
        }
        tracing::warn!(org = %org, resource, threshold, "notice sent but its lease was gone (a reset meanwhile)");
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
        for (key, _) in Self::notice_keys(org, resource, holder) {
            if self.lease_release(key, THRESHOLD, lease).await? {
                break;
            }
        }
        Ok(())
    }

    /// Settles a lapsed threshold claim found on a counter or closed record.
    pub async fn settle_threshold(
        &self,
        org: &OrgId,
        resource: &str,
        holder: NoticeHolder,
        claim: InFlight,
        now: DateTime<Utc>,
    ) -> Result<Settled, StoreError> {
        let Some(threshold) = claim.threshold else {
            // A claim from before `noticeFor` existed: send again.
            let claim = InFlight { sending: false, ..claim };
            let key = Self::notice_key(org, resource, holder);
            return self.lease_settle(key, THRESHOLD, claim, now, Done::nothing()).await;
        };
        let set = AttributeValue::Ns(marks_for(threshold).iter().map(u32::to_string).collect());
        let done = Done {
            clause: "ADD notified :set SET ntop = :t",
            values: vec![(":set", set), (":t", n(i64::from(threshold)))],
            also_remove: "",
        };
        self.lease_settle(Self::notice_key(org, resource, holder), THRESHOLD, claim, now, done).await
    }

    /// A closed period owes nothing more: drops its `owed` flag, unless a
    /// claim is in flight on it.
    pub async fn settle_closed_notice(&self, org: &OrgId, resource: &str, period: Period) -> Result<(), StoreError> {
        let write = LeaseWrite {
            key: key(items::pk(org), items::closed_sk(resource, period)),
            update: "REMOVE owed".into(),
            condition: "attribute_not_exists(noticeLease)".into(),
            names: vec![],
            values: vec![],
            returns: None,
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
            update: "SET trialNoticeLease = :until REMOVE trialNoticeSending".into(),
            condition: format!(
                "#plan = :plan AND trialEndsAt = :te AND attribute_not_exists(trialNotifiedAt) AND {}",
                claimable(TRIAL)
            ),
            names: vec![("#plan", "plan")],
            values: vec![
                (":plan", s(plan)),
                (":te", s(trial_ends_at)),
                (":until", n(lease.0)),
                (":now", lapse_line(now)),
            ],
            returns: None,
        };
        Ok(self.lease_write(write).await?.map(|_| lease))
    }

    /// Records that the trial notice is about to go out; `false` when the
    /// lease is gone (the trial end moved: a new trial owes a new notice).
    pub async fn trial_sending(&self, org: &OrgId, lease: Lease) -> Result<bool, StoreError> {
        self.lease_sending(key(items::pk(org), items::PROFILE_SK.to_string()), TRIAL, lease).await
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
        let key = key(items::pk(org), items::PROFILE_SK.to_string());
        let ours = if sent {
            let done = Done::set_time("SET trialNotifiedAt = :at", now);
            self.lease_done(key, TRIAL, lease, done).await?.is_some()
        } else {
            self.lease_release(key, TRIAL, lease).await?
        };
        if !ours {
            tracing::warn!(org = %org, sent, "trial notice lease was gone (the trial end moved meanwhile)");
        }
        Ok(())
    }

    /// Settles a lapsed trial-notice claim.
    pub async fn settle_trial_notice(
        &self,
        org: &OrgId,
        claim: InFlight,
        now: DateTime<Utc>,
    ) -> Result<Settled, StoreError> {
        let key = key(items::pk(org), items::PROFILE_SK.to_string());
        self.lease_settle(key, TRIAL, claim, now, Done::set_time("SET trialNotifiedAt = :at", now)).await
    }
}
