//! Admission: the consume and the reserve, one loop. Each attempt is one
//! conditional UpdateItem (with an idempotency key, one transaction with
//! the key's record) that holds only if the counter's limit, trial, grants
//! and period allow; a failed condition returns the counter as it was, and
//! the store either refuses with its reason or brings the counter up to date
//! (`current`) and tries again. A reserve is the consume's write with a hold
//! (`holds.<nonce>`) instead of used units, under the same conditions.
//!
//! Over 400 lines for a reason: the loop and the write it sends (the
//! conditions a consume is admitted on) are one concept, read together.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, Update};
use chrono::{DateTime, Utc};

use super::attrs::{Item, UpdateExpr, get_s, key, n, placeholders, s};
use super::idempotency::Idem;
use super::items;
use super::sdk::{MAX_ATTEMPTS, backoff, condition_failed_item, outcome_unknown_now, own};
use super::{CounterRef, Store, StoreError};
use crate::domain::MAX_COUNT;
use crate::domain::catalogue::{Catalogue, Enforcement, ResourceKind};
use crate::domain::decision::Consumed;
use crate::domain::grant::Expired;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::org::OrgId;
use crate::domain::reservation::{self, Hold, MAX_OPEN, ReservationId};
use crate::domain::usage::{Counter, Reason};

/// What a reserve came to.
#[derive(Debug)]
pub enum Reserved {
    Held {
        id: ReservationId,
        counter: Counter,
    },
    /// A retry of a reserve that held units: the same reservation.
    Replayed {
        id: ReservationId,
        counter: Counter,
    },
    Refused {
        counter: Counter,
        reason: Reason,
    },
    /// The counter has `MAX_OPEN` reservations open.
    TooMany,
}

/// What an admission writes: used units, or a hold for `ttl_seconds`.
#[derive(Debug, Clone, Copy)]
enum Ask {
    Consume,
    Reserve { ttl_seconds: i64 },
}

/// What an admission came to; `id` is the reservation's (a reserve's only).
enum Admitted {
    /// Written by this request. `before`: the count it started from, when
    /// the write itself told (an unkeyed consume's).
    Written {
        counter: Counter,
        before: Option<i64>,
        id: Option<ReservationId>,
    },
    /// A retry with the same key: nothing written again.
    Replayed {
        counter: Counter,
        id: Option<ReservationId>,
    },
    Refused {
        counter: Counter,
        reason: Reason,
    },
    /// The counter has `MAX_OPEN` holds (a reserve's only).
    TooMany,
}

/// What a failed condition meant, once the counter is up to date.
enum Next {
    Retry,
    Refused(Box<Counter>, Reason),
}

