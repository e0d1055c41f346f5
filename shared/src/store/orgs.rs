//! Organizations: the one-Query read of an org's state, and the create or
//! update that rewrites its profile and every counter whose settings change,
//! with its audit entries, in one transaction.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::attrs::{Item, UpdateExpr, get_s, key, n, s};
use super::items;
use super::sdk::get_consistent;
use super::sdk::put_if_absent_in;
use super::sdk::{MAX_ATTEMPTS, Query, SortKeys, Transacted, backoff, own, transact};
use super::{Store, StoreError};
use crate::domain::MAX_COUNT;
use crate::domain::audit;
use crate::domain::catalogue::Catalogue;
use crate::domain::events::{Pending, PlanChanged, QuotaRecovered, RecoveryCause, below_threshold, new_event_id};
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::org::{OrgId, OrgPatch, OrgProfile};
use crate::domain::period::Period;
use crate::domain::state::OrgState;
use crate::domain::usage::{Counter, CounterSettings};

/// What a create or update of an org came to.
#[derive(Debug)]
pub enum PutOrg {
    /// Written now; `previous` is `None` when it was created.
    Written { profile: OrgProfile, previous: Option<Box<OrgProfile>> },
    /// A retry with the same key: the profile as it stands, and whether the
    /// first request created the org.
    Replayed { profile: OrgProfile, created: bool },
}

/// An org's state from its `STATE#` items, in any order.
pub(crate) fn state_from_items<'a>(found: impl IntoIterator<Item = &'a Item>) -> Result<Option<OrgState>, StoreError> {
    let mut profile = None;
    let mut trial_notified_at = None;
    let mut trial_notice = None;
    let mut counters = BTreeMap::new();
    let mut outbox = Vec::new();
    for item in found {
        if items::is_profile(item) {
            profile = Some(items::profile_from_item(item)?);
            trial_notified_at = get_s(item, "trialNotifiedAt").map(str::to_string);
            trial_notice = super::claim::TRIAL.read(item);
        } else if items::is_counter(item) {
            let counter = items::counter_from_item(item)?;
            counters.insert(counter.resource.clone(), counter);
        } else if let Some(pending) = super::outbox::pending_from_item(item) {
            outbox.push(pending);
        }
    }
    Ok(profile.map(|(profile, version)| OrgState {
        profile,
        version,
        counters,
        trial_notified_at,
        trial_notice,
        outbox,
    }))
}

impl Store {
    /// The org's profile and all its counters, in one Query.
    pub async fn org_state(&self, org: &OrgId) -> Result<Option<OrgState>, StoreError> {
        let query =
            Query { consistent: true, ..Query::new(items::pk(org), SortKeys::Prefix(items::STATE_PREFIX.into())) };
        state_from_items(&query.items(&self.retrying, &self.table).await?)
    }

    /// The org's profile alone (one consistent GetItem).
    pub async fn profile(&self, org: &OrgId) -> Result<Option<OrgProfile>, StoreError> {
        let item =
            get_consistent(&self.retrying, &self.table, key(items::pk(org), items::PROFILE_SK.to_string())).await?;
        Ok(item.as_ref().map(items::profile_from_item).transpose()?.map(|(p, _)| p))
    }

    // ---- orgs --------------------------------------------------------------

