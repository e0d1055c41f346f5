//! Bringing a counter up to date, one way for every write: written (from
//! the org's profile, with the maps reservations and grants need), nothing
//! expired on it (the sweep takes expired holds and grants off), and its
//! period current (an ended one is closed first: `rollover`). A write whose
//! condition failed calls [`Store::make_current`] and tries again; the
//! daily job sweeps what no write met.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure, Update};
use chrono::{DateTime, Utc};

use super::attrs::{UpdateExpr, key, n};
use super::items;
use super::sdk::{MAX_ATTEMPTS, applied, backoff, put_if_absent};
use super::{CounterRef, Store, StoreError};
use crate::domain::grant::{Expired, Grant};
use crate::domain::org::OrgId;
use crate::domain::reservation::Hold;
use crate::domain::usage::{Counter, CounterSettings};

/// A change to a counter's grants and holds.
pub(super) struct Change<'a> {
    pub add: Option<&'a Grant>,
    pub remove: Vec<&'a Grant>,
    /// Holds to free (expired ones: a sweep).
    pub free: Vec<&'a Hold>,
    /// For an admin change at this instant: the counter's period must not
    /// have ended (an ended one is closed first, on the grants it had), and
    /// an added grant is pinned to the limit it was checked against.
    pub at: Option<DateTime<Utc>>,
    /// The count must be below this: the change reports a recovery that
    /// holds only while it is (`events::below_threshold`).
    pub used_below: Option<i64>,
}

impl Store {
    /// The one way a write brings its counter up to date. `stored` is the
    /// counter as the write found it (`None`: not written yet). Returns it
    /// when it is current: written, nothing expired on it, its period not
    /// ended. Otherwise makes the first of those so (a sweep returns the
    /// grants it took off into `expired`) and returns `None`: read or write
    /// again.
    pub(super) async fn make_current(
        &self,
        at: &CounterRef<'_>,
        stored: Option<Counter>,
        now: DateTime<Utc>,
        expired: &mut Vec<Expired>,
    ) -> Result<Option<Counter>, StoreError> {
        let Some(counter) = stored else {
            self.materialize(at, now).await?;
            return Ok(None);
        };
        if counter.lapsed(now) {
            // A sweep closes an ended period first, billed on its grants.
            expired.extend(self.sweep(at.org, &counter, now).await?);
            return Ok(None);
        }
        if counter.period_ended(now) {
            self.roll_over(at.org, &counter, now).await?;
            return Ok(None);
        }
        Ok(Some(counter))
    }

    /// A counter brought up to date: read, and if holds or grants have
    /// expired on it, those taken off first (an ended period is closed
    /// before its grants come off). Returns the grants taken off.
    /// A read: an ended period is left for the next write (reads show it at
    /// 0 as it is).
    pub async fn current(
        &self,
        at: &CounterRef<'_>,
        now: DateTime<Utc>,
    ) -> Result<(Counter, Vec<Expired>), StoreError> {
        let read = || self.counter(at.org, at.resource, at.kind, at.catalogue, now);
        let counter = read().await?;
        if !counter.lapsed(now) {
            return Ok((counter, Vec::new()));
        }
        let expired = self.sweep(at.org, &counter, now).await?;
        Ok((read().await?, expired))
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

    /// Writes a counter that does not exist yet, from the org's profile.
    pub(super) async fn materialize(&self, at: &CounterRef<'_>, now: DateTime<Utc>) -> Result<(), StoreError> {
        let CounterRef { org, resource, kind, catalogue } = *at;
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

    /// Gives a counter written before reservations and grants their maps.
    pub(super) async fn add_maps(&self, org: &OrgId, resource: &str) -> Result<(), StoreError> {
        let empty = AttributeValue::M(Default::default());
        self.retrying
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::counter_sk(resource))))
            .update_expression(
                "SET #holds = if_not_exists(#holds, :empty), #grants = if_not_exists(#grants, :empty), \
                 held = if_not_exists(held, :zero), gv = if_not_exists(gv, :zero)",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#holds", items::HOLDS)
            .expression_attribute_names("#grants", items::GRANTS)
            .expression_attribute_values(":empty", empty)
            .expression_attribute_values(":zero", n(0))
            .send()
            .await?;
        Ok(())
    }

