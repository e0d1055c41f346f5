//! The DynamoDB store. Every state change is one conditional write, or one
//! transaction where two items must change together; nothing reads a value
//! and writes back a value computed from it without a condition pinning it.

mod error;
pub mod items;
pub mod job;
pub mod notices;
pub mod schema;
mod sdk;

pub use error::{BoxError, StoreError, root_cause};
use sdk::{MAX_ATTEMPTS, Transacted, applied, backoff, reason, transact};

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::{BuildHasher, Hasher};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::domain::catalogue::{Catalogue, Enforcement, ResourceKind};
use crate::domain::org::{OrgId, OrgPatch, OrgProfile};
use crate::domain::period::Period;
use crate::domain::rfc3339;
use crate::domain::usage::{Counter, Reason};
use items::{CounterSettings, Item, get_n, get_s, key, n, s};

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_TTL_HOURS: i64 = 24;

/// An org's profile and every counter it has: what one Query returns.
#[derive(Debug, Clone)]
pub struct OrgState {
    pub profile: OrgProfile,
    pub version: i64,
    pub counters: BTreeMap<String, Counter>,
    /// When the trial-ended email went out, if it did.
    pub trial_notified_at: Option<String>,
    /// The trial notice's claim, while one is being sent.
    pub trial_notice: Option<crate::domain::notice::InFlight>,
}

impl OrgState {
    /// Builds the state from an org's `STATE#` items, in any order.
    pub fn from_items<'a>(found: impl IntoIterator<Item = &'a Item>) -> Result<Option<OrgState>, StoreError> {
        let mut profile = None;
        let mut trial_notified_at = None;
        let mut trial_notice = None;
        let mut counters = BTreeMap::new();
        for item in found {
            if items::is_profile(item) {
                profile = Some(items::profile_from_item(item)?);
                trial_notified_at = get_s(item, "trialNotifiedAt").map(str::to_string);
                trial_notice = notices::TRIAL.read(item);
            } else if items::is_counter(item) {
                let counter = items::counter_from_item(item)?;
                counters.insert(counter.resource.clone(), counter);
            }
        }
        Ok(profile.map(|(profile, version)| OrgState { profile, version, counters, trial_notified_at, trial_notice }))
    }
}

/// A checked `Idempotency-Key` and the fingerprint of the request it names.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    key: String,
    fingerprint: String,
    /// Short digest of the key, kept on the counter while it is in flight.
    guard: String,
}

