//! Notice bookkeeping on the items themselves, so that a notice (or a
//! billing event) is never lost and never sent twice. One lease protocol,
//! used for three things: a threshold notice (on its counter, or on its
//! period's `CLOSED#` record once the period is closed), the trial-ended
//! notice (on the profile), and `UsagePeriodClosed` (on the closed records).
//!
//! 1. claim: a conditional write takes a lease, unless the notice is sent,
//!    anyone holds a lease, or the item is no longer in the state the notice
//!    was computed from;
//! 2. `sending`: recorded on the lease right before the external call;
//! 3. mark it done and drop the lease, or after a failed call only drop the
//!    lease, so the next job run tries again. All only while the lease is
//!    ours.
//!
//! A lease whose sender vanished (the process died) lapses after
//! [`LEASE_SECONDS`], and the job settles it: without `sending` nothing left
//! the process, and the notice is sent again; with `sending` the call was
//! under way or done, and the notice is presumed delivered (counted in the
//! job's summary) rather than risking a second email or billing event.
//!
//! A threshold's marks live beside the lease: `notified` (every threshold
//! sent this period) and `ntop` (the highest; a claim must be above it).
//! A rollover moves all of it to the period's `CLOSED#` record, flagged
//! `owed` while a notice is due or in flight there.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Duration, Utc};

use super::items::{self, Item, key, n, s};
use super::sdk::applied;
use super::{Store, StoreError};
use crate::domain::notice::{InFlight, LEASE_SCALE, marks_for};
use crate::domain::org::OrgId;
use crate::domain::period::Period;

/// How long a claim lasts if its sender disappears. Far above the longest a
/// live sender holds one (`timeouts::NOTIFY_BUDGET` plus a mark), so a live
/// sender never loses its lease.
pub const LEASE_SECONDS: i64 = 120;

/// A held claim: the lease's expiry, which identifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease(pub(crate) i64);

impl Lease {
    /// A new claim, lapsing [`LEASE_SECONDS`] after `now`.
    pub(crate) fn from_now(now: DateTime<Utc>) -> Lease {
        use std::hash::{BuildHasher, Hasher};
        let nonce = std::collections::hash_map::RandomState::new().build_hasher().finish() as i64;
        let until = (now + Duration::seconds(LEASE_SECONDS)).timestamp();
        Lease(until * LEASE_SCALE + nonce.rem_euclid(LEASE_SCALE))
    }
}

/// `now` as claims are compared with it: a claim below it has lapsed.
pub(crate) fn lapse_line(now: DateTime<Utc>) -> AttributeValue {
    n(now.timestamp().saturating_mul(LEASE_SCALE))
}

/// A claim may be taken where none is held, or over one that lapsed before
/// its sender began its call (nothing left that process; see `Settled`).
fn claimable(attrs: LeaseAttrs) -> String {
    format!(
        "(attribute_not_exists({lease}) OR ({lease} < :now AND attribute_not_exists({sending})))",
        lease = attrs.lease,
        sending = attrs.sending
    )
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

/// The attributes of one use of the lease protocol.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaseAttrs {
    pub lease: &'static str,
    pub sending: &'static str,
    /// Which threshold the lease is for (threshold notices only).
    pub threshold: Option<&'static str>,
}

pub(crate) const THRESHOLD: LeaseAttrs =
    LeaseAttrs { lease: "noticeLease", sending: "noticeSending", threshold: Some("noticeFor") };
pub(crate) const TRIAL: LeaseAttrs =
    LeaseAttrs { lease: "trialNoticeLease", sending: "trialNoticeSending", threshold: None };
pub(crate) const EMIT: LeaseAttrs = LeaseAttrs { lease: "emitLease", sending: "emitSending", threshold: None };

impl LeaseAttrs {
    /// `REMOVE` list of everything the lease put on the item.
    pub(crate) fn removal(&self) -> String {
        let mut names = vec![self.lease, self.sending];
        names.extend(self.threshold);
        names.join(", ")
    }

    /// The claim in flight on `item`, if any.
    pub(crate) fn read(&self, item: &Item) -> Option<InFlight> {
        Some(InFlight {
            until: items::get_n(item, self.lease)?,
            threshold: self.threshold.and_then(|t| items::get_n(item, t)).and_then(|t| u32::try_from(t).ok()),
            sending: item.contains_key(self.sending),
        })
    }
}

/// Where a mark landed, with the item as it now stands.
#[derive(Debug, Clone)]
pub enum Marked {
    Counter(Item),
    Closed(Item),
}

/// A claim won: its lease, and the highest threshold marked before it (as
/// the item stood at the claim, not as the claimer last read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub lease: Lease,
    pub top_before: Option<u32>,
}

impl Claim {
    fn of(lease: Lease, before: &Item) -> Claim {
        let top_before = items::get_n(before, "ntop").and_then(|t| u32::try_from(t).ok());
        Claim { lease, top_before }
    }
}

/// How a lapsed claim was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Its sender had begun the call: presumed delivered, marked done.
    PresumedDelivered,
    /// Its sender never called out: released, to be sent again.
    Released,
    /// Someone else settled or renewed it first.
    Nothing,
}