    /// The counter's update for a change of its grants and holds, pinned to
    /// what it was computed from (`counter`, as read): the grants and the
    /// limit by `gv`, each hold freed by its still being there.
    pub(super) fn change_update(&self, org: &OrgId, counter: &Counter, change: &Change) -> Result<Update, StoreError> {
        let grants_change = change.add.is_some() || !change.remove.is_empty();
        let granted = change.add.map_or(0, |g| g.amount) - change.remove.iter().map(|g| g.amount).sum::<i64>();
        let freed: i64 = change.free.iter().map(|h| h.amount).sum();
        let limited = counter.limit.is_some();
        let mut set = Vec::new();
        let mut remove = Vec::new();
        let mut condition = vec!["attribute_exists(pk)".to_string()];
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::counter_sk(&counter.resource))));
        if let Some(at) = change.at {
            condition.push("(attribute_not_exists(pend) OR pend > :at)".into());
            update = update.expression_attribute_values(":at", n(at.timestamp()));
            if let (Some(_), Some(limit)) = (change.add, counter.limit) {
                condition.push("lim = :checked".into());
                update = update.expression_attribute_values(":checked", n(limit));
            }
        }
        if let Some(bound) = change.used_below {
            condition.push("used < :usedbelow".into());
            update = update.expression_attribute_values(":usedbelow", n(bound));
        }
        if grants_change {
            let first = counter
                .grants
                .iter()
                .filter(|g| !change.remove.iter().any(|r| r.id == g.id))
                .chain(change.add)
                .map(|g| g.expires_at)
                .min();
            set.push("gv = if_not_exists(gv, :zero) + :one".to_string());
            condition.push("(gv = :gv OR (attribute_not_exists(gv) AND :gv = :zero))".into());
            condition.push("attribute_exists(#grants)".into());
            condition.push(if limited { "attribute_exists(lim)" } else { "attribute_not_exists(lim)" }.into());
            update = update
                .expression_attribute_names("#grants", items::GRANTS)
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":gv", n(counter.grant_version));
            if let Some(grant) = change.add {
                set.push("#grants.#add = :grant".into());
                update = update
                    .expression_attribute_names("#add", &grant.id)
                    .expression_attribute_values(":grant", items::grant_value(grant));
            }
            for (i, grant) in change.remove.iter().enumerate() {
                remove.push(format!("#grants.#g{i}"));
                update = update.expression_attribute_names(format!("#g{i}"), &grant.id);
            }
            match first {
                Some(first) => {
                    set.push("gexp = :gexp".into());
                    update = update.expression_attribute_values(":gexp", n(first.timestamp()));
                }
                None => remove.push("gexp".into()),
            }
            if limited && granted != 0 {
                set.push("lim = lim + :granted".into());
                update = update.expression_attribute_values(":granted", n(granted));
            }
        }
        if !change.free.is_empty() {
            update = update.expression_attribute_names("#holds", items::HOLDS);
            for (i, hold) in change.free.iter().enumerate() {
                remove.push(format!("#holds.#h{i}"));
                condition.push(format!("attribute_exists(#holds.#h{i})"));
                update = update.expression_attribute_names(format!("#h{i}"), &hold.nonce);
            }
            set.push("held = held - :freed".into());
            set.push("hv = if_not_exists(hv, :hzero) + :hone".into());
            update = update
                .expression_attribute_values(":freed", n(freed))
                .expression_attribute_values(":hzero", n(0))
                .expression_attribute_values(":hone", n(1));
        }
        let room = freed + if limited { granted } else { 0 };
        if room != 0 {
            set.push("rem = rem + :room".into());
            update = update.expression_attribute_values(":room", n(room));
        }
        Ok(update
            .update_expression(UpdateExpr { set, remove, ..Default::default() }.text())
            .condition_expression(condition.join(" AND "))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?)
    }

    /// Takes the holds and grants that have expired by `now` off a counter
    /// (`counter` as read): one conditional UpdateItem (one per
    /// `SWEEP_HOLDS` holds: an expression holds at most 4 KB). Returns the
    /// grants this call took off; none that another writer took first.
    pub async fn sweep(&self, org: &OrgId, counter: &Counter, now: DateTime<Utc>) -> Result<Vec<Expired>, StoreError> {
        let mut taken = Vec::new();
        match self.sweep_into(org, counter, now, &mut taken).await {
            // What was taken off is reported even if the rest failed: no
            // later write could (the next one finishes the sweep).
            Err(err) if !taken.is_empty() => {
                tracing::warn!(error = %err, "sweep stopped part way; the next write goes on");
                Ok(taken)
            }
            Err(err) => Err(err),
            Ok(()) => Ok(taken),
        }
    }

    async fn sweep_into(
        &self,
        org: &OrgId,
        counter: &Counter,
        now: DateTime<Utc>,
        taken: &mut Vec<Expired>,
    ) -> Result<(), StoreError> {
        const SWEEP_HOLDS: usize = 40;
        let mut counter = counter.clone();
        for attempt in 0..MAX_ATTEMPTS {
            if !counter.lapsed(now) {
                return Ok(());
            }
            // A period that has ended is closed first, billed on the grants
            // that held through it; then they come off.
            if counter.period_ended(now) {
                self.roll_over(org, &counter, now).await?;
                match self.counter_item(org, &counter.resource).await? {
                    Some(fresh) => counter = fresh,
                    None => return Ok(()),
                }
                continue;
            }
            let change = Change {
                add: None,
                remove: counter.grants.iter().filter(|g| g.expired(now)).collect(),
                free: counter.holds.iter().filter(|h| h.expired(now)).take(SWEEP_HOLDS).collect(),
                at: None,
                used_below: None,
            };
            let update = self.change_update(org, &counter, &change)?;
            let result = self
                .once
                .update_item()
                .table_name(&self.table)
                .set_key(Some(update.key().clone()))
                .update_expression(update.update_expression())
                .set_condition_expression(update.condition_expression().map(str::to_string))
                .set_expression_attribute_names(update.expression_attribute_names().cloned())
                .set_expression_attribute_values(update.expression_attribute_values().cloned())
                .send()
                .await;
            if applied(result)? {
                let freed: Vec<String> = change.free.iter().map(|h| h.nonce.clone()).collect();
                if !change.remove.is_empty() {
                    let gone: i64 = change.remove.iter().map(|g| g.amount).sum();
                    let limit = counter.limit.map(|l| l - gone);
                    taken.extend(change.remove.iter().map(|g| Expired {
                        resource: counter.resource.clone(),
                        grant: (*g).clone(),
                        limit,
                    }));
                    counter.limit = limit;
                    counter.grants.retain(|g| !g.expired(now));
                    counter.grant_version += 1;
                }
                counter.holds.retain(|h| !freed.contains(&h.nonce));
                continue;
            }
            match self.counter_item(org, &counter.resource).await? {
                Some(fresh) => counter = fresh,
                None => return Ok(()),
            }
            backoff(attempt).await;
        }
        Err(StoreError::Contended("sweep"))
    }
}