impl IdempotencyKey {
    /// 1–255 visible ASCII characters.
    pub fn parse(key: &str, resource: &str, amount: i64) -> Option<Self> {
        let ok = (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| {
            let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
            let fingerprint = hex(&Sha256::digest(format!("consume\n{resource}\n{amount}")));
            let guard = hex(&Sha256::digest(key.as_bytes())[..12]);
            IdempotencyKey { key: key.to_string(), fingerprint, guard }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Consumed {
    /// Recorded. `before` is the count this consume started from, when the
    /// write itself told (not with an idempotency key: transactions return
    /// no values, and a later read may include other consumes).
    Admitted { counter: Counter, before: Option<i64> },
    /// A retry of an admitted consume: nothing recorded again.
    Replayed { counter: Counter },
    /// Nothing recorded.
    Refused { counter: Counter, reason: Reason },
}

/// An entry of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub resource: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub reason: Option<String>,
}

impl AuditEntry {
    fn to_item(&self, org: &OrgId) -> Item {
        let salt = std::collections::hash_map::RandomState::new().build_hasher().finish();
        let sk = format!("AUDIT#{}#{salt:016x}", self.at.format("%Y-%m-%dT%H:%M:%S%.6fZ"));
        let mut item = key(items::pk(org), sk);
        item.insert("type".into(), s("audit"));
        item.insert("at".into(), s(self.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
        item.insert("actor".into(), s(&self.actor));
        item.insert("action".into(), s(&self.action));
        if let Some(r) = &self.resource {
            item.insert("resource".into(), s(r));
        }
        if let Some(v) = &self.before {
            item.insert("before".into(), s(v.to_string()));
        }
        if let Some(v) = &self.after {
            item.insert("after".into(), s(v.to_string()));
        }
        if let Some(r) = &self.reason {
            item.insert("reason".into(), s(r));
        }
        item
    }

    fn from_item(item: &Item) -> Option<Self> {
        let json = |name| get_s(item, name).and_then(|v| serde_json::from_str(v).ok());
        Some(AuditEntry {
            at: DateTime::parse_from_rfc3339(get_s(item, "at")?).ok()?.with_timezone(&Utc),
            actor: get_s(item, "actor")?.to_string(),
            action: get_s(item, "action")?.to_string(),
            resource: get_s(item, "resource").map(str::to_string),
            before: json("before"),
            after: json("after"),
            reason: get_s(item, "reason").map(str::to_string),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
}

/// What a failed consume condition meant.
enum Next {
    Retry,
    Refused(Counter, Reason),
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Store { client, table: table.into() }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    // ---- reads -------------------------------------------------------------

    /// The org's profile and all its counters, in one Query.
    pub async fn org_state(&self, org: &OrgId) -> Result<Option<OrgState>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :state)")
            .expression_attribute_values(":pk", s(items::pk(org)))
            .expression_attribute_values(":state", s(items::STATE_PREFIX))
            .consistent_read(true)
            .send()
            .await?;
        OrgState::from_items(out.items())
    }

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
    async fn counter_item(&self, org: &OrgId, resource: &str) -> Result<Option<Counter>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::counter_sk(resource))))
            .consistent_read(true)
            .send()
            .await?;
        Ok(out.item().map(items::counter_from_item).transpose()?)
    }

    /// Audit entries, newest first.
    pub async fn audit(&self, org: &OrgId, limit: i32) -> Result<Vec<AuditEntry>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :audit)")
            .expression_attribute_values(":pk", s(items::pk(org)))
            .expression_attribute_values(":audit", s("AUDIT#"))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await?;
        Ok(out.items().iter().filter_map(AuditEntry::from_item).collect())
    }

    // ---- orgs --------------------------------------------------------------

