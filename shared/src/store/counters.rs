//! Counters: reads, release, and the compare-and-set of a count (set and
//! reset). The consume and the reserve are in `admit`.

use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::attrs::{Item, UpdateExpr, get_n, get_s, key, n};
use super::items;
use super::sdk::{MAX_ATTEMPTS, Transacted, backoff, condition_failed_item, get_consistent, own, transact};
use super::{CounterRef, Store, StoreError};
use crate::domain::audit::AuditEntry;
use crate::domain::catalogue::{Catalogue, ResourceKind};
use crate::domain::grant::Expired;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::org::{OrgId, OrgProfile};
use crate::domain::usage::{Counter, CounterSettings};

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

    /// Gives back `amount` units of a `total` resource; never below 0.
    /// Returns the counter as it then is (holds and grants that had expired
    /// taken off, the grants among them returned).
    pub async fn release(
        &self,
        at: &CounterRef<'_>,
        amount: i64,
        now: DateTime<Utc>,
    ) -> Result<(Counter, Vec<Expired>), StoreError> {
        let (org, resource) = (at.org, at.resource);
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
                self.materialize(at, now).await?;
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
    pub async fn set_usage(
        &self,
        at: &CounterRef<'_>,
        value: i64,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(Counter, Counter, Vec<Expired>), StoreError> {
        let resource = at.resource;
        let (before, after, expired, _) = self
            .replace_count(at, None, now, |before| CountChange {
                value,
                rearm: false,
                entry: AuditEntry::usage_set(now, actor, resource, before.used, value),
                events: Vec::new(),
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
    pub async fn replace_count(
        &self,
        at: &CounterRef<'_>,
        idempotency: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        change: impl Fn(&Counter) -> CountChange,
    ) -> Result<(Counter, Counter, Vec<Expired>, bool), StoreError> {
        let CounterRef { org, resource, kind, catalogue } = *at;
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
            let stored = self.counter_item(org, resource).await?;
            let Some(before) = self.make_current(at, stored, now, &mut expired).await? else {
                continue;
            };
            let CountChange { value, rearm, entry, events } = change(&before);
            let mut expression =
                UpdateExpr { set: vec!["used = :v".into(), "rem = rem + :delta".into()], ..Default::default() };
            if rearm {
                expression.remove =
                    ["notified", "ntop", "noticeLease", "noticeFor", "noticeSending"].map(str::to_string).into();
            }
            let mut update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(items::pk(org), items::counter_sk(resource))))
                .update_expression(expression.text())
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
            for event in &events {
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
/// thresholds are re-armed, the audit entry, and the events it owes (to the
/// outbox, in the same transaction).
pub struct CountChange {
    pub value: i64,
    pub rearm: bool,
    pub entry: AuditEntry,
    pub events: Vec<crate::domain::events::Pending>,
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