    /// Creates or updates an org: profile, every counter whose settings
    /// change, the audit entries and the `PlanChanged` it owes (to the
    /// outbox), in one transaction pinned to the profile version it was
    /// computed from. With `idempotency`, the key's record is in the same
    /// transaction, and a retry with the key writes nothing and answers as
    /// the first did (created or updated).
    pub async fn put_org(
        &self,
        org: &OrgId,
        patch: &OrgPatch,
        actor: &str,
        idempotency: Option<&IdempotencyKey>,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> Result<PutOrg, StoreError> {
        let key_sk = idempotency.map(|idem| items::idempotency_sk("ADMIN", &idem.key));
        for attempt in 0..MAX_ATTEMPTS {
            let state = self.org_state(org).await?;
            if let (Some(idem), Some(sk)) = (idempotency, &key_sk)
                && let Some(record) = self.live_key_record(org, sk.clone(), now).await?
            {
                if get_s(&record, "fingerprint") != Some(idem.fingerprint.as_str()) {
                    return Err(StoreError::KeyReused);
                }
                let profile = state.map(|s| s.profile).ok_or(StoreError::Contended("org replay"))?;
                return Ok(PutOrg::Replayed { profile, created: get_s(&record, "created") == Some("true") });
            }
            // A period that has ended is closed for billing under the plan
            // and limit it ran under, before any of them change.
            if let Some(state) = &state {
                let ended: Vec<&Counter> = state.counters.values().filter(|c| c.period_ended(now)).collect();
                if !ended.is_empty() {
                    for counter in ended {
                        self.roll_over(org, counter, now).await?;
                    }
                    continue;
                }
            }
            let existing = state.as_ref().map(|s| &s.profile);
            let profile = patch.apply(org, existing, catalogue, now);
            let version = state.as_ref().map_or(0, |s| s.version);

            let item = items::profile_to_item(&profile, version + 1);
            let profile_write = match &state {
                None => {
                    let put = Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(pk)");
                    TransactWriteItem::builder().put(put.build()?).build()
                }
                // An update of the profile's own fields: the trial notice's
                // claim and mark on the same item stay as they are, unless
                // the trial end moves (a new trial owes a new notice).
                Some(st) => {
                    let rearm = st.profile.trial_ends_at != profile.trial_ends_at;
                    let update = items::profile_update(&self.table, item, version, rearm)?;
                    TransactWriteItem::builder().update(update).build()
                }
            };
            let mut writes = vec![profile_write];

            for (resource, def) in &catalogue.resources {
                let Some(settings) = CounterSettings::of(&profile, resource, catalogue) else {
                    continue;
                };
                let current = state.as_ref().and_then(|s| s.counters.get(resource));
                match current {
                    None => {
                        let fresh = Counter::fresh(org, resource, def.kind, &settings, now);
                        writes.push(put_if_absent_in(&self.table, items::counter_to_item(&fresh))?);
                    }
                    Some(counter) => {
                        // A new plan or limit that takes usage back below a
                        // threshold it had reached: the "resolved" half, said
                        // only while the count stays below it.
                        let before = counter.at(now);
                        let granted: i64 = before.grants.iter().map(|g| g.amount).sum();
                        let after = Counter {
                            plan: settings.plan.clone(),
                            limit: settings.limit.map(|l| l + granted),
                            enforcement: settings.enforcement,
                            trial_ends_at: settings.trial_ends_at,
                            ..before.clone()
                        };
                        let recovered = QuotaRecovered::between(&before, &after, RecoveryCause::PlanChange, now);
                        let used_below = recovered.as_ref().map(|r| below_threshold(r.threshold, after.limit));
                        if let Some(update) = self.settings_update(org, counter, &settings, used_below, now)? {
                            writes.push(TransactWriteItem::builder().update(update).build());
                            if let Some(recovered) = &recovered {
                                writes.push(self.outbox_put(org, &Pending::of(recovered), now)?);
                            }
                        }
                    }
                }
            }
            for entry in audit::org_entries(existing, &profile, actor, now) {
                writes.push(self.audit_put(org, &entry)?);
            }
            if let Some(before) = existing.filter(|b| b.plan != profile.plan) {
                let event = PlanChanged {
                    event_id: new_event_id(now),
                    org_id: org.clone(),
                    from: before.plan.clone(),
                    to: profile.plan.clone(),
                    actor: actor.to_string(),
                    at: now,
                };
                writes.push(self.outbox_put(org, &Pending::of(&event), now)?);
            }
            if let (Some(idem), Some(sk)) = (idempotency, &key_sk) {
                let created =
                    Item::from([("created".to_string(), s(if existing.is_none() { "true" } else { "false" }))]);
                let put = self.key_record_put(org, sk.clone(), idem, created, now)?;
                writes.push(TransactWriteItem::builder().put(put).build());
            }

            // Refused: the profile or a counter changed since it was read
            // (or the key was used meanwhile).
            match own(transact(&self.once, "org update", writes)).await? {
                Transacted::Committed => {
                    return Ok(PutOrg::Written { profile, previous: existing.cloned().map(Box::new) });
                }
                Transacted::Refused(_) => backoff(attempt).await,
            }
        }
        Err(StoreError::Contended("org update"))
    }

    /// The update that brings a counter to new settings, if any differ.
    fn settings_update(
        &self,
        org: &OrgId,
        counter: &Counter,
        to: &CounterSettings,
        used_below: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Option<Update>, StoreError> {
        let same = counter.plan == to.plan
            && counter.plan_limit() == to.limit
            && counter.enforcement == to.enforcement
            && counter.locale == to.locale
            && counter.timezone == to.timezone
            && counter.anchor_day == to.anchor_day
            && counter.trial_ends_at.map(|t| t.timestamp()) == to.trial_ends_at.map(|t| t.timestamp());
        if same {
            return Ok(None);
        }
        // `plan` is a reserved word; names go through placeholders.
        let mut set = vec!["#plan = :plan", "enf = :enf", "#locale = :locale", "#tz = :tz", "#anchor = :anchor"];
        let mut remove = vec![];
        let mut condition = vec!["attribute_exists(pk)"];
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::counter_sk(&counter.resource))));
        if let Some(bound) = used_below {
            condition.push("used < :usedbelow");
            update = update.expression_attribute_values(":usedbelow", n(bound));
        }
        let mut update = update
            .expression_attribute_names("#plan", "plan")
            .expression_attribute_names("#locale", "locale")
            .expression_attribute_names("#tz", "tz")
            .expression_attribute_names("#anchor", "anchor")
            .expression_attribute_values(":plan", s(&to.plan))
            .expression_attribute_values(":enf", s(to.enforcement.as_str()))
            .expression_attribute_values(":locale", s(to.locale.as_str()))
            .expression_attribute_values(":tz", s(to.timezone.name()))
            .expression_attribute_values(":anchor", n(i64::from(to.anchor_day)));
        // The effective limit keeps the counter's grants; `rem` moves by as
        // much as it does, pinned to the limit (and held units) it was read with.
        let granted: i64 = counter.grants.iter().map(|g| g.amount).sum();
        if to.limit.is_some_and(|l| l.saturating_add(granted) > MAX_COUNT) {
            return Err(StoreError::LimitTooLarge);
        }
        match (to.limit.map(|l| l + granted), counter.limit) {
            (Some(limit), Some(old)) => {
                set.extend(["lim = :lim", "rem = rem + :delta"]);
                condition.push("lim = :oldlim");
                update = update
                    .expression_attribute_values(":lim", n(limit))
                    .expression_attribute_values(":delta", n(limit - old))
                    .expression_attribute_values(":oldlim", n(old));
            }
            (Some(limit), None) => {
                set.extend(["lim = :lim", "rem = :room - used"]);
                condition.push("attribute_not_exists(lim) AND (held = :held OR attribute_not_exists(held))");
                update = update
                    .expression_attribute_values(":lim", n(limit))
                    .expression_attribute_values(":room", n(limit - counter.stored_held))
                    .expression_attribute_values(":held", n(counter.stored_held));
            }
            (None, _) => remove.push("lim"),
        }
        if counter.limit.is_none() || to.limit.is_none() {
            // The grants an unlimited counter keeps count once it has a limit.
            condition.push("(gv = :gv OR attribute_not_exists(gv))");
            update = update.expression_attribute_values(":gv", n(counter.grant_version));
        }
        match to.trial_ends_at {
            Some(t) => {
                set.push("trialEnd = :trial");
                update = update.expression_attribute_values(":trial", n(t.timestamp()));
            }
            None => remove.push("trialEnd"),
        }
        // A new anchor or zone moves the current period's end to the new
        // anchor's next boundary; its start and count stay (periods only move
        // forward). A period that has ended is left for the rollover, which
        // closes it for billing first.
        let moved = counter.timezone != to.timezone || counter.anchor_day != to.anchor_day;
        if let Some(period) = counter.period.filter(|_| moved && !counter.period_ended(now)) {
            let end = Period::containing(now.max(period.start), to.anchor_day, to.timezone).end;
            set.push("pend = :pe");
            condition.push("pend = :oldpe");
            update = update
                .expression_attribute_values(":pe", n(end.timestamp()))
                .expression_attribute_values(":oldpe", n(period.end.timestamp()));
        }
        let expression = UpdateExpr {
            set: set.into_iter().map(str::to_string).collect(),
            remove: remove.into_iter().map(str::to_string).collect(),
            ..Default::default()
        };
        Ok(Some(update.update_expression(expression.text()).condition_expression(condition.join(" AND ")).build()?))
    }
}
