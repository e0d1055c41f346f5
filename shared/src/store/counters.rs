//! Counters: reads, the consume (one conditional UpdateItem), release, and
//! the compare-and-set of a count (set and reset).

use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use chrono::{DateTime, Utc};

use super::attrs::{Item, get_n, get_s, key, n, s};
use super::idempotency::Idem;
use super::items;
use super::sdk::get_consistent;
use super::sdk::put_if_absent;
use super::sdk::{MAX_ATTEMPTS, Transacted, backoff, own, transact};
use super::{Store, StoreError};
use crate::domain::audit::AuditEntry;
use crate::domain::catalogue::{Catalogue, Enforcement, ResourceKind};
use crate::domain::decision::Consumed;
use crate::domain::grant::Expired;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::org::{OrgId, OrgProfile};
use crate::domain::reservation::{Hold, MAX_OPEN};
use crate::domain::usage::Reason;
use crate::domain::usage::{Counter, CounterSettings};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

/// What a failed consume condition meant.
pub(super) enum Next {
    Retry,
    Refused(Box<Counter>, Reason),
}

impl Store {
    /// One counter: a GetItem; for a counter not written yet, what it would be.
    pub async fn counter(
        &self,
        org: &OrgId,
        resource: &str,
        kind: ResourceKind,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> Result<Counter, StoreError> {
        match self.counter_item(org, resource).await? {
            Some(counter) => Ok(counter),
            None => {
                let state = self.org_state(org).await?.ok_or(StoreError::OrgNotFound)?;
                Ok(unwritten_counter(&state.profile, resource, kind, catalogue, now)?)
            }
        }
    }

    /// A counter as stored (consistent read), if it has been written.
    pub(super) async fn counter_item(&self, org: &OrgId, resource: &str) -> Result<Option<Counter>, StoreError> {
        let item =
            get_consistent(&self.retrying, &self.table, key(items::pk(org), items::counter_sk(resource))).await?;
        Ok(item.as_ref().map(items::counter_from_item).transpose()?)
    }

    // ---- usage -------------------------------------------------------------

    /// Records `amount` units if the counter's limit, trial and period allow:
    /// one conditional UpdateItem (with an idempotency key: one transaction
    /// with the key's record). Also returns the grants found expired and
    /// taken off on the way.
    #[allow(clippy::too_many_arguments)]
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
        let mut expired = Vec::new();
        for attempt in 0..MAX_ATTEMPTS {
            let update = self.consume_update(org, resource, amount, None, now);
            let old = match idempotency {
                None => {
                    let result = own(update.send_with(&self.once)).await;
                    match result {
                        Ok(out) => {
                            let counter = items::counter_from_item(out.attributes().unwrap_or(&Item::new()))?;
                            let before = Some(counter.used - amount);
                            expired.extend(self.sweep_after(org, &counter, now).await);
                            return Ok((Consumed::Admitted { counter: counter.at(now), before }, expired));
                        }
                        Err(err) => match condition_failed_item(&err) {
                            Some(old) => old,
                            None => return Err(err.into()),
                        },
                    }
                }
                Some(idem) => match self.keyed(org, resource, update, idem, Item::new(), now).await? {
                    Idem::Done => {
                        let counter = self.counter(org, resource, kind, catalogue, now).await?;
                        expired.extend(self.sweep_after(org, &counter, now).await);
                        return Ok((Consumed::Admitted { counter: counter.at(now), before: None }, expired));
                    }
                    Idem::Replay(_) => {
                        let counter = self.counter(org, resource, kind, catalogue, now).await?;
                        return Ok((Consumed::Replayed { counter: counter.at(now) }, expired));
                    }
                    Idem::Conflict => {
                        backoff(attempt).await;
                        continue;
                    }
                    Idem::CounterRefused(old) => old,
                },
            };
            match self.after_refusal(org, resource, kind, old, amount, catalogue, now, &mut expired).await? {
                Next::Retry => continue,
                Next::Refused(counter, reason) => {
                    return Ok((Consumed::Refused { counter: *counter, reason }, expired));
                }
            }
        }
        Err(StoreError::Contended("consume"))
    }

