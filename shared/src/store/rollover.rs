//! Closing a period: the counter starts the next at 0 and a `CLOSED#` record
//! keeps the final figures for billing, with the period's notice state, in
//! one transaction. Periods only move forward.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::attrs::{key, n, s};
use super::items;
use super::sdk::{MAX_ATTEMPTS, Transacted, backoff, transact};
use super::{Store, StoreError};
use crate::domain::events::{Pending, QuotaRecovered, RecoveryCause};
use crate::domain::org::OrgId;
use crate::domain::period::Period;
use crate::domain::reservation::Hold;
use crate::domain::usage::Counter;

impl Store {
    /// Starts a counter's new period at 0 and records the one that ended,
    /// for billing, in one transaction. Whoever loses the race does nothing.
    /// Only a period that has ended by `now` is closed, and the condition
    /// checks that against the stored period, so a writer whose clock lags
    /// can never move a counter back. The period's notice state moves to
    /// its record (see `notice_claims`): a notice still owed, or in flight, is
    /// delivered from there.
    pub async fn roll_over(&self, org: &OrgId, counter: &Counter, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut counter = counter.clone();
        for attempt in 0..MAX_ATTEMPTS {
            if Box::pin(self.roll_over_once(org, &counter, now)).await? {
                return Ok(());
            }
            // Refused: rolled over by another writer, or a notice was marked
            // since `counter` was read. Read it again to tell which.
            match self.counter_item(org, &counter.resource).await? {
                Some(fresh) if fresh.period_ended(now) => counter = fresh,
                _ => return Ok(()),
            }
            backoff(attempt).await;
        }
        Err(StoreError::Contended("rollover"))
    }

    /// One rollover attempt: `Ok(false)` when its condition did not hold.
    async fn roll_over_once(&self, org: &OrgId, counter: &Counter, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let Some(old) = counter.period.filter(|_| counter.period_ended(now)) else {
            return Ok(true);
        };
        let new = Period::containing(now, counter.anchor_day, counter.timezone);
        // Pinned to what is copied: the count, the notice marks (which only
        // grow within a period) and the lease, and to the anchor and zone the
        // new period was computed from.
        // Holds go with the period, pinned by `hv` (the holds, and so the
        // stored `held`, as read; this write makes `held` the sum of what
        // stays again), and their units come back to `rem`. One that
        // outlives it (an anchor change shortened the period) stays: its
        // work is still running, and ends in the next.
        let kept: Vec<&Hold> = counter.holds.iter().filter(|h| !h.expired(now)).collect();
        let kept_units: i64 = kept.iter().map(|h| h.amount).sum();
        let kept_map = AttributeValue::M(kept.iter().map(|h| (h.nonce.clone(), items::hold_value(h))).collect());
        let mut condition = "pend = :oldpe AND pend <= :now AND used = :oldused AND #anchor = :anchor AND #tz = :tz \
             AND (hv = :hv OR (attribute_not_exists(hv) AND :hv = :zero))"
            .to_string();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::counter_sk(&counter.resource))))
            .update_expression(
                "SET used = :zero, held = :kept, #holds = :holds, rem = rem + :back, pstart = :ps, pend = :pe, \
                 hv = :hv + :one \
                 REMOVE notified, ntop, noticeLease, noticeFor, noticeSending",
            )
            .expression_attribute_values(":hv", n(counter.hold_version))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_names("#holds", items::HOLDS)
            .expression_attribute_values(":holds", kept_map)
            .expression_attribute_values(":kept", n(kept_units))
            .expression_attribute_values(":back", n(counter.used + counter.stored_held - kept_units))
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_names("#anchor", "anchor")
            .expression_attribute_names("#tz", "tz")
            .expression_attribute_values(":anchor", n(i64::from(counter.anchor_day)))
            .expression_attribute_values(":tz", s(counter.timezone.name()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":ps", n(new.start.timestamp()))
            .expression_attribute_values(":pe", n(new.end.timestamp()))
            .expression_attribute_values(":oldpe", n(old.end.timestamp()))
            .expression_attribute_values(":oldused", n(counter.used));
        if counter.notified.is_empty() {
            condition.push_str(" AND attribute_not_exists(notified)");
        } else {
            condition.push_str(" AND size(notified) = :marks");
            update = update.expression_attribute_values(":marks", n(counter.notified.len() as i64));
        }
        match counter.notice {
            None => condition.push_str(" AND attribute_not_exists(noticeLease)"),
            Some(claim) => {
                condition.push_str(" AND noticeLease = :lease");
                condition.push_str(if claim.sending {
                    " AND noticeSending = :lease"
                } else {
                    " AND attribute_not_exists(noticeSending)"
                });
                update = update.expression_attribute_values(":lease", n(claim.until));
            }
        }
        let update = update.condition_expression(condition).build()?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(items::closed_item(org, counter, old, now)))
            .condition_expression("attribute_not_exists(pk)")
            .build()?;
        let mut writes =
            vec![TransactWriteItem::builder().update(update).build(), TransactWriteItem::builder().put(put).build()];
        // A resource that had reached a threshold starts the new period at 0:
        // back below it. Owed with the close, in its transaction (the
        // outbox), so it is published once the period has closed, whoever
        // closed it.
        let through = Counter { limit: counter.limit_through(old.end), ..counter.clone() };
        let lapsing: i64 = counter.grants.iter().filter(|g| g.expires_at <= new.start).map(|g| g.amount).sum();
        let started = Counter {
            used: 0,
            period: Some(new),
            limit: counter.limit.map(|l| l - lapsing),
            grants: counter.grants.iter().filter(|g| g.expires_at > new.start).cloned().collect(),
            ..counter.clone()
        };
        if let Some(recovered) = QuotaRecovered::between(&through, &started, RecoveryCause::NewPeriod, now) {
            writes.push(self.outbox_put(org, &Pending::of(&recovered), now)?);
        }
        Ok(matches!(transact(&self.once, "rollover", writes).await?, Transacted::Committed))
    }
}
