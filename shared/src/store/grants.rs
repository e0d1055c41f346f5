//! Grants on a counter, and the sweep that takes expired holds and grants
//! off it. A grant's amount is part of the counter's `lim` and `rem` from
//! the write that adds it to the one that takes it off; `gexp`, the first
//! expiry among them, is in every consume's condition, so no unit is
//! admitted on a grant that has expired, swept or not. The counter keeps
//! each grant's id, amount and expiry; its reason and author are in its own
//! item (`GRANT#<id>`), off the item every consume writes.
//!
//! Adding and revoking are admin writes: the counter is read, and the write
//! (with the grant's item and the audit entry, in one transaction) is pinned
//! to the grants it was computed from by `gv`, which every change to them
//! moves.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::{DateTime, Duration, Utc};

use super::attrs::{Item, get_n, get_s, key, n, s};
use super::current::Change;
use super::items;
use super::sdk::{MAX_ATTEMPTS, Transacted, backoff, get_consistent, own, transact};
use super::{CounterRef, Store, StoreError};
use crate::domain::MAX_COUNT;
use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::catalogue::Catalogue;
use crate::domain::events::{
    GrantAdded, GrantDetail, GrantRevoked, Pending, QuotaRecovered, RecoveryCause, below_threshold,
};
use crate::domain::grant::{Expired, Grant, GrantDetails, GrantRequest, MAX_GRANTS};
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::org::OrgId;
use crate::domain::period::Period;
use crate::domain::usage::Counter;

/// Where a grant's `Idempotency-Key` record is: `IDEM#GRANT#<key>`
/// (resources, the other keys' namespace, are lower case).
fn grant_key_sk(idem: &IdempotencyKey) -> String {
    items::idempotency_sk("GRANT", &idem.key)
}

/// How long a grant's item outlives its expiry (then TTL removes it).
const DETAILS_KEPT_DAYS: i64 = 30;

fn details_sk(id: &str) -> String {
    format!("GRANT#{id}")
}

fn details_item(org: &OrgId, resource: &str, details: &GrantDetails) -> Item {
    let g = &details.grant;
    let mut item = key(items::pk(org), details_sk(&g.id));
    item.insert("type".into(), s("grant"));
    item.insert("resource".into(), s(resource));
    item.insert("amount".into(), n(g.amount));
    item.insert("expiresAt".into(), n(g.expires_at.timestamp()));
    item.insert("reason".into(), s(&details.reason));
    item.insert("createdBy".into(), s(&details.created_by));
    item.insert("createdAt".into(), n(details.created_at.timestamp()));
    item.insert("ttl".into(), n((g.expires_at + Duration::days(DETAILS_KEPT_DAYS)).timestamp()));
    item
}

/// The grant a grant's item names.
fn grant_from_item(id: &str, item: &Item, now: DateTime<Utc>) -> Grant {
    Grant {
        id: id.to_string(),
        amount: get_n(item, "amount").unwrap_or_default(),
        expires_at: get_n(item, "expiresAt").and_then(|t| DateTime::from_timestamp(t, 0)).unwrap_or(now),
    }
}

/// A grant's details from its item; what the counter keeps when the item is
/// gone.
fn details_from(grant: &Grant, item: Option<&Item>) -> GrantDetails {
    let text = |name| item.and_then(|i| get_s(i, name)).unwrap_or_default().to_string();
    GrantDetails {
        grant: grant.clone(),
        reason: text("reason"),
        created_by: text("createdBy"),
        created_at: item
            .and_then(|i| get_n(i, "createdAt"))
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .unwrap_or(grant.expires_at),
    }
}

/// What revoking a grant came to.
#[derive(Debug)]
pub enum Revoked {
    /// Revoked now: the grant, and its counter after it.
    Now(GrantDetails, Box<Counter>),
    /// Revoked before (a retry): the grant, and its counter as it stands.
    Before(GrantDetails, Box<Counter>),
    /// No live grant of that id: unknown, or expired (`counter`: where the
    /// request took expired grants off, if it did).
    NotFound(Option<Box<Counter>>),
}

/// What adding a grant came to.
#[derive(Debug)]
pub enum Granted {
    /// Added: the grant, and its counter after it.
    Added(GrantDetails, Box<Counter>),
    /// A retry with the same `Idempotency-Key`: the grant it added, and the
    /// counter as it stands.
    Replayed(GrantDetails, Box<Counter>),
    /// The counter keeps `MAX_GRANTS` live grants already.
    TooMany,
    /// The effective limit would pass `MAX_COUNT`.
    TooLarge,
}

