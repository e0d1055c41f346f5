//! The events an admin write owes (`PlanChanged`, `QuotaReset`,
//! `GrantAdded`, `GrantRevoked`), kept as items of their own
//! (`STATE#OUTBOX#<eventId>`) written in the same transaction as the write.
//! So an event whose write committed is never lost: whichever request finds
//! it unpublished publishes it and then deletes it: the request that made
//! the write, a retry of it, any later admin write to the org, or the daily
//! job (whose one `Query` of the org's `STATE#` items reads them anyway).
//! At least once: an event published and not yet deleted when its
//! publisher stopped is published again, with the same `eventId`.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::{DateTime, Duration, Utc};

use super::attrs::{Item, get_s, key, n, s};
use super::items;
use super::sdk::{Query, SortKeys};
use super::{Store, StoreError};
use crate::domain::events::{EventKind, Pending};
use crate::domain::org::OrgId;

/// Where an org's pending events sort: among its `STATE#` items.
pub(crate) const OUTBOX_PREFIX: &str = "STATE#OUTBOX#";

/// How long an event waits to be published before it is dropped (the job
/// tries every day; this bounds what a bus that never comes back leaves).
const KEPT_DAYS: i64 = 30;

/// A pending event from its item.
pub(crate) fn pending_from_item(item: &Item) -> Option<Pending> {
    let id = get_s(item, "sk")?.strip_prefix(OUTBOX_PREFIX)?.to_string();
    let kind = EventKind::parse(get_s(item, "detailType")?)?;
    let detail = serde_json::from_str(get_s(item, "detail")?).ok()?;
    Some(Pending { id, kind, detail })
}

impl Store {
    /// The transaction's item that keeps `event` until it is published.
    pub(crate) fn outbox_put(
        &self,
        org: &OrgId,
        event: &Pending,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut item = key(items::pk(org), format!("{OUTBOX_PREFIX}{}", event.id));
        item.insert("type".into(), s("outbox"));
        item.insert("detailType".into(), s(event.kind.detail_type()));
        item.insert("detail".into(), s(event.detail.to_string()));
        item.insert("ttl".into(), n((now + Duration::days(KEPT_DAYS)).timestamp()));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The org's events still to publish, oldest first (their ids begin with
    /// their time).
    pub async fn outbox(&self, org: &OrgId) -> Result<Vec<Pending>, StoreError> {
        let query = Query { consistent: true, ..Query::new(items::pk(org), SortKeys::Prefix(OUTBOX_PREFIX.into())) };
        Ok(query.items(&self.retrying, &self.table).await?.iter().filter_map(pending_from_item).collect())
    }

    /// An event that was published: off the outbox.
    pub async fn published(&self, org: &OrgId, id: &str) -> Result<(), StoreError> {
        self.retrying
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(items::pk(org), format!("{OUTBOX_PREFIX}{id}"))))
            .send()
            .await?;
        Ok(())
    }
}
