//! Reservations on the table. An open reservation is a hold on its counter
//! (`holds.<nonce>` = `{a, e}`, summed in `held`, taken from `rem`), written
//! by the reserve under the consume's own conditions, so used + held never
//! passes a hard limit. Commit and release take the hold off and record the
//! outcome (`RES#<nonce>`, put only if absent, kept `OUTCOME_TTL_DAYS`) in
//! one transaction: exactly one of commit, release and expiry ends a
//! reservation, and a repeat within those days finds the first outcome.
//! Expiry leaves no record: the sweep takes expired holds off, and the id
//! says when the reservation expired.

use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use chrono::{DateTime, Duration, Utc};

use super::attrs::{Item, get_n, get_s, key, n, s};
use super::items;
use super::sdk::get_consistent;
use super::sdk::{MAX_ATTEMPTS, Transacted, backoff, own, reason, transact};
use super::{Store, StoreError};
use crate::domain::MAX_COUNT;
use crate::domain::catalogue::Enforcement;
use crate::domain::grant::Expired;
use crate::domain::org::OrgId;
use crate::domain::reservation::{Hold, OUTCOME_TTL_DAYS, Outcome, ReservationId, Status};
use crate::domain::usage::Counter;
use crate::domain::usage::Reason;

/// How to end a reservation.
#[derive(Debug, Clone, Copy)]
pub enum End {
    /// Record this many units used (all that was held when `None`).
    Commit(Option<i64>),
    Release,
}

/// What ending a reservation came to.
#[derive(Debug)]
pub enum Ended {
    /// This request ended it.
    Done(Outcome),
    /// It had ended before: how.
    Before(Outcome),
    NotFound,
    /// A commit above the hold whose excess the limit or trial refuses;
    /// the reservation stays open.
    Refused {
        counter: Counter,
        reason: Reason,
    },
}

impl Store {
    /// Commits or releases a reservation: the hold off its counter (and for
    /// a commit the units used) with the outcome's record, in one
    /// transaction.
    pub async fn end_reservation(
        &self,
        org: &OrgId,
        id: &ReservationId,
        end: End,
        now: DateTime<Utc>,
    ) -> Result<(Ended, Vec<Expired>), StoreError> {
        let mut expired = Vec::new();
        for attempt in 0..MAX_ATTEMPTS {
            let (update, outcome) = self.end_write(org, id, end, now)?;
            let record = self.outcome_put(org, id, &outcome, now)?;
            const COUNTER: usize = 0;
            const RECORD: usize = 1;
            let writes = vec![
                TransactWriteItem::builder().update(update).build(),
                TransactWriteItem::builder().put(record).build(),
            ];
            let reasons = match own(transact(&self.once, "reservation end", writes)).await? {
                Transacted::Committed => return Ok((Ended::Done(outcome), expired)),
                Transacted::Refused(reasons) => reasons,
            };
            if reason(&reasons, RECORD) == "ConditionalCheckFailed"
                && let Some(first) = reasons[RECORD].item().and_then(outcome_from_item)
            {
                // The outcome of this very id; another id with its nonce
                // (an amount or expiry altered) names nothing.
                let ended = if first.reservation_id == id.encode() { Ended::Before(first) } else { Ended::NotFound };
                return Ok((ended, expired));
            }
            let old = reasons[COUNTER].item().map(items::counter_from_item).transpose()?;
            let ours = |h: &&Hold| h.nonce == id.nonce && h.amount == id.amount && h.expires_at == id.expires_at;
            let found = old.as_ref().and_then(|c| c.holds.iter().find(ours).cloned().map(|h| (c, h)));
            let Some((counter, hold)) = found else {
                // Gone (or never there): how it ended, if it did.
                return Ok((self.ended_without_hold(org, id, old.as_ref(), now).await?, expired));
            };
            // Kept apart from `make_current`: the hold's own expiry decides
            // first (it ended the reservation), and a commit's refusal is
            // judged before what else expired is swept, so that a refused
            // commit writes nothing more.
            if hold.expired(now) {
                expired.extend(self.sweep(org, counter, now).await?);
                continue;
            }
            if counter.period_ended(now) {
                self.roll_over(org, counter, now).await?;
                continue;
            }
            if let End::Commit(actual) = end {
                let actual = actual.unwrap_or(id.amount);
                let mut rest = counter.at(now);
                rest.holds.retain(|h| h.nonce != id.nonce);
                // Fits if the whole actual fits where the hold was; past the
                // largest count, never.
                let refused = if actual > id.amount {
                    rest.refusal(actual, now)
                } else {
                    (counter.used.saturating_add(actual) > MAX_COUNT).then_some(Reason::QuotaExceeded)
                };
                if let Some(reason) = refused {
                    return Ok((Ended::Refused { counter: counter.at(now), reason }, expired));
                }
                if counter.lapsed(now) {
                    expired.extend(self.sweep(org, counter, now).await?);
                }
            }
            backoff(attempt).await;
        }
        Err(StoreError::Contended("reservation end"))
    }

