//! Idempotency keys on the table: a key's record (a consume's, a reserve's,
//! a grant's or an admin write's), and the keyed write: the key's record and
//! the counter change in one transaction, and what its cancellation reasons
//! mean (replay, reuse, or a refusal on the counter).

use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use chrono::{DateTime, Duration, Utc};

use super::attrs::{Item, get_n, get_s, key, n, s};
use super::items;
use super::sdk::{Transacted, get_consistent, own, reason, transact};
use super::{Store, StoreError};
use crate::domain::idempotency::{IDEMPOTENCY_TTL_HOURS, IdempotencyKey};
use crate::domain::org::OrgId;
use crate::domain::rfc3339;

pub(super) enum Idem {
    Done,
    /// With the key's record, when it could be read.
    Replay(Option<Item>),
    Conflict,
    CounterRefused(Option<Item>),
}

impl Store {
    /// The put of a key's record (at `sk`: a consume's or reserve's, or a
    /// grant's), with `extra` attributes; it holds if the key is new or its
    /// record has lapsed, and gives the record back when it does not.
    pub(super) fn key_record_put(
        &self,
        org: &OrgId,
        sk: String,
        idem: &IdempotencyKey,
        extra: Item,
        now: DateTime<Utc>,
    ) -> Result<Put, StoreError> {
        let mut record = key(items::pk(org), sk);
        record.extend(extra);
        record.insert("type".into(), s("idempotency"));
        record.insert("fingerprint".into(), s(&idem.fingerprint));
        record.insert("createdAt".into(), s(rfc3339(now)));
        record.insert("ttl".into(), n((now + Duration::hours(IDEMPOTENCY_TTL_HOURS)).timestamp()));
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(now.timestamp()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?)
    }

    /// A key's record, if it is there and has not lapsed.
    pub(super) async fn live_key_record(
        &self,
        org: &OrgId,
        sk: String,
        now: DateTime<Utc>,
    ) -> Result<Option<Item>, StoreError> {
        let record = get_consistent(&self.retrying, &self.table, key(items::pk(org), sk)).await?;
        Ok(record.filter(|r| get_n(r, "ttl").is_some_and(|ttl| ttl > now.timestamp())))
    }

    /// `update` (a consume's or a reserve's, guarded by `idem`: see
    /// `admit`) under `idem`; `extra` goes on the key's record (a
    /// reservation's id, for its replays).
    pub(super) async fn keyed(
        &self,
        org: &OrgId,
        resource: &str,
        update: Update,
        idem: &IdempotencyKey,
        extra: Item,
        now: DateTime<Utc>,
    ) -> Result<Idem, StoreError> {
        let put = self.key_record_put(org, items::idempotency_sk(resource, &idem.key), idem, extra, now)?;
        // The record first: a retry or duplicate is cancelled on it at once.
        // A concurrent duplicate that got past it (see `admit`'s `ConsumeUpdate::transact`)
        // is caught by the counter's guard.
        const RECORD: usize = 0;
        const COUNTER: usize = 1;
        let writes =
            vec![TransactWriteItem::builder().put(put).build(), TransactWriteItem::builder().update(update).build()];
        let reasons = match own(transact(&self.once, "keyed consume", writes)).await? {
            Transacted::Committed => return Ok(Idem::Done),
            Transacted::Refused(reasons) => reasons,
        };
        let code = |i: usize| reason(&reasons, i);
        if code(RECORD) == "ConditionalCheckFailed" {
            let stored = reasons[RECORD].item().and_then(|i| get_s(i, "fingerprint"));
            return if stored == Some(idem.fingerprint.as_str()) {
                Ok(Idem::Replay(reasons[RECORD].item().cloned()))
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
            let live = self.live_key_record(org, items::idempotency_sk(resource, &idem.key), now).await?;
            return match live.as_ref().and_then(|r| get_s(r, "fingerprint")) {
                Some(f) if f == idem.fingerprint => Ok(Idem::Replay(live.clone())),
                Some(_) => Err(StoreError::KeyReused),
                // The counter shows a transaction with this key committed
                // within the guard's window, but its record is not visible
                // yet (DynamoDB Local exposes a transaction's items one by
                // one; DynamoDB never, as the record check fails first there).
                None => Ok(Idem::Replay(None)),
            };
        }
        // A condition failed, but neither on the record nor the counter:
        // cannot happen with two items; treat as a conflict and try again.
        Ok(Idem::Conflict)
    }
}