    /// A counter brought up to date: read, and if holds or grants have
    /// expired on it, those taken off first (an ended period is closed
    /// before its grants come off). Returns the grants taken off.
    pub async fn current(
        &self,
        org: &OrgId,
        resource: &str,
        kind: ResourceKind,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> Result<(Counter, Vec<Expired>), StoreError> {
        let counter = self.counter(org, resource, kind, catalogue, now).await?;
        if !counter.lapsed(now) {
            return Ok((counter, Vec::new()));
        }
        let expired = self.sweep(org, &counter, now).await?;
        Ok((self.counter(org, resource, kind, catalogue, now).await?, expired))
    }

    /// After a write that went through: takes off what has expired on the
    /// counter, if anything has. The write stands whatever this comes to.
    pub(super) async fn sweep_after(&self, org: &OrgId, counter: &Counter, now: DateTime<Utc>) -> Vec<Expired> {
        if !counter.lapsed(now) {
            return Vec::new();
        }
        self.sweep(org, counter, now).await.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "expired holds and grants not taken off; the next write will");
            Vec::new()
        })
    }

    /// The consume write; with a hold, the reserve write (see `reservations`).
    pub(super) fn consume_update(
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

    /// Works out why a write's condition failed on a counter (`old` is the
    /// item as it was, `None` if absent) and repairs what is repairable: a
    /// counter not written yet, holds or grants that have expired, a period
    /// that has ended.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn after_refusal(
        &self,
        org: &OrgId,
        resource: &str,
        kind: ResourceKind,
        old: Option<Item>,
        amount: i64,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
        expired: &mut Vec<Expired>,
    ) -> Result<Next, StoreError> {
        let Some(old) = old else {
            self.materialize(org, resource, kind, catalogue, now).await?;
            return Ok(Next::Retry);
        };
        let counter = items::counter_from_item(&old)?;
        if counter.lapsed(now) {
            expired.extend(self.sweep(org, &counter, now).await?);
            return Ok(Next::Retry);
        }
        if counter.period_ended(now) {
            self.roll_over(org, &counter, now).await?;
            return Ok(Next::Retry);
        }
        match counter.refusal(amount, now) {
            Some(reason) => Ok(Next::Refused(Box::new(counter), reason)),
            // The counter changed between the write and now (a plan change
            // raised the limit, say): try again.
            None => Ok(Next::Retry),
        }
    }

    /// Writes a counter that does not exist yet, from the org's profile.
    pub(super) async fn materialize(
        &self,
        org: &OrgId,
        resource: &str,
        kind: ResourceKind,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let state = self.org_state(org).await?.ok_or(StoreError::OrgNotFound)?;
        if state.counters.contains_key(resource) {
            return Ok(());
        }
        let settings = CounterSettings::of(&state.profile, resource, catalogue).ok_or_else(|| {
            StoreError::NotInCatalogue { plan: state.profile.plan.clone(), resource: resource.to_string() }
        })?;
        let fresh = Counter::fresh(org, resource, kind, &settings, now);
        // Not applied: someone else wrote it first, which is as good.
        put_if_absent(&self.retrying, &self.table, items::counter_to_item(&fresh)).await.map(|_| ())
    }

    /// Gives back `amount` units of a `total` resource; never below 0.
    /// Returns the counter as it then is (holds and grants that had expired
    /// taken off, the grants among them returned).
    pub async fn release(
        &self,
        org: &OrgId,
        resource: &str,
        kind: ResourceKind,
        amount: i64,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> Result<(Counter, Vec<Expired>), StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let counter_key = key(items::pk(org), items::counter_sk(resource));
            let release = self
                .once
                .update_item()
                .table_name(&self.table)
                .set_key(Some(counter_key.clone()))
                .update_expression("ADD used :neg, rem :amt")
                .condition_expression("attribute_exists(pk) AND used >= :amt")
                .expression_attribute_values(":neg", n(-amount))
                .expression_attribute_values(":amt", n(amount))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send();
            let old = match own(release).await {
                Ok(out) => {
                    let counter = items::counter_from_item(out.attributes().unwrap_or(&Item::new()))?;
                    let expired = self.sweep_after(org, &counter, now).await;
                    return Ok((counter.at(now), expired));
                }
                Err(err) => match condition_failed_item(&err) {
                    Some(old) => old,
                    None => return Err(err.into()),
                },
            };
            let Some(old) = old else {
                self.materialize(org, resource, kind, catalogue, now).await?;
                continue;
            };
            // Fewer in use than released: clamp to 0, if nobody moved it since.
            let clamp = self
                .once
                .update_item()
                .table_name(&self.table)
                .set_key(Some(counter_key))
                .update_expression("SET used = :zero, rem = rem + used")
                .condition_expression("used = :old")
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":old", n(get_n(&old, "used").unwrap_or_default()))
                .return_values(ReturnValue::AllNew)
                .send();
            match own(clamp).await {
                Ok(out) => {
                    let counter = items::counter_from_item(out.attributes().unwrap_or(&Item::new()))?;
                    let expired = self.sweep_after(org, &counter, now).await;
                    return Ok((counter.at(now), expired));
                }
                Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Err(StoreError::Contended("release"))
    }

    /// Sets the current count (reconciliation), audited in the same
    /// transaction. Returns the counter before and after, and the grants
    /// found expired (and taken off) on the way.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_usage(
        &self,
        org: &OrgId,
        resource: &str,
        kind: ResourceKind,
        value: i64,
        actor: &str,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> Result<(Counter, Counter, Vec<Expired>), StoreError> {
        let (before, after, expired, _) = self
            .replace_count(org, resource, kind, catalogue, now, None, |before| CountChange {
                value,
                rearm: false,
                entry: AuditEntry::usage_set(now, actor, resource, before.used, value),
                event: None,
            })
            .await?;
        Ok((before, after, expired))
    }

    /// Compare-and-set of a counter's count: reads it, brings it up to date
    /// (expired holds and grants off, an ended period closed), then writes
    /// the new count and the audit entry in one transaction that holds only
    /// if the count (and period) are still what was read. `change` gives the
    /// new count, whether to re-arm thresholds, the audit entry and the
    /// event for the outbox. So the counter after is what the table holds:
    /// its answer, and the claim of a threshold notice it owes, are computed
    /// on the limit in force. With `idempotency`, the key's record (one per
    /// resource) is written in the same transaction, and a retry with the
    /// key changes nothing: it answers the counter as it stands, and `true`.
    #[allow(clippy::too_many_arguments)]
    pub async fn replace_count(
        &self,
        org: &OrgId,
        resource: &str,
        kind: ResourceKind,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
        idempotency: Option<&IdempotencyKey>,
        change: impl Fn(&Counter) -> CountChange,
    ) -> Result<(Counter, Counter, Vec<Expired>, bool), StoreError> {
        let mut expired = Vec::new();
        // A key names one change of each resource it is used on.
        let key_sk = idempotency.map(|idem| items::idempotency_sk("ADMIN", &format!("{}#{resource}", idem.key)));
        for attempt in 0..MAX_ATTEMPTS {
            if let (Some(idem), Some(sk)) = (idempotency, &key_sk)
                && let Some(record) = self.live_key_record(org, sk.clone(), now).await?
            {
                if get_s(&record, "fingerprint") != Some(idem.fingerprint.as_str()) {
                    return Err(StoreError::KeyReused);
                }
                let current = self.counter(org, resource, kind, catalogue, now).await?;
                return Ok((current.clone(), current, expired, true));
            }
            let Some(before) = self.counter_item(org, resource).await? else {
                self.materialize(org, resource, kind, catalogue, now).await?;
                continue;
            };
            if before.lapsed(now) {
                expired.extend(self.sweep(org, &before, now).await?);
                continue;
            }
            if before.period_ended(now) {
                self.roll_over(org, &before, now).await?;
                continue;
            }
            let CountChange { value, rearm, entry, event } = change(&before);
            let mut expression = "SET used = :v, rem = rem + :delta".to_string();
            if rearm {
                expression.push_str(" REMOVE notified, ntop, noticeLease, noticeFor, noticeSending");
            }
            let mut update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(items::pk(org), items::counter_sk(resource))))
                .update_expression(expression)
                .condition_expression("used = :before")
                .expression_attribute_values(":v", n(value))
                .expression_attribute_values(":delta", n(before.used - value))
                .expression_attribute_values(":before", n(before.used));
            if let Some(p) = before.period {
                update = update
                    .condition_expression("used = :before AND pend = :pe")
                    .expression_attribute_values(":pe", n(p.end.timestamp()));
            }
            let mut writes =
                vec![TransactWriteItem::builder().update(update.build()?).build(), self.audit_put(org, &entry)?];
            if let Some(event) = &event {
                writes.push(self.outbox_put(org, event, now)?);
            }
            if let (Some(idem), Some(sk)) = (idempotency, &key_sk) {
                let put = self.key_record_put(org, sk.clone(), idem, Item::new(), now)?;
                writes.push(TransactWriteItem::builder().put(put).build());
            }
            // Refused: the count moved since it was read; read it again.
            match own(transact(&self.once, "count update", writes)).await? {
                Transacted::Committed => {
                    let mut after = before.clone();
                    after.used = value;
                    if rearm {
                        after.notified.clear();
                    }
                    return Ok((before, after, expired, false));
                }
                // The count moved since it was read, or the key was used
                // meanwhile: read again.
                Transacted::Refused(_) => backoff(attempt).await,
            }
        }
        Err(StoreError::Contended("count update"))
    }
}