impl Store {
    /// Records `amount` units if the counter's limit, trial and period allow:
    /// one conditional UpdateItem (with an idempotency key: one transaction
    /// with the key's record). Also returns the grants found expired and
    /// taken off on the way.
    #[allow(clippy::too_many_arguments)] // the counter by its parts: tests and the benchmark name it so
    pub async fn consume(
        &self,
        org: &OrgId,
        resource: &str,
        kind: ResourceKind,
        amount: i64,
        idempotency: Option<&IdempotencyKey>,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> Result<(Consumed, Vec<Expired>), StoreError> {
        let at = CounterRef { org, resource, kind, catalogue };
        let (admitted, expired) = self.admit(&at, amount, Ask::Consume, idempotency, now).await?;
        let consumed = match admitted {
            Admitted::Written { counter, before, .. } => Consumed::Admitted { counter, before },
            Admitted::Replayed { counter, .. } => Consumed::Replayed { counter },
            Admitted::Refused { counter, reason } => Consumed::Refused { counter, reason },
            // A consume holds nothing: never.
            Admitted::TooMany => return Err(StoreError::Contended("consume")),
        };
        Ok((consumed, expired))
    }

    /// Holds `amount` units for `ttl_seconds` (no later than the period's
    /// end): one conditional UpdateItem, or with a key one transaction.
    pub async fn reserve(
        &self,
        at: &CounterRef<'_>,
        amount: i64,
        ttl_seconds: i64,
        idempotency: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<(Reserved, Vec<Expired>), StoreError> {
        let (admitted, expired) = self.admit(at, amount, Ask::Reserve { ttl_seconds }, idempotency, now).await?;
        let reserved = match admitted {
            Admitted::Written { counter, id: Some(id), .. } => Reserved::Held { id, counter },
            Admitted::Replayed { counter, id: Some(id) } => Reserved::Replayed { id, counter },
            Admitted::Refused { counter, reason } => Reserved::Refused { counter, reason },
            Admitted::TooMany => Reserved::TooMany,
            // A reserve always names its reservation: never.
            Admitted::Written { .. } | Admitted::Replayed { .. } => return Err(StoreError::Contended("reserve")),
        };
        Ok((reserved, expired))
    }

    /// The admission loop that consume and reserve share.
    async fn admit(
        &self,
        at: &CounterRef<'_>,
        amount: i64,
        ask: Ask,
        idempotency: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<(Admitted, Vec<Expired>), StoreError> {
        let (org, resource) = (at.org, at.resource);
        let mut expired = Vec::new();
        // A reserve's hold ends at this (the period's end, if that comes first).
        let mut expires_at = match ask {
            Ask::Reserve { ttl_seconds } => Some(reservation::expiry(now, ttl_seconds, None)),
            Ask::Consume => None,
        };
        // A hold sent whose answer never came: it is sent again as it was,
        // and recognised on the counter if the first was applied.
        let mut unanswered: Option<ReservationId> = None;
        let mut unsure = false;
        for attempt in 0..MAX_ATTEMPTS {
            let id = expires_at
                .map(|exp| unanswered.take().unwrap_or_else(|| ReservationId::new(org, resource, amount, exp)));
            let hold = id.as_ref().map(|id| Hold { nonce: id.nonce.clone(), amount, expires_at: id.expires_at });
            let update = self.consume_update(org, resource, amount, hold, now);
            let old = match idempotency {
                None => match own(update.send_with(&self.once)).await {
                    Ok(out) => {
                        let counter = items::counter_from_item(out.attributes().unwrap_or(&Item::new()))?;
                        let before = id.is_none().then(|| counter.used - amount);
                        expired.extend(self.sweep_after(org, &counter, now).await);
                        return Ok((Admitted::Written { counter: counter.at(now), before, id }, expired));
                    }
                    Err(err) => match condition_failed_item(&err) {
                        Some(old) => old,
                        // Kept apart: a reserve recognises its own hold on the
                        // counter (below), so one whose answer never came is
                        // sent again as it was. A consume cannot tell its units
                        // from others': it is never sent twice
                        // (`clients::SentOnce`), and its outcome is unknown.
                        None if id.is_some()
                            && crate::clients::may_have_applied(&err)
                            && attempt + 1 < MAX_ATTEMPTS =>
                        {
                            unsure = true;
                            unanswered = id;
                            backoff(attempt).await;
                            continue;
                        }
                        None => {
                            // An earlier attempt of this hold may have been
                            // applied, whatever this one came to.
                            if unsure {
                                outcome_unknown_now();
                            }
                            return Err(err.into());
                        }
                    },
                },
                Some(idem) => {
                    // A reserve's key record names its reservation, for replays.
                    let extra = match &id {
                        Some(id) => Item::from([("reservationId".to_string(), s(id.encode()))]),
                        None => Item::new(),
                    };
                    match self.keyed(org, resource, update.transact(&idem.guard)?, idem, extra, now).await? {
                        Idem::Done => {
                            let counter = self.counter(org, resource, at.kind, at.catalogue, now).await?;
                            expired.extend(self.sweep_after(org, &counter, now).await);
                            return Ok((Admitted::Written { counter: counter.at(now), before: None, id }, expired));
                        }
                        Idem::Replay(record) => {
                            let first = match (&id, record) {
                                (None, _) => None,
                                // Kept apart: a reserve answers with the id its
                                // key's record holds, which is not readable yet
                                // (DynamoDB Local).
                                (Some(_), None) => {
                                    backoff(attempt).await;
                                    continue;
                                }
                                (Some(_), Some(record)) => {
                                    let first = get_s(&record, "reservationId").and_then(ReservationId::decode);
                                    // The key named a consume, not a reserve.
                                    Some(first.ok_or(StoreError::KeyReused)?)
                                }
                            };
                            let counter = self.counter(org, resource, at.kind, at.catalogue, now).await?;
                            return Ok((Admitted::Replayed { counter: counter.at(now), id: first }, expired));
                        }
                        Idem::Conflict => {
                            backoff(attempt).await;
                            continue;
                        }
                        Idem::CounterRefused(old) => old,
                    }
                }
            };
            // A reserve's own reasons for a failed condition, before the consume's.
            if let (Some(id), Some(item), Some(until)) = (&id, &old, expires_at) {
                if !item.contains_key(items::HOLDS) {
                    self.add_maps(org, resource).await?;
                    continue;
                }
                let counter = items::counter_from_item(item)?;
                // Our own hold: an attempt whose answer never came was
                // applied, and this one was its repeat.
                if counter.holds.iter().any(|h| h.nonce == id.nonce) {
                    expired.extend(self.sweep_after(org, &counter, now).await);
                    let id = Some(id.clone());
                    return Ok((Admitted::Written { counter: counter.at(now), before: None, id }, expired));
                }
                unsure = false;
                if !counter.lapsed(now) && !counter.period_ended(now) {
                    if counter.holds.len() >= MAX_OPEN {
                        return Ok((Admitted::TooMany, expired));
                    }
                    // The period ends first: the reservation ends with it.
                    if let Some(end) = counter.period.map(|p| p.end).filter(|end| *end < until) {
                        expires_at = Some(end);
                        continue;
                    }
                }
            }
            match self.after_refusal(at, old, amount, now, &mut expired).await? {
                Next::Retry => continue,
                Next::Refused(counter, reason) => {
                    return Ok((Admitted::Refused { counter: *counter, reason }, expired));
                }
            }
        }
        Err(StoreError::Contended(match ask {
            Ask::Consume => "consume",
            Ask::Reserve { .. } => "reserve",
        }))
    }

    /// Why a write's condition failed on a counter (`old` is the item as it
    /// was, `None` if absent): a refusal, or something [`Store::make_current`]
    /// repairs before the write is tried again.
    async fn after_refusal(
        &self,
        at: &CounterRef<'_>,
        old: Option<Item>,
        amount: i64,
        now: DateTime<Utc>,
        expired: &mut Vec<Expired>,
    ) -> Result<Next, StoreError> {
        let stored = old.as_ref().map(items::counter_from_item).transpose()?;
        let Some(counter) = self.make_current(at, stored, now, expired).await? else {
            return Ok(Next::Retry);
        };
        match counter.refusal(amount, now) {
            Some(reason) => Ok(Next::Refused(Box::new(counter), reason)),
            // The counter changed between the write and now (a plan change
            // raised the limit, say): try again.
            None => Ok(Next::Retry),
        }
    }

    /// The consume write; with a hold, the reserve write.
    fn consume_update(
        &self,
        org: &OrgId,
        resource: &str,
        amount: i64,
        hold: Option<Hold>,
        now: DateTime<Utc>,
    ) -> ConsumeUpdate {
        ConsumeUpdate {
            table: self.table.clone(),
            key: key(items::pk(org), items::counter_sk(resource)),
            amount,
            now: now.timestamp(),
            hold,
        }
    }
}

/// The consume write, as an UpdateItem or as a transaction's Update. With a
/// hold it is the reserve write: the units are held, not used, under the
/// same conditions, and the hold must end with the period.
struct ConsumeUpdate {
    table: String,
    key: Item,
    amount: i64,
    now: i64,
    hold: Option<Hold>,
}

impl ConsumeUpdate {
    const CONDITION: &'static str = "attribute_exists(pk) \
        AND (attribute_not_exists(pend) OR pend > :now) \
        AND (attribute_not_exists(trialEnd) OR trialEnd > :now) \
        AND (attribute_not_exists(gexp) OR gexp > :now) \
        AND (enf = :soft OR attribute_not_exists(lim) OR rem >= :amt) \
        AND used <= :cap";
    /// A hold is written once: an SDK retry of a reserve whose answer was
    /// lost finds it there and changes nothing.
    const HOLD_CONDITION: &'static str = " AND attribute_exists(#holds) AND size(#holds) < :open \
        AND (attribute_not_exists(pend) OR pend >= :exp) AND attribute_not_exists(#holds.#hold)";

    fn expression(&self, sets: &[&str]) -> String {
        let mut expr = UpdateExpr { set: sets.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        match self.hold {
            Some(_) => {
                expr.set.insert(0, "#holds.#hold = :hold".into());
                expr.add = vec!["held :amt".into(), "rem :neg".into(), "hv :one".into()];
            }
            None => expr.add = vec!["used :amt".into(), "rem :neg".into()],
        }
        expr.text()
    }

    fn condition(&self) -> String {
        match self.hold {
            Some(_) => format!("{}{}", Self::CONDITION, Self::HOLD_CONDITION),
            None => Self::CONDITION.to_string(),
        }
    }

    fn names(&self) -> Vec<(&'static str, String)> {
        match &self.hold {
            Some(hold) => vec![("#holds", items::HOLDS.to_string()), ("#hold", hold.nonce.clone())],
            None => Vec::new(),
        }
    }

    fn values(&self) -> Vec<(&'static str, AttributeValue)> {
        let mut values = vec![
            (":amt", n(self.amount)),
            (":neg", n(-self.amount)),
            (":now", n(self.now)),
            (":soft", s(Enforcement::Soft.as_str())),
            // The count never passes MAX_COUNT (amounts are at most MAX_COUNT).
            (":cap", n(MAX_COUNT - self.amount)),
        ];
        if let Some(hold) = &self.hold {
            values.push((":hold", items::hold_value(hold)));
            values.push((":open", n(MAX_OPEN as i64)));
            values.push((":exp", n(hold.expires_at.timestamp())));
            values.push((":one", n(1)));
        }
        values
    }

    async fn send_with(self, client: &Client) -> Result<UpdateItemOutput, SdkError<UpdateItemError>> {
        let req = client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key.clone()))
            .update_expression(self.expression(&[]))
            .condition_expression(self.condition())
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .set_expression_attribute_names(placeholders(self.names()))
            .set_expression_attribute_values(placeholders(self.values()));
        req.send().await
    }

    /// The transaction's Update, guarded against the same key in flight:
    /// the counter remembers the last key for `GUARD_SECONDS` and refuses it
    /// meanwhile. The key's own record (a new item) would suffice on
    /// DynamoDB, whose transactions are serializable; DynamoDB Local lets two
    /// concurrent transactions both see a new item as absent, but does
    /// serialize conditions on an existing one, such as the counter.
    fn transact(self, guard: &str) -> Result<Update, StoreError> {
        const GUARD_SECONDS: i64 = 60;
        let mut values = self.values();
        values.extend([(":idem", s(guard)), (":idemUntil", n(self.now + GUARD_SECONDS))]);
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.key.clone()))
            .update_expression(self.expression(&["lastIdem = :idem", "lastIdemUntil = :idemUntil"]))
            .condition_expression(format!(
                "{} AND (attribute_not_exists(lastIdem) OR lastIdem <> :idem OR lastIdemUntil <= :now)",
                self.condition()
            ))
            .set_expression_attribute_names(placeholders(self.names()))
            .set_expression_attribute_values(placeholders(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        Ok(update.build()?)
    }
}