    /// The counter's side of ending a reservation, and the outcome it records.
    fn end_write(
        &self,
        org: &OrgId,
        id: &ReservationId,
        end: End,
        now: DateTime<Utc>,
    ) -> Result<(Update, Outcome), StoreError> {
        let used = match end {
            End::Commit(actual) => actual.unwrap_or(id.amount),
            End::Release => 0,
        };
        let status = match end {
            End::Commit(_) => Status::Committed,
            // A hold released after its expiry, before a sweep took it: it
            // ended by expiring, and its units are free either way.
            End::Release if id.expires_at <= now => Status::Expired,
            End::Release => Status::Released,
        };
        let mut condition = "#holds.#n.a = :held AND #holds.#n.e = :exp".to_string();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::counter_sk(&id.resource))))
            .expression_attribute_names("#holds", items::HOLDS)
            .expression_attribute_names("#n", &id.nonce)
            .expression_attribute_values(":held", n(id.amount))
            .expression_attribute_values(":exp", n(id.expires_at.timestamp()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let End::Commit(_) = end {
            // Committed while live; the units held are the org's to use, and
            // any above them are a consume under the usual conditions.
            // Into the period that holds now: a hold carried over from one an
            // anchor change shortened is committed after its rollover.
            condition
                .push_str(" AND #holds.#n.e > :now AND used <= :cap AND (attribute_not_exists(pend) OR pend > :now)");
            update = update
                .expression_attribute_values(":now", n(now.timestamp()))
                .expression_attribute_values(":cap", n(MAX_COUNT - used));
            let extra = used - id.amount;
            if extra > 0 {
                condition.push_str(
                    " AND (attribute_not_exists(trialEnd) OR trialEnd > :now) \
                     AND (attribute_not_exists(gexp) OR gexp > :now) \
                     AND (enf = :soft OR attribute_not_exists(lim) OR rem >= :extra)",
                );
                update = update
                    .expression_attribute_values(":soft", s(Enforcement::Soft.as_str()))
                    .expression_attribute_values(":extra", n(extra));
            }
        }
        update = update
            .update_expression(
                "REMOVE #holds.#n SET used = used + :used, held = held - :held, rem = rem + :room ADD hv :one",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":used", n(used))
            .expression_attribute_values(":room", n(id.amount - used))
            .condition_expression(condition);
        let outcome = Outcome {
            reservation_id: id.encode(),
            resource: id.resource.clone(),
            status,
            amount: id.amount,
            used,
            at: now,
        };
        Ok((update.build()?, outcome))
    }

    fn outcome_put(
        &self,
        org: &OrgId,
        id: &ReservationId,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> Result<Put, StoreError> {
        let mut item = key(items::pk(org), items::outcome_sk(&id.nonce));
        item.insert("type".into(), s("reservation"));
        item.insert("reservationId".into(), s(&outcome.reservation_id));
        item.insert("resource".into(), s(&outcome.resource));
        item.insert("status".into(), s(outcome.status.as_str()));
        item.insert("amount".into(), n(outcome.amount));
        item.insert("used".into(), n(outcome.used));
        item.insert("at".into(), n(outcome.at.timestamp()));
        item.insert("ttl".into(), n((now + Duration::days(OUTCOME_TTL_DAYS)).timestamp()));
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?)
    }

    /// A reservation whose hold is not on its counter: ended before (its
    /// record says how; without one, it expired and a sweep or the period's
    /// end took it off), or never issued.
    async fn ended_without_hold(
        &self,
        org: &OrgId,
        id: &ReservationId,
        counter: Option<&Counter>,
        now: DateTime<Utc>,
    ) -> Result<Ended, StoreError> {
        let record =
            get_consistent(&self.retrying, &self.table, key(items::pk(org), items::outcome_sk(&id.nonce))).await?;
        if let Some(first) = record.as_ref().and_then(outcome_from_item) {
            let ended = if first.reservation_id == id.encode() { Ended::Before(first) } else { Ended::NotFound };
            return Ok(ended);
        }
        // Forged, altered, or another org's: nothing to say about it.
        if !id.issued_to(org) {
            return Ok(Ended::NotFound);
        }
        let period_moved_on = counter.and_then(|c| c.period).is_some_and(|p| p.start >= id.expires_at);
        if id.expires_at <= now || period_moved_on {
            let outcome = Outcome {
                reservation_id: id.encode(),
                resource: id.resource.clone(),
                status: Status::Expired,
                amount: id.amount,
                used: 0,
                at: id.expires_at,
            };
            return Ok(Ended::Before(outcome));
        }
        Ok(Ended::NotFound)
    }
}

fn outcome_from_item(item: &Item) -> Option<Outcome> {
    Some(Outcome {
        reservation_id: get_s(item, "reservationId")?.to_string(),
        resource: get_s(item, "resource")?.to_string(),
        status: Status::parse(get_s(item, "status")?)?,
        amount: get_n(item, "amount")?,
        used: get_n(item, "used")?,
        at: DateTime::from_timestamp(get_n(item, "at")?, 0)?,
    })
}
