//! The claim protocol, written once. Notice bookkeeping lives on the items
//! themselves, so that a notice (or a billing event) is never lost and never
//! sent twice. One protocol, used for three things: a threshold notice (on its counter, or on its
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

use super::attrs::{Item, get_n, n, placeholders, s};
use super::sdk::applied;
use super::{Store, StoreError};
use crate::domain::notice::{InFlight, LEASE_SCALE};

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
        let nonce = crate::domain::random_u64() as i64;
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
pub(crate) fn claimable(attrs: LeaseAttrs) -> String {
    format!(
        "(attribute_not_exists({lease}) OR ({lease} < :now AND attribute_not_exists({sending})))",
        lease = attrs.lease,
        sending = attrs.sending
    )
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
            until: get_n(item, self.lease)?,
            threshold: self.threshold.and_then(|t| get_n(item, t)).and_then(|t| u32::try_from(t).ok()),
            sending: item.contains_key(self.sending),
        })
    }
}

/// A claim won: its lease, and the highest threshold marked before it (as
/// the item stood at the claim, not as the claimer last read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub lease: Lease,
    pub top_before: Option<u32>,
}

impl Claim {
    pub(crate) fn of(lease: Lease, before: &Item) -> Claim {
        let top_before = get_n(before, "ntop").and_then(|t| u32::try_from(t).ok());
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
    pub(crate) fn nothing() -> Done<'static> {
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
        let req = self
            .once
            .update_item()
            .table_name(&self.table)
            .set_key(Some(w.key))
            .update_expression(w.update)
            .condition_expression(w.condition)
            .set_expression_attribute_names(placeholders(w.names.into_iter().map(|(k, v)| (k, v.to_string()))))
            .set_expression_attribute_values(placeholders(w.values))
            .set_return_values(w.returns);
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
}