impl Store {
    /// Adds a grant to a resource's counter, with its item and audit entry
    /// in the same transaction. Also returns grants found expired on the way
    /// (whatever it came to: only this call can report them).
    /// `at` names the request's resource.
    pub async fn add_grant(
        &self,
        at: &CounterRef<'_>,
        request: &GrantRequest,
        idempotency: Option<&IdempotencyKey>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(Granted, Vec<Expired>), StoreError> {
        let CounterRef { org, resource, kind, catalogue } = *at;
        let mut expired = Vec::new();
        for attempt in 0..MAX_ATTEMPTS {
            if let Some(idem) = idempotency
                && let Some(first) = self.granted_under(org, idem, now).await?
            {
                let counter = self.counter(org, resource, kind, catalogue, now).await?;
                return Ok((Granted::Replayed(first, Box::new(counter)), expired));
            }
            let stored = self.counter_item(org, resource).await?;
            let Some(counter) = self.make_current(at, stored, now, &mut expired).await? else {
                continue;
            };
            if counter.grants.len() >= MAX_GRANTS {
                return Ok((Granted::TooMany, expired));
            }
            // Unlimited on its plan, the counter's grants count once it has a limit.
            let granted: i64 = counter.grants.iter().map(|g| g.amount).sum();
            let plan = counter.plan_limit().unwrap_or(0);
            if plan.saturating_add(granted).saturating_add(request.amount) > MAX_COUNT {
                return Ok((Granted::TooLarge, expired));
            }
            let expires_at = request.expires_at.unwrap_or_else(|| {
                counter
                    .period
                    .map_or_else(|| Period::containing(now, counter.anchor_day, counter.timezone).end, |p| p.end)
            });
            let grant = Grant { id: Grant::new_id(), amount: request.amount, expires_at };
            let details =
                GrantDetails { grant, reason: request.reason.clone(), created_by: actor.to_string(), created_at: now };
            let limit = counter.limit.map(|l| l + details.grant.amount);
            // The grant takes usage back below a threshold it had reached: the
            // event says so only while the count stays below it (a consume
            // meanwhile may take it past; the grant is then tried again).
            let mut granted = counter.clone();
            granted.limit = limit;
            granted.grants.push(details.grant.clone());
            let recovered = QuotaRecovered::between(&counter, &granted, RecoveryCause::Grant, now);
            let used_below = recovered.as_ref().map(|r| below_threshold(r.threshold, limit));
            let change =
                Change { add: Some(&details.grant), remove: Vec::new(), free: Vec::new(), at: Some(now), used_below };
            let entry = AuditEntry::grant(now, actor, AuditAction::GrantAdded, &details, resource);
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(details_item(org, resource, &details)))
                .condition_expression("attribute_not_exists(pk)")
                .build()?;
            let event = Pending::of(&GrantAdded(GrantDetail::new(org, resource, &details, actor, limit, now)));
            let mut writes = vec![
                TransactWriteItem::builder().update(self.change_update(org, &counter, &change)?).build(),
                TransactWriteItem::builder().put(put).build(),
                self.audit_put(org, &entry)?,
                self.outbox_put(org, &event, now)?,
            ];
            if let Some(recovered) = &recovered {
                writes.push(self.outbox_put(org, &Pending::of(recovered), now)?);
            }
            if let Some(idem) = idempotency {
                let grant_id = Item::from([("grantId".to_string(), s(&details.grant.id))]);
                let put = self.key_record_put(org, grant_key_sk(idem), idem, grant_id, now)?;
                writes.push(TransactWriteItem::builder().put(put).build());
            }
            match own(transact(&self.once, "grant", writes)).await? {
                Transacted::Committed => {
                    let mut after = counter.clone();
                    after.grants.push(details.grant.clone());
                    after.limit = after.limit.map(|l| l + details.grant.amount);
                    after.grant_version += 1;
                    return Ok((Granted::Added(details, Box::new(after)), expired));
                }
                Transacted::Refused(reasons) => {
                    if reasons.first().and_then(|r| r.item()).is_some_and(|old| !old.contains_key(items::GRANTS)) {
                        self.add_maps(org, resource).await?;
                    }
                    backoff(attempt).await
                }
            }
        }
        Err(StoreError::Contended("grant"))
    }