    /// Creates or updates an org: profile, every counter whose settings
    /// change, and the audit entries, in one transaction pinned to the
    /// profile version it was computed from. Returns the profile and the one
    /// it replaced (`None` when it was created).
    pub async fn put_org(
        &self,
        org: &OrgId,
        patch: &OrgPatch,
        actor: &str,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> Result<(OrgProfile, Option<OrgProfile>), StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            let state = self.org_state(org).await?;
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
                        let item = items::new_counter_item(org, resource, def.kind, &settings, now);
                        let put = Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(item))
                            .condition_expression("attribute_not_exists(pk)")
                            .build()?;
                        writes.push(TransactWriteItem::builder().put(put).build());
                    }
                    Some(counter) => {
                        if let Some(update) = self.settings_update(org, counter, &settings, now)? {
                            writes.push(TransactWriteItem::builder().update(update).build());
                        }
                    }
                }
            }
            for entry in org_audit_entries(existing, &profile, actor, now) {
                let put = Put::builder().table_name(&self.table).set_item(Some(entry.to_item(org))).build()?;
                writes.push(TransactWriteItem::builder().put(put).build());
            }

            // Refused: the profile or a counter changed since it was read.
            match transact(&self.client, "org update", writes).await? {
                Transacted::Committed => return Ok((profile, existing.cloned())),
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
        now: DateTime<Utc>,
    ) -> Result<Option<Update>, StoreError> {
        let same = counter.plan == to.plan
            && counter.limit == to.limit
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
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::counter_sk(&counter.resource))))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#plan", "plan")
            .expression_attribute_names("#locale", "locale")
            .expression_attribute_names("#tz", "tz")
            .expression_attribute_names("#anchor", "anchor")
            .expression_attribute_values(":plan", s(&to.plan))
            .expression_attribute_values(":enf", s(to.enforcement.as_str()))
            .expression_attribute_values(":locale", s(to.locale.as_str()))
            .expression_attribute_values(":tz", s(to.timezone.name()))
            .expression_attribute_values(":anchor", n(i64::from(to.anchor_day)));
        match to.limit {
            Some(limit) => {
                set.extend(["lim = :lim", "rem = :lim - used"]);
                update = update.expression_attribute_values(":lim", n(limit));
            }
            None => remove.push("lim"),
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
            update = update
                .expression_attribute_values(":pe", n(end.timestamp()))
                .expression_attribute_values(":oldpe", n(period.end.timestamp()))
                .condition_expression("attribute_exists(pk) AND pend = :oldpe");
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        Ok(Some(update.update_expression(expression).build()?))
    }

    // ---- usage -------------------------------------------------------------

    /// Records `amount` units if the counter's limit, trial and period allow:
    /// one conditional UpdateItem (with an idempotency key: one transaction
    /// with the key's record).
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
    ) -> Result<Consumed, StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            let update = self.consume_update(org, resource, amount, now);
            let old = match idempotency {
                None => {
                    let result = update.send_with(&self.client).await;
                    match result {
                        Ok(out) => {
                            let counter = items::counter_from_item(out.attributes().unwrap_or(&Item::new()))?;
                            let before = Some(counter.used - amount);
                            return Ok(Consumed::Admitted { counter, before });
                        }
                        Err(err) => match condition_failed_item(&err) {
                            Some(old) => old,
                            None => return Err(err.into()),
                        },
                    }
                }
                Some(idem) => match self.consume_idempotent(org, resource, amount, idem, now).await? {
                    Idem::Done => {
                        let counter = self.counter(org, resource, kind, catalogue, now).await?;
                        return Ok(Consumed::Admitted { counter, before: None });
                    }
                    Idem::Replay => {
                        let counter = self.counter(org, resource, kind, catalogue, now).await?;
                        return Ok(Consumed::Replayed { counter: counter.at(now) });
                    }
                    Idem::Conflict => {
                        backoff(attempt).await;
                        continue;
                    }
                    Idem::CounterRefused(old) => old,
                },
            };
            match self.after_refusal(org, resource, kind, old, amount, catalogue, now).await? {
                Next::Retry => continue,
                Next::Refused(counter, reason) => return Ok(Consumed::Refused { counter, reason }),
            }
        }
        Err(StoreError::Contended("consume"))
    }

    fn consume_update(&self, org: &OrgId, resource: &str, amount: i64, now: DateTime<Utc>) -> ConsumeUpdate {
        ConsumeUpdate {
            table: self.table.clone(),
            key: key(items::pk(org), items::counter_sk(resource)),
            amount,
            now: now.timestamp(),
        }
    }

    async fn consume_idempotent(
        &self,
        org: &OrgId,
        resource: &str,
        amount: i64,
        idem: &IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Result<Idem, StoreError> {
        let mut record = key(items::pk(org), items::idempotency_sk(resource, &idem.key));
        record.insert("type".into(), s("idempotency"));
        record.insert("fingerprint".into(), s(&idem.fingerprint));
        record.insert("createdAt".into(), s(rfc3339(now)));
        record.insert("ttl".into(), n((now + Duration::hours(IDEMPOTENCY_TTL_HOURS)).timestamp()));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(now.timestamp()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        let update = self.consume_update(org, resource, amount, now).transact(&idem.guard)?;
        // The record first: a retry or duplicate is cancelled on it at once.
        // A concurrent duplicate that got past it (see `ConsumeUpdate::transact`)
        // is caught by the counter's guard.
        const RECORD: usize = 0;
        const COUNTER: usize = 1;
        let writes =
            vec![TransactWriteItem::builder().put(put).build(), TransactWriteItem::builder().update(update).build()];
        let reasons = match transact(&self.client, "keyed consume", writes).await? {
            Transacted::Committed => return Ok(Idem::Done),
            Transacted::Refused(reasons) => reasons,
        };
        let code = |i: usize| reason(&reasons, i);
        if code(RECORD) == "ConditionalCheckFailed" {
            let stored = reasons[RECORD].item().and_then(|i| get_s(i, "fingerprint"));
            return if stored == Some(idem.fingerprint.as_str()) {
                Ok(Idem::Replay)
            } else {
                Err(StoreError::KeyReused)
            };
        }
        if code(COUNTER) == "ConditionalCheckFailed" {
            let old = reasons[COUNTER].item().cloned();
            // Our own key, in flight or just committed. Which condition a
            // cancellation reports varies (DynamoDB Local names only the
            // first that failed), so the key's record decides.
            let guarded = old.as_ref().is_some_and(|o| {
                get_s(o, "lastIdem") == Some(idem.guard.as_str())
                    && get_n(o, "lastIdemUntil").is_some_and(|until| until > now.timestamp())
            });
            if !guarded {
                return Ok(Idem::CounterRefused(old));
            }
            let record = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key(items::pk(org), items::idempotency_sk(resource, &idem.key))))
                .consistent_read(true)
                .send()
                .await?;
            let live = record.item().filter(|r| get_n(r, "ttl").is_some_and(|ttl| ttl > now.timestamp()));
            return match live.and_then(|r| get_s(r, "fingerprint")) {
                Some(f) if f == idem.fingerprint => Ok(Idem::Replay),
                Some(_) => Err(StoreError::KeyReused),
                // The counter shows a transaction with this key committed
                // within the guard's window, but its record is not visible
                // yet (DynamoDB Local exposes a transaction's items one by
                // one; DynamoDB never, as the record check fails first there).
                None => Ok(Idem::Replay),
            };
        }
        // A condition failed, but neither on the record nor the counter:
        // cannot happen with two items; treat as a conflict and try again.
        Ok(Idem::Conflict)
    }

    /// Works out why a write's condition failed on a counter (`old` is the
    /// item as it was, `None` if absent) and repairs what is repairable: a
    /// counter not written yet, or a period that has ended.
    #[allow(clippy::too_many_arguments)]
    async fn after_refusal(
        &self,
        org: &OrgId,
        resource: &str,
        kind: ResourceKind,
        old: Option<Item>,
        amount: i64,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> Result<Next, StoreError> {
        let Some(old) = old else {
            self.materialize(org, resource, kind, catalogue, now).await?;
            return Ok(Next::Retry);
        };
        let counter = items::counter_from_item(&old)?;
        if counter.period_ended(now) {
            self.roll_over(org, &counter, now).await?;
            return Ok(Next::Retry);
        }
        match counter.refusal(amount, now) {
            Some(reason) => Ok(Next::Refused(counter, reason)),
            // The counter changed between the write and now (a plan change
            // raised the limit, say): try again.
            None => Ok(Next::Retry),
        }
    }

    /// Writes a counter that does not exist yet, from the org's profile.
    async fn materialize(
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
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(items::new_counter_item(org, resource, kind, &settings, now)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        // Not applied: someone else wrote it first, which is as good.
        applied(result).map(|_| ())
    }

    /// Starts a counter's new period at 0 and records the one that ended,
    /// for billing, in one transaction. Whoever loses the race does nothing.
    /// Only a period that has ended by `now` is closed, and the condition
    /// checks that against the stored period, so a writer whose clock lags
    /// can never move a counter back. The period's notice state moves to
    /// its record (see `notices`): a notice still owed, or in flight, is
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
        let mut condition =
            "pend = :oldpe AND pend <= :now AND used = :oldused AND #anchor = :anchor AND #tz = :tz".to_string();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), items::counter_sk(&counter.resource))))
            .update_expression(
                "SET used = :zero, rem = rem + used, pstart = :ps, pend = :pe \
                 REMOVE notified, ntop, noticeLease, noticeFor, noticeSending",
            )
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
        let writes =
            vec![TransactWriteItem::builder().update(update).build(), TransactWriteItem::builder().put(put).build()];
        Ok(matches!(transact(&self.client, "rollover", writes).await?, Transacted::Committed))
    }

    /// Gives back `amount` units of a `total` resource; never below 0.
    pub async fn release(
        &self,
        org: &OrgId,
        resource: &str,
        kind: ResourceKind,
        amount: i64,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> Result<Counter, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let counter_key = key(items::pk(org), items::counter_sk(resource));
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(counter_key.clone()))
                .update_expression("ADD used :neg, rem :amt")
                .condition_expression("attribute_exists(pk) AND used >= :amt")
                .expression_attribute_values(":neg", n(-amount))
                .expression_attribute_values(":amt", n(amount))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let old = match result {
                Ok(out) => {
                    return Ok(items::counter_from_item(out.attributes().unwrap_or(&Item::new()))?);
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
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(counter_key))
                .update_expression("SET used = :zero, rem = rem + used")
                .condition_expression("used = :old")
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":old", n(get_n(&old, "used").unwrap_or_default()))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match result {
                Ok(out) => {
                    return Ok(items::counter_from_item(out.attributes().unwrap_or(&Item::new()))?);
                }
                Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Err(StoreError::Contended("release"))
    }

    /// Sets the current count (reconciliation), audited in the same
    /// transaction. Returns the counter before and after.
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
    ) -> Result<(Counter, Counter), StoreError> {
        self.replace_count(org, resource, kind, catalogue, now, |before| {
            let entry = AuditEntry {
                at: now,
                actor: actor.to_string(),
                action: "usage_set".into(),
                resource: Some(resource.to_string()),
                before: Some(before.used.into()),
                after: Some(value.into()),
                reason: None,
            };
            (value, false, entry)
        })
        .await
    }

    /// Compare-and-set of a counter's count: reads it, then writes the new
    /// count and the audit entry in one transaction that holds only if the
    /// count (and period) are still what was read. `change` gives the new
    /// count, whether to re-arm thresholds, and the audit entry.
    pub async fn replace_count(
        &self,
        org: &OrgId,
        resource: &str,
        kind: ResourceKind,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
        change: impl Fn(&Counter) -> (i64, bool, AuditEntry),
    ) -> Result<(Counter, Counter), StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            let Some(before) = self.counter_item(org, resource).await? else {
                self.materialize(org, resource, kind, catalogue, now).await?;
                continue;
            };
            if before.period_ended(now) {
                self.roll_over(org, &before, now).await?;
                continue;
            }
            let (value, rearm, entry) = change(&before);
            let mut expression = "SET used = :v, rem = if_not_exists(lim, :zero) - :v".to_string();
            if rearm {
                expression.push_str(" REMOVE notified, ntop, noticeLease, noticeFor, noticeSending");
            }
            let mut update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(items::pk(org), items::counter_sk(resource))))
                .update_expression(expression)
                .condition_expression("used = :before")
                .expression_attribute_values(":v", n(value))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":before", n(before.used));
            if let Some(p) = before.period {
                update = update
                    .condition_expression("used = :before AND pend = :pe")
                    .expression_attribute_values(":pe", n(p.end.timestamp()));
            }
            let audit = Put::builder().table_name(&self.table).set_item(Some(entry.to_item(org))).build()?;
            let writes = vec![
                TransactWriteItem::builder().update(update.build()?).build(),
                TransactWriteItem::builder().put(audit).build(),
            ];
            // Refused: the count moved since it was read; read it again.
            match transact(&self.client, "count update", writes).await? {
                Transacted::Committed => {
                    let mut after = before.clone();
                    after.used = value;
                    if rearm {
                        after.notified.clear();
                    }
                    return Ok((before, after));
                }
                Transacted::Refused(_) => backoff(attempt).await,
            }
        }
        Err(StoreError::Contended("count update"))
    }
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
    Ok(items::counter_from_item(&items::new_counter_item(&profile.org_id, resource, kind, &settings, now))?)
}

