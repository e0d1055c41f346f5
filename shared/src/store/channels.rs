//! An org's notification channels and their deliveries, on the table:
//!
//! | item | sk |
//! |---|---|
//! | a channel | `CHANNEL#<channelId>` |
//! | how many channels the org has | `CHANNELS` |
//! | a delivery (TTL 30 days) | `DLV#<channelId>#<webhookId>` |
//! | a keyed creation (TTL 24 h) | `IDEM#CHANNEL#<key>` |
//!
//! Adding or removing a channel is one transaction with its count (so an
//! org never passes [`MAX_CHANNELS`], however many requests race) and its
//! audit entry. A delivery's record is put once, by whichever hand-over of
//! its event comes first; every attempt then updates it.

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use chrono::{DateTime, Duration, Utc};

use super::attrs::{Item, get_n, get_s, key, n, s};
use super::items;
use super::sdk::{Query, SortKeys, Transacted, get_consistent, own, reason, transact};
use super::{Store, StoreError};
use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::channel::{Channel, ChannelType, MAX_CHANNELS};
use crate::domain::events::EventKind;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::org::OrgId;
use crate::domain::webhook::{Attempt, DeliveryRecord, DeliveryStatus, KEPT_ATTEMPTS};

const CHANNEL_PREFIX: &str = "CHANNEL#";
const COUNT_SK: &str = "CHANNELS";
const DELIVERY_PREFIX: &str = "DLV#";
/// How long a delivery's record is kept.
const DELIVERY_KEPT_DAYS: i64 = 30;
/// How long a hand-over of an event has to queue a delivery whose record it
/// made before another hand-over may (the first stopped).
const QUEUEING_SECS: i64 = 60;

/// A delivery's record, as a hand-over of its event found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// Made now, with the claim to queue it: queue it, then mark it queued.
    New,
    /// There already: queued, or settled, or being queued by another
    /// hand-over (see [`Store::claim_queueing`]).
    Existing { status: DeliveryStatus, queued: bool },
}

/// What adding a channel came to.
#[derive(Debug)]
pub enum ChannelAdded {
    Added(Channel),
    /// A retry of a keyed creation: the channel it made.
    Replayed(Channel),
    /// The org already has [`MAX_CHANNELS`].
    TooMany,
    /// A retry of a keyed creation whose channel has been removed since.
    Gone,
}

fn channel_sk(id: &str) -> String {
    format!("{CHANNEL_PREFIX}{id}")
}

fn delivery_sk(channel: &str, webhook: &str) -> String {
    format!("{DELIVERY_PREFIX}{channel}#{webhook}")
}

fn to_item(org: &OrgId, c: &Channel) -> Item {
    let mut item = key(items::pk(org), channel_sk(&c.id));
    item.insert("type".into(), s("channel"));
    item.insert("kind".into(), s(c.kind.as_str()));
    item.insert("url".into(), s(&c.url));
    item.insert("events".into(), AttributeValue::L(c.events.iter().map(|e| s(e.detail_type())).collect()));
    if let Some(secret) = &c.secret {
        item.insert("secret".into(), s(secret));
    }
    item.insert("createdBy".into(), s(&c.created_by));
    item.insert("createdAt".into(), s(crate::domain::rfc3339(c.created_at)));
    item
}

fn from_item(item: &Item) -> Option<Channel> {
    let events = match item.get("events") {
        Some(AttributeValue::L(list)) => {
            list.iter().filter_map(|v| v.as_s().ok()).filter_map(|e| EventKind::parse(e)).collect()
        }
        _ => Vec::new(),
    };
    Some(Channel {
        id: get_s(item, "sk")?.strip_prefix(CHANNEL_PREFIX)?.to_string(),
        kind: ChannelType::parse(get_s(item, "kind")?)?,
        url: get_s(item, "url")?.to_string(),
        events,
        secret: get_s(item, "secret").map(str::to_string),
        created_by: get_s(item, "createdBy").unwrap_or_default().to_string(),
        created_at: time(get_s(item, "createdAt")?)?,
    })
}

fn time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

fn delivery_from_item(item: &Item) -> Option<DeliveryRecord> {
    let sk = get_s(item, "sk")?.strip_prefix(DELIVERY_PREFIX)?;
    let (_, webhook) = sk.split_once('#')?;
    Some(DeliveryRecord {
        webhook_id: webhook.to_string(),
        kind: get_s(item, "kind")?.to_string(),
        status: DeliveryStatus::parse(get_s(item, "status")?)?,
        attempts: u32::try_from(get_n(item, "attempts").unwrap_or_default()).unwrap_or_default(),
        created_at: time(get_s(item, "createdAt")?)?,
        history: get_s(item, "history").and_then(|h| serde_json::from_str(h).ok()).unwrap_or_default(),
    })
}