/// What marking a claim's work done writes: a `SET`/`ADD` clause with its
/// values, and attributes to remove besides the lease's own.
pub(crate) struct Done<'a> {
    pub clause: &'a str,
    pub values: Vec<(&'a str, AttributeValue)>,
    pub also_remove: &'a str,
}

impl<'a> Done<'a> {
    fn nothing() -> Done<'static> {
        Done { clause: "", values: vec![], also_remove: "" }
    }

    /// `clause` sets `:at` to `now`.
    pub(crate) fn set_time(clause: &'a str, now: DateTime<Utc>) -> Done<'a> {
        Done { clause, values: vec![(":at", s(crate::domain::rfc3339(now)))], also_remove: "" }
    }
}

/// One conditional UpdateItem on a lease's item.
pub(crate) struct LeaseWrite<'a> {
    pub key: Item,
    pub update: String,
    pub condition: String,
    pub names: Vec<(&'a str, &'a str)>,
    pub values: Vec<(&'a str, AttributeValue)>,
    /// What the write returns: the item as written (`AllNew`) or as it was
    /// (`AllOld`); nothing when `None`.
    pub returns: Option<ReturnValue>,
}

impl Store {
    /// The one place a lease's item is written: `Ok(None)` when the
    /// condition did not hold; the item as written when asked for.
    pub(crate) async fn lease_write(&self, w: LeaseWrite<'_>) -> Result<Option<Item>, StoreError> {
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
        if let Some(returns) = w.returns {
            req = req.return_values(returns);
        }
        match req.send().await {
            Ok(out) => Ok(Some(out.attributes().cloned().unwrap_or_default())),
            Err(err) => applied(Err::<(), _>(err)).map(|_| None),
        }
    }

    /// Records that the sender is about to call out. `false` when the lease
    /// is no longer ours (nothing must be sent then).
    pub(crate) async fn lease_sending(&self, key: Item, attrs: LeaseAttrs, lease: Lease) -> Result<bool, StoreError> {
        let write = LeaseWrite {
            key,
            update: format!("SET {} = :lease", attrs.sending),
            condition: format!("{} = :lease", attrs.lease),
            names: vec![],
            values: vec![(":lease", n(lease.0))],
            returns: None,
        };
        Ok(self.lease_write(write).await?.is_some())
    }

    /// Drops our lease; `false` when it was not ours (any more).
    pub(crate) async fn lease_release(&self, key: Item, attrs: LeaseAttrs, lease: Lease) -> Result<bool, StoreError> {
        let write = LeaseWrite {
            key,
            update: format!("REMOVE {}", attrs.removal()),
            condition: format!("{} = :lease", attrs.lease),
            names: vec![],
            values: vec![(":lease", n(lease.0))],
            returns: None,
        };
        Ok(self.lease_write(write).await?.is_some())
    }

    /// Marks the work done and drops the lease, if it is ours; the item as
    /// it now stands.
    pub(crate) async fn lease_done(
        &self,
        key: Item,
        attrs: LeaseAttrs,
        lease: Lease,
        done: Done<'_>,
    ) -> Result<Option<Item>, StoreError> {
        let mut values = done.values;
        values.push((":lease", n(lease.0)));
        let write = LeaseWrite {
            key,
            update: format!("{} REMOVE {}{}", done.clause, attrs.removal(), done.also_remove),
            condition: format!("{} = :lease", attrs.lease),
            names: vec![],
            values,
            returns: Some(ReturnValue::AllNew),
        };
        self.lease_write(write).await
    }

    /// Settles a lapsed claim (`claim`, as read): presumed delivered and
    /// marked `done` if its sender had begun the call, released otherwise.
    /// Conditional on the claim being exactly as read, and lapsed.
    pub(crate) async fn lease_settle(
        &self,
        key: Item,
        attrs: LeaseAttrs,
        claim: InFlight,
        now: DateTime<Utc>,
        done: Done<'_>,
    ) -> Result<Settled, StoreError> {
        let mut values = done.values;
        values.push((":old", n(claim.until)));
        values.push((":now", lapse_line(now)));
        let lapsed = format!("{lease} = :old AND {lease} < :now", lease = attrs.lease);
        let write = if claim.sending {
            LeaseWrite {
                key,
                update: format!("{} REMOVE {}{}", done.clause, attrs.removal(), done.also_remove),
                condition: format!("{lapsed} AND {} = :old", attrs.sending),
                names: vec![],
                values,
                returns: None,
            }
        } else {
            LeaseWrite {
                key,
                update: format!("REMOVE {}", attrs.removal()),
                condition: format!("{lapsed} AND attribute_not_exists({})", attrs.sending),
                names: vec![],
                values: values.into_iter().filter(|(name, _)| *name == ":old" || *name == ":now").collect(),
                returns: None,
            }
        };
        Ok(match (self.lease_write(write).await?, claim.sending) {
            (None, _) => Settled::Nothing,
            (Some(_), true) => Settled::PresumedDelivered,
            (Some(_), false) => Settled::Released,
        })
    }

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
    /// stands; `None` when a reset took the lease (it re-arms every
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
                return Ok(Some(if closed { Marked::Closed(item) } else { Marked::Counter(item) }));
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