/// Every counter of an org as it stands at `now`, in catalogue order,
/// including those not written yet.
pub fn all_counters(state: &OrgState, catalogue: &Catalogue, now: DateTime<Utc>) -> Vec<Counter> {
    catalogue
        .resources
        .iter()
        .filter_map(|(name, def)| match state.counters.get(name) {
            Some(c) => Some(c.at(now)),
            None => unwritten_counter(&state.profile, name, def.kind, catalogue, now).ok(),
        })
        .collect()
}

fn org_audit_entries(
    before: Option<&OrgProfile>,
    after: &OrgProfile,
    actor: &str,
    now: DateTime<Utc>,
) -> Vec<AuditEntry> {
    let entry = |action: &str, before: Option<serde_json::Value>, after: Option<serde_json::Value>| AuditEntry {
        at: now,
        actor: actor.to_string(),
        action: action.to_string(),
        resource: None,
        before,
        after,
        reason: None,
    };
    match before {
        None => vec![entry("org_created", None, Some(serde_json::json!({ "plan": after.plan })))],
        Some(b) => {
            let mut out = Vec::new();
            if b.plan != after.plan {
                out.push(entry("plan_changed", Some(b.plan.clone().into()), Some(after.plan.clone().into())));
            }
            if b.limits != after.limits {
                out.push(entry(
                    "limits_changed",
                    Some(serde_json::json!(b.limits)),
                    Some(serde_json::json!(after.limits)),
                ));
            }
            out
        }
    }
}