impl Store {
    /// Adds `channel` to `org`'s (which must exist), with its audit entry;
    /// with `key`, a retry of the same request finds the channel it made.
    pub async fn add_channel(
        &self,
        org: &OrgId,
        channel: &Channel,
        key_: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<ChannelAdded, StoreError> {
        let pk = items::pk(org);
        let profile = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), "STATE#PROFILE".into())))
            .condition_expression("attribute_exists(pk)")
            .build()?;
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), COUNT_SK.into())))
            .update_expression("SET #n = if_not_exists(#n, :zero) + :one, #t = :type")
            .condition_expression("attribute_not_exists(#n) OR #n < :max")
            .expression_attribute_names("#n", "n")
            .expression_attribute_names("#t", "type")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(MAX_CHANNELS as i64))
            .expression_attribute_values(":type", s("channel_count"))
            .build()?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(org, channel)))
            .condition_expression("attribute_not_exists(pk)")
            .build()?;
        let entry = AuditEntry::channel(now, &channel.created_by, AuditAction::ChannelAdded, channel);
        let mut writes = vec![
            TransactWriteItem::builder().condition_check(profile).build(),
            TransactWriteItem::builder().update(count).build(),
            TransactWriteItem::builder().put(put).build(),
            self.audit_put(org, &entry)?,
        ];
        if let Some(k) = key_ {
            let extra = Item::from([("channel".to_string(), s(&channel.id))]);
            let put = self.key_record_put(org, format!("IDEM#CHANNEL#{}", k.key), k, extra, now)?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        let reasons = match own(transact(&self.once, "channel add", writes)).await? {
            Transacted::Committed => return Ok(ChannelAdded::Added(channel.clone())),
            Transacted::Refused(reasons) => reasons,
        };
        let failed = |i: usize| reason(&reasons, i) == "ConditionalCheckFailed";
        if let Some(k) = key_.filter(|_| failed(4)) {
            let earlier = reasons.get(4).and_then(|r| r.item()).cloned().unwrap_or_default();
            if get_s(&earlier, "fingerprint") != Some(k.fingerprint.as_str()) {
                return Err(StoreError::KeyReused);
            }
            let id = get_s(&earlier, "channel").unwrap_or_default();
            return Ok(match self.channel(org, id).await? {
                Some(channel) => ChannelAdded::Replayed(channel),
                None => ChannelAdded::Gone,
            });
        }
        if failed(0) {
            return Err(StoreError::OrgNotFound);
        }
        if failed(1) {
            return Ok(ChannelAdded::TooMany);
        }
        Err(StoreError::Contended("channel add"))
    }

    /// The org's channels, oldest first.
    pub async fn channels(&self, org: &OrgId) -> Result<Vec<Channel>, StoreError> {
        let query = Query { consistent: true, ..Query::new(items::pk(org), SortKeys::Prefix(CHANNEL_PREFIX.into())) };
        let mut found: Vec<Channel> =
            query.items(&self.retrying, &self.table).await?.iter().filter_map(from_item).collect();
        found.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(found)
    }

    pub async fn channel(&self, org: &OrgId, id: &str) -> Result<Option<Channel>, StoreError> {
        let item = get_consistent(&self.retrying, &self.table, key(items::pk(org), channel_sk(id))).await?;
        Ok(item.as_ref().and_then(from_item))
    }

    /// Removes a channel, with its audit entry: the channel as it was, or
    /// `None` when there was none.
    pub async fn remove_channel(
        &self,
        org: &OrgId,
        id: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Channel>, StoreError> {
        let Some(channel) = self.channel(org, id).await? else {
            return Ok(None);
        };
        let pk = items::pk(org);
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), channel_sk(id))))
            .condition_expression("attribute_exists(pk)")
            .build()?;
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, COUNT_SK.into())))
            .update_expression("SET #n = #n - :one")
            .condition_expression("#n > :zero")
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .build()?;
        let entry = AuditEntry::channel(now, actor, AuditAction::ChannelRemoved, &channel);
        let writes = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(count).build(),
            self.audit_put(org, &entry)?,
        ];
        Ok(match own(transact(&self.once, "channel remove", writes)).await? {
            Transacted::Committed => Some(channel),
            // Removed meanwhile, by another request.
            Transacted::Refused(_) => None,
        })
    }

    /// Opens a delivery's record unless it exists.
    pub async fn open_delivery(
        &self,
        org: &OrgId,
        channel: &str,
        webhook: &str,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Result<Opened, StoreError> {
        let mut item = key(items::pk(org), delivery_sk(channel, webhook));
        item.insert("type".into(), s("delivery"));
        item.insert("kind".into(), s(kind));
        item.insert("status".into(), s(DeliveryStatus::Pending.as_str()));
        item.insert("attempts".into(), n(0));
        item.insert("queuing".into(), n(now.timestamp() + QUEUEING_SECS));
        item.insert("createdAt".into(), s(crate::domain::rfc3339(now)));
        item.insert("ttl".into(), n((now + Duration::days(DELIVERY_KEPT_DAYS)).timestamp()));
        let result = self
            .retrying
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Opened::New),
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(e)) => {
                    let item = e.item();
                    let status = item.and_then(|i| get_s(i, "status")).and_then(DeliveryStatus::parse);
                    let queued = item.is_some_and(|i| i.contains_key("queued"));
                    Ok(Opened::Existing { status: status.unwrap_or(DeliveryStatus::Pending), queued })
                }
                _ => Err(err.into()),
            },
        }
    }

    /// Takes over queueing a delivery whose record exists but was never
    /// marked queued, once the hand-over that made it has had its time:
    /// `false` when it is queued, or another hand-over may still queue it.
    pub async fn claim_queueing(
        &self,
        org: &OrgId,
        channel: &str,
        webhook: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .retrying
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), delivery_sk(channel, webhook))))
            .update_expression("SET queuing = :until")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(queued) AND (attribute_not_exists(queuing) OR queuing < :now)",
            )
            .expression_attribute_values(":until", n(now.timestamp() + QUEUEING_SECS))
            .expression_attribute_values(":now", n(now.timestamp()))
            .send()
            .await;
        super::sdk::applied(result)
    }

    /// The delivery is in the queue: a later hand-over of its event leaves it.
    pub async fn mark_queued(&self, org: &OrgId, channel: &str, webhook: &str) -> Result<(), StoreError> {
        let result = self
            .retrying
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), delivery_sk(channel, webhook))))
            .update_expression("SET queued = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await;
        // A record gone (its 30 days up) needs no mark.
        super::sdk::applied(result).map(|_| ())
    }

    pub async fn delivery(
        &self,
        org: &OrgId,
        channel: &str,
        webhook: &str,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let item =
            get_consistent(&self.retrying, &self.table, key(items::pk(org), delivery_sk(channel, webhook))).await?;
        Ok(item.as_ref().and_then(delivery_from_item))
    }

    /// Records an attempt and the status it leaves; the record keeps the
    /// latest [`KEPT_ATTEMPTS`]. An attempt that failed is recorded only on
    /// the record as read (`attempts` unchanged, still pending or retrying):
    /// a copy of the delivery that is behind changes nothing, so a status
    /// never goes back and a last attempt is recorded (and dead-lettered)
    /// once. A 2xx is recorded on anything not yet delivered. `false` when
    /// nothing was recorded.
    pub async fn record_attempt(
        &self,
        org: &OrgId,
        channel: &str,
        record: &DeliveryRecord,
        attempt: &Attempt,
        status: DeliveryStatus,
    ) -> Result<bool, StoreError> {
        let mut history = record.history.clone();
        history.push(attempt.clone());
        let excess = history.len().saturating_sub(KEPT_ATTEMPTS);
        history.drain(..excess);
        let result = self
            .retrying
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), delivery_sk(channel, &record.webhook_id))))
            .update_expression("SET #s = :s, history = :h ADD attempts :one")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":s", s(status.as_str()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":h", s(serde_json::to_string(&history).unwrap_or_default()));
        let result = if status == DeliveryStatus::Delivered {
            result
                .condition_expression("attribute_exists(pk) AND #s <> :delivered")
                .expression_attribute_values(":delivered", s(DeliveryStatus::Delivered.as_str()))
        } else {
            result
                .condition_expression("attribute_exists(pk) AND attempts = :read AND #s IN (:pending, :retrying)")
                .expression_attribute_values(":read", n(i64::from(record.attempts)))
                .expression_attribute_values(":pending", s(DeliveryStatus::Pending.as_str()))
                .expression_attribute_values(":retrying", s(DeliveryStatus::Retrying.as_str()))
        }
        .send()
        .await;
        super::sdk::applied(result)
    }

    /// A channel's deliveries, newest first, at most `limit`.
    pub async fn deliveries(
        &self,
        org: &OrgId,
        channel: &str,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let prefix = format!("{DELIVERY_PREFIX}{channel}#");
        let query = Query::new(items::pk(org), SortKeys::Prefix(prefix));
        let mut found: Vec<DeliveryRecord> =
            query.items(&self.retrying, &self.table).await?.iter().filter_map(delivery_from_item).collect();
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.webhook_id.cmp(&a.webhook_id)));
        found.truncate(limit);
        Ok(found)
    }
}