    /// Revokes a live grant, audited in the same transaction that takes it
    /// off its counter, marks its item revoked (kept until its TTL, so a
    /// retry of the revoke answers the first one) and writes its
    /// `GrantRevoked` to the outbox. Also returns grants found expired on
    /// the way.
    pub async fn revoke_grant(
        &self,
        org: &OrgId,
        id: &str,
        actor: &str,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> Result<(Revoked, Vec<Expired>), StoreError> {
        let mut expired = Vec::new();
        let mut touched: Option<String> = None;
        for attempt in 0..MAX_ATTEMPTS {
            let state = self.org_state(org).await?.ok_or(StoreError::OrgNotFound)?;
            let found = state.counters.values().find(|c| c.grants.iter().any(|g| g.id == id));
            let Some(counter) = found else {
                // Revoked before (this is a retry), or not a live grant.
                let item = self.grant_item(org, id).await?;
                let revoked = item.as_ref().filter(|i| i.contains_key("revokedAt"));
                if let Some(item) = revoked {
                    let grant = grant_from_item(id, item, now);
                    let resource = get_s(item, "resource").unwrap_or_default();
                    if let Some(counter) = state.counters.get(resource) {
                        let details = details_from(&grant, Some(item));
                        return Ok((Revoked::Before(details, Box::new(counter.clone())), expired));
                    }
                }
                let after = touched.and_then(|resource| state.counters.get(&resource).cloned()).map(Box::new);
                return Ok((Revoked::NotFound(after), expired));
            };
            // An ended period is closed first, billed with the grant it had;
            // an expired grant is not revoked: it has ended.
            let at = CounterRef { org, resource: &counter.resource, kind: counter.kind, catalogue };
            let Some(counter) = self.make_current(&at, Some(counter.clone()), now, &mut expired).await? else {
                touched = Some(at.resource.to_string());
                continue;
            };
            let counter = &counter;
            let grant = counter.grants.iter().find(|g| g.id == id).cloned().ok_or(StoreError::Contended("revoke"))?;
            let details = details_from(&grant, self.grant_item(org, id).await?.as_ref());
            let change = Change { add: None, remove: vec![&grant], free: Vec::new(), at: Some(now), used_below: None };
            let entry = AuditEntry::grant(now, actor, AuditAction::GrantRevoked, &details, &counter.resource);
            let limit = counter.limit.map(|l| l - grant.amount);
            let event =
                Pending::of(&GrantRevoked(GrantDetail::new(org, &counter.resource, &details, actor, limit, now)));
            let mut tombstone = details_item(org, &counter.resource, &details);
            tombstone.insert("revokedAt".into(), n(now.timestamp()));
            tombstone.insert("revokedBy".into(), s(actor));
            let mark = Put::builder().table_name(&self.table).set_item(Some(tombstone)).build()?;
            let writes = vec![
                TransactWriteItem::builder().update(self.change_update(org, counter, &change)?).build(),
                TransactWriteItem::builder().put(mark).build(),
                self.audit_put(org, &entry)?,
                self.outbox_put(org, &event, now)?,
            ];
            match own(transact(&self.once, "grant revoke", writes)).await? {
                Transacted::Committed => {
                    let mut after = counter.clone();
                    after.grants.retain(|g| g.id != id);
                    after.limit = limit;
                    after.grant_version += 1;
                    return Ok((Revoked::Now(details, Box::new(after)), expired));
                }
                Transacted::Refused(_) => backoff(attempt).await,
            }
        }
        Err(StoreError::Contended("grant revoke"))
    }

    /// The grant a live key added, if it added one; `KeyReused` when the key
    /// named another request.
    async fn granted_under(
        &self,
        org: &OrgId,
        idem: &IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Result<Option<GrantDetails>, StoreError> {
        let Some(record) = self.live_key_record(org, grant_key_sk(idem), now).await? else {
            return Ok(None);
        };
        if get_s(&record, "fingerprint") != Some(idem.fingerprint.as_str()) {
            return Err(StoreError::KeyReused);
        }
        let id = get_s(&record, "grantId").unwrap_or_default();
        // Kept until 30 days past its expiry, revoked or not.
        let stored = self.grant_item(org, id).await?.ok_or(StoreError::Contended("grant replay"))?;
        Ok(Some(details_from(&grant_from_item(id, &stored, now), Some(&stored))))
    }

    /// A grant's own item (its reason and author).
    async fn grant_item(&self, org: &OrgId, id: &str) -> Result<Option<Item>, StoreError> {
        get_consistent(&self.retrying, &self.table, key(items::pk(org), details_sk(id))).await
    }
}