enum Idem {
    Done,
    Replay,
    Conflict,
    CounterRefused(Option<Item>),
}

/// The consume write, as an UpdateItem or as a transaction's Update.
struct ConsumeUpdate {
    table: String,
    key: Item,
    amount: i64,
    now: i64,
}

impl ConsumeUpdate {
    const UPDATE: &'static str = "ADD used :amt, rem :neg";
    const CONDITION: &'static str = "attribute_exists(pk) \
        AND (attribute_not_exists(pend) OR pend > :now) \
        AND (attribute_not_exists(trialEnd) OR trialEnd > :now) \
        AND (enf = :soft OR attribute_not_exists(lim) OR rem >= :amt) \
        AND used <= :cap";

    fn values(&self) -> Vec<(&'static str, AttributeValue)> {
        vec![
            (":amt", n(self.amount)),
            (":neg", n(-self.amount)),
            (":now", n(self.now)),
            (":soft", s(Enforcement::Soft.as_str())),
            // The count never passes MAX_COUNT (amounts are at most MAX_COUNT).
            (":cap", n(crate::domain::org::MAX_COUNT - self.amount)),
        ]
    }

    async fn send_with(
        self,
        client: &Client,
    ) -> Result<aws_sdk_dynamodb::operation::update_item::UpdateItemOutput, SdkError<UpdateItemError>> {
        let mut req = client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key.clone()))
            .update_expression(Self::UPDATE)
            .condition_expression(Self::CONDITION)
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
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
    fn transact(self, guard: &str) -> Result<Update, StoreError> {
        const GUARD_SECONDS: i64 = 60;
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.key.clone()))
            .update_expression(format!("{} SET lastIdem = :idem, lastIdemUntil = :idemUntil", Self::UPDATE))
            .condition_expression(format!(
                "{} AND (attribute_not_exists(lastIdem) OR lastIdem <> :idem OR lastIdemUntil <= :now)",
                Self::CONDITION
            ))
            .expression_attribute_values(":idem", s(guard))
            .expression_attribute_values(":idemUntil", n(self.now + GUARD_SECONDS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, value) in self.values() {
            update = update.expression_attribute_values(name, value);
        }
        Ok(update.build()?)
    }
}

/// For a failed conditional UpdateItem: `Some(old item or None)`; for any
/// other error: `None`.
fn condition_failed_item(err: &SdkError<UpdateItemError>) -> Option<Option<Item>> {
    match err.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(e)) => Some(e.item().cloned()),
        _ => None,
    }
}