/// What a compare-and-set of a count writes: the new count, whether the
/// thresholds are re-armed, the audit entry, and the event it owes (to the
/// outbox, in the same transaction).
pub struct CountChange {
    pub value: i64,
    pub rearm: bool,
    pub entry: AuditEntry,
    pub event: Option<crate::domain::events::Pending>,
}

/// The counter a resource has before anything was written to it.
fn unwritten_counter(
    profile: &OrgProfile,
    resource: &str,
    kind: ResourceKind,
    catalogue: &Catalogue,
    now: DateTime<Utc>,
) -> Result<Counter, StoreError> {
    let settings = CounterSettings::of(profile, resource, catalogue)
        .ok_or_else(|| StoreError::NotInCatalogue { plan: profile.plan.clone(), resource: resource.to_string() })?;
    Ok(Counter::fresh(&profile.org_id, resource, kind, &settings, now))
}

/// The consume write, as an UpdateItem or as a transaction's Update. With a
/// hold it is the reserve write: the units are held, not used, under the
/// same conditions, and the hold must end with the period.
pub(super) struct ConsumeUpdate {
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
        let mut sets = sets.to_vec();
        let add = match self.hold {
            Some(_) => {
                sets.insert(0, "#holds.#hold = :hold");
                "ADD held :amt, rem :neg, hv :one"
            }
            None => "ADD used :amt, rem :neg",
        };
        if sets.is_empty() { add.to_string() } else { format!("{add} SET {}", sets.join(", ")) }
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
            (":cap", n(crate::domain::MAX_COUNT - self.amount)),
        ];
        if let Some(hold) = &self.hold {
            values.push((":hold", items::hold_value(hold)));
            values.push((":open", n(MAX_OPEN as i64)));
            values.push((":exp", n(hold.expires_at.timestamp())));
            values.push((":one", n(1)));
        }
        values
    }

    pub(super) async fn send_with(
        self,
        client: &Client,
    ) -> Result<aws_sdk_dynamodb::operation::update_item::UpdateItemOutput, SdkError<UpdateItemError>> {
        let mut req = client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key.clone()))
            .update_expression(self.expression(&[]))
            .condition_expression(self.condition())
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, value) in self.names() {
            req = req.expression_attribute_names(name, value);
        }
        for (name, value) in self.values() {
            req = req.expression_attribute_values(name, value);
        }
        req.send().await
    }

    /// The transaction's Update, guarded against the same key in flight:
    /// the counter remembers the last key for `GUARD_SECONDS` and refuses it
    /// meanwhile. The key's own record (a new item) would suffice on
    /// DynamoDB, whose transactions are serializable; DynamoDB Local lets two
    /// concurrent transactions both see a new item as absent, but does
    /// serialize conditions on an existing one, such as the counter.
    pub(super) fn transact(self, guard: &str) -> Result<Update, StoreError> {
        const GUARD_SECONDS: i64 = 60;
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.key.clone()))
            .update_expression(self.expression(&["lastIdem = :idem", "lastIdemUntil = :idemUntil"]))
            .condition_expression(format!(
                "{} AND (attribute_not_exists(lastIdem) OR lastIdem <> :idem OR lastIdemUntil <= :now)",
                self.condition()
            ))
            .expression_attribute_values(":idem", s(guard))
            .expression_attribute_values(":idemUntil", n(self.now + GUARD_SECONDS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, value) in self.names() {
            update = update.expression_attribute_names(name, value);
        }
        for (name, value) in self.values() {
            update = update.expression_attribute_values(name, value);
        }
        Ok(update.build()?)
    }
}

/// For a failed conditional UpdateItem: `Some(old item or None)`; for any
/// other error: `None`.
pub(super) fn condition_failed_item(err: &SdkError<UpdateItemError>) -> Option<Option<Item>> {
    match err.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(e)) => Some(e.item().cloned()),
        _ => None,
    }
}
